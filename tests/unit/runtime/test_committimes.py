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
