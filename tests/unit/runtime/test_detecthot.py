"""The detect hot path without a broker: the changelog key Faust writes, the message adapter,
the order of effects per batch and commit, and what a rebalance keeps and drops."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError
from faust.serializers import codecs

from streamproc.detector import PrincipalState
from streamproc.metrics import WorkerMetrics
from streamproc.pipeline.detect import ContainmentOut, DetectResult, StateCache
from streamproc.pipeline.outcome import DeadLetter
from streamproc.runtime import detecthot
from streamproc.runtime.detecthot import (
    DetectHotPath,
    DetectHotPathError,
    DetectSpec,
    Received,
    principal_of,
    received,
    state_key,
    state_topic_name,
)


@pytest.mark.parametrize("principal", ["alice", "svc-etl.prod", 'we"ird\\name', "Zoë", "日本"])
def test_state_key_is_the_bytes_faust_writes(principal: str) -> None:
    assert state_key(principal) == codecs.dumps("json", principal)
    assert principal_of(state_key(principal)) == principal


@pytest.mark.parametrize("key", [None, b"", b"alice", b"\xff", b"[1]", b"7"])
def test_keys_that_are_no_principal(key: bytes | None) -> None:
    assert principal_of(key) is None


def test_state_topic_is_the_faust_tables_changelog() -> None:
    assert state_topic_name("app", "access") == "app-access-principals-changelog"


class FakeMessage:
    def __init__(self, offset: int, ts: int = 0, err: int | None = None) -> None:
        self._offset, self._ts, self._err = offset, ts, err

    def error(self) -> Any:
        if self._err is None:
            return None
        return SimpleNamespace(code=lambda: self._err, name=lambda: "ERR")

    def key(self) -> bytes:
        return b"alice"

    def value(self) -> bytes:
        return b"v"

    def topic(self) -> str:
        return "src"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)


def test_received_adapts_records_and_drops_errors() -> None:
    msgs = [
        FakeMessage(5, 1_700_000_000_500),
        FakeMessage(6, 0),
        FakeMessage(-1, err=KafkaError._PARTITION_EOF),
        FakeMessage(-1, err=KafkaError._TRANSPORT),
    ]
    assert received(msgs) == [
        Received(b"alice", b"v", "src", 2, 5, 1_700_000_000.5),
        Received(b"alice", b"v", "src", 2, 6, None),
    ]


class Calls(list[tuple[Any, ...]]):
    """Every effect the hot path had, in order."""


class FakeProducer:
    def __init__(self, calls: Calls, unacked: int = 0) -> None:
        self.calls, self.unacked = calls, unacked

    def produce(self, topic: str, value: Any, key: Any, partition: int, headers: Any) -> None:
        self.calls.append(("produce", topic, partition, key))

    def flush(self, timeout: float) -> int:
        self.calls.append(("flush",))
        return self.unacked

    def poll(self, timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return 0


class FakeConsumer:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        self.calls.append(("commit", sorted((tp.topic, tp.partition, tp.offset) for tp in offsets)))


class FakeFlow:
    """One batch: a dead letter, a containment for ``alice``, her state touched."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.topology = SimpleNamespace(
            name="access",
            source=SimpleNamespace(topic="src"),
            sink=SimpleNamespace(topic="sink"),
            dead_letter="dlq",
        )

    def process(self, batch: list[Received], cache: StateCache) -> DetectResult:
        res = DetectResult()
        for m in batch:
            res.last_offsets[m.partition] = m.offset
        bad = batch[0]
        res.dead.append((bad.partition, DeadLetter(None, b"sealed", [], "unknown_schema"), bad))
        c = SimpleNamespace(principal="alice")
        res.contained.append(ContainmentOut(batch[-1].partition, b"alice", b"c", [], c))  # type: ignore[arg-type]
        cache.put("alice", PrincipalState(), (batch[-1].partition, batch[-1].offset))
        res.scored = len(batch) - 1
        return res


def hot_path(calls: Calls, unacked: int = 0) -> DetectHotPath:
    contain = SimpleNamespace(apply=lambda c: calls.append(("contain", c.principal)))
    dead = SimpleNamespace(report=lambda reason, *a: calls.append(("dead", reason, *a)))
    spec = DetectSpec(group="app", state_topic="st", sink_partitions=3, dlq_partitions=3)
    hot = DetectHotPath(spec, FakeFlow(calls), {}, WorkerMetrics(), contain, dead)  # type: ignore[arg-type]
    hot.producer = FakeProducer(calls, unacked)
    hot.consumer = FakeConsumer(calls)
    return hot


def batch(*offsets: int, partition: int = 1) -> list[Received]:
    return [Received(b"alice", b"v", "src", partition, o, None) for o in offsets]


def test_a_containment_is_acknowledged_before_its_state_and_the_offsets() -> None:
    calls = Calls()
    hot = hot_path(calls)
    hot._handle(batch(7, 8, 9))
    assert calls == [
        ("produce", "dlq", 1, None),
        ("dead", "unknown_schema", "src", 1, 7),
        ("produce", "sink", 1, b"alice"),
        ("flush",),
        ("contain", "alice"),
    ]
    calls.clear()
    hot._commit()
    assert calls == [
        ("produce", "st", 1, b'"alice"'),
        ("flush",),
        ("commit", [("src", 1, 10)]),
    ]
    value = json.loads(hot.store["alice"])
    assert value["src"] == [1, 9]
    calls.clear()
    hot._commit()  # nothing new: no state, no commit
    assert calls == []


def test_an_unacknowledged_containment_stops_before_its_effects() -> None:
    calls = Calls()
    hot = hot_path(calls, unacked=1)
    with pytest.raises(DetectHotPathError, match="not delivered"):
        hot._handle(batch(7, 8))
    assert ("contain", "alice") not in calls
    assert hot._offsets == {}  # nothing of the batch may commit


def test_a_revoke_commits_then_forgets_the_partitions_principals() -> None:
    calls = Calls()
    hot = hot_path(calls)
    hot._handle(batch(3, 4, partition=2))
    hot.store["bob"] = b"{}"
    hot.owner["bob"] = 0
    hot._on_revoke(None, [SimpleNamespace(topic="src", partition=2)])  # type: ignore[list-item]
    assert ("commit", [("src", 2, 5)]) in calls
    assert "alice" not in hot.store and "alice" not in hot.owner
    assert hot.store == {"bob": b"{}"}  # partition 0 stays


def test_lost_partitions_drop_even_unwritten_states() -> None:
    calls = Calls()
    hot = hot_path(calls)
    hot._handle(batch(3, 4, partition=2))
    calls.clear()
    hot._on_lost(None, [SimpleNamespace(topic="src", partition=2)])  # type: ignore[list-item]
    hot._commit()
    assert calls == []  # neither the state nor the offsets of a lost partition
    assert hot.cache.get("alice") == (None, (-1, -1))


def test_an_assignment_reads_the_changelog_last_record_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = {"state": PrincipalState().to_dict(), "src": [0, 41]}
    raw = json.dumps(state).encode()
    records = {
        0: [(state_key("alice"), b"old"), (state_key("alice"), raw), (b"junk", b"x")],
        1: [(state_key("bob"), raw), (state_key("bob"), None)],
    }
    seen: list[Any] = []

    def read_state(conf: Any, group: str, topic: str, parts: list[int], *a: Any) -> Any:
        seen.append((group, topic, parts))
        return {p: records[p] for p in parts}

    monkeypatch.setattr(detecthot, "read_state", read_state)
    hot = hot_path(Calls())
    assert hot.load([0, 1]) == 1
    assert seen == [("app", "st", [0, 1])]
    assert hot.store == {"alice": raw} and hot.owner == {"alice": 0}
    got, src = hot.cache.get("alice")
    assert got is not None and src == (0, 41)
