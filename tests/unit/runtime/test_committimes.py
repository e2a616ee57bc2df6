"""The commit's parts: timed per commit, summarised in call order when the hot path stops."""

from __future__ import annotations

import time
from typing import Any

from streamproc.metrics import WorkerMetrics
from streamproc.runtime.committimes import MAX_SAMPLES, CommitTimes
from streamproc.runtime.hotpath import HotPath, HotPathSpec


def test_summary_lists_known_parts_in_call_order() -> None:
    t = CommitTimes()
    for part in ("batch", "total", "commit_txn", "zz_extra", "flush", "send_offsets"):
        t.add(part, 0.001)
    line = t.summary()
    pos = [
        line.index(p) for p in ("send_offsets", "flush", "commit_txn", "total", "batch", "zz_extra")
    ]
    assert pos == sorted(pos)


def test_percentiles_and_cap() -> None:
    t = CommitTimes()
    for i in range(1, 101):
        t.add("flush", i / 1000)
    assert "flush p50 51.0 p99 100.0 max 100.0" in t.summary()
    for _ in range(MAX_SAMPLES):
        t.add("flush", 1.0)
    assert len(t.samples["flush"]) == MAX_SAMPLES


def test_empty() -> None:
    assert CommitTimes().summary() == "commit parts: none"


class SlowProducer:
    """A transactional producer whose calls take known times, in call order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def send_offsets_to_transaction(self, offsets: Any, meta: Any, timeout: float) -> None:
        self.calls.append("send_offsets")
        time.sleep(0.003)

    def flush(self, timeout: float) -> int:
        self.calls.append("flush")
        time.sleep(0.006)
        return 0

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit_txn")
        time.sleep(0.009)


class Meta:
    def consumer_group_metadata(self) -> object:
        return object()


def test_an_exactly_once_commit_times_each_part() -> None:
    spec = HotPathSpec(group="g", guarantee="exactly_once", transactional_id="t-1")
    h = HotPath(spec, {}, {}, WorkerMetrics())
    h.producer, h.consumer = SlowProducer(), Meta()
    h._offsets[("src", 0)] = 10
    h._commit()
    assert h.producer.calls == ["send_offsets", "flush", "commit_txn"]
    s = h.commit_times.samples
    assert s["send_offsets"][0] >= 0.003
    assert s["flush"][0] >= 0.006
    assert s["commit_txn"][0] >= 0.009
    assert s["total"][0] >= 0.018
    assert not h._offsets and h.commits == 1


def _observed(m: WorkerMetrics, part: str) -> tuple[float, float]:
    """(count, sum) of ``streamproc_commit_seconds{part}``."""
    count = m.registry.get_sample_value("streamproc_commit_seconds_count", {"part": part})
    total = m.registry.get_sample_value("streamproc_commit_seconds_sum", {"part": part})
    return count or 0.0, total or 0.0


def test_every_part_reaches_the_histogram() -> None:
    m = WorkerMetrics()
    spec = HotPathSpec(group="g", guarantee="exactly_once", transactional_id="t-1")
    h = HotPath(spec, {}, {}, m)
    h.producer, h.consumer = SlowProducer(), Meta()
    for commit in range(2):
        h._offsets[("src", 0)] = 10 + commit
        h._commit()
    for part, at_least in (("send_offsets", 0.003), ("flush", 0.006), ("commit_txn", 0.009)):
        count, total = _observed(m, part)
        assert count == 2 and total >= 2 * at_least
    assert _observed(m, "total")[0] == 2


class AloConsumer:
    def __init__(self) -> None:
        self.committed: list[Any] = []

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        time.sleep(0.004)
        self.committed.append(offsets)


def test_an_at_least_once_commit_times_its_flush_and_offset_commit() -> None:
    m = WorkerMetrics()
    h = HotPath(HotPathSpec(group="g", guarantee="at_least_once"), {}, {}, m)
    h.producer, h.consumer = SlowProducer(), AloConsumer()
    h._offsets[("src", 0)] = 10
    h._commit()
    assert h.producer.calls == ["flush"] and len(h.consumer.committed) == 1
    assert _observed(m, "flush")[1] >= 0.006
    assert _observed(m, "commit_offsets")[1] >= 0.004
    assert _observed(m, "total")[1] >= 0.010
    assert _observed(m, "send_offsets")[0] == 0


def test_an_at_least_once_offset_commit_is_timed_apart_from_the_audit() -> None:
    m = WorkerMetrics()
    audited: list[Any] = []

    def slow_audit(entries: list[Any]) -> None:
        time.sleep(0.02)
        audited.append(entries)

    h = HotPath(
        HotPathSpec(group="g", guarantee="at_least_once"), {}, {}, m, on_dead_letter=slow_audit
    )
    h.producer, h.consumer = SlowProducer(), AloConsumer()
    h._offsets[("src", 0)] = 10
    h._dead = [{"offset": 3}]
    h._commit()
    assert audited == [[{"offset": 3}]]
    assert 0.004 <= _observed(m, "commit_offsets")[1] < 0.02  # the audit's 20 ms not in it
    assert _observed(m, "total")[1] >= 0.030  # flush + audit + commit
