"""When the hot path commits: at the interval's end, and under exactly_once with
``commit_when_caught_up`` as soon as it has caught up (a short fetch), so that read_committed
consumers see records without waiting out the interval."""

from __future__ import annotations

import time

import pytest

from streamproc.metrics import WorkerMetrics
from streamproc.runtime.hotpath import HotPath, HotPathSpec


def hot(guarantee: str, **spec: object) -> HotPath:
    tid = "t-1" if guarantee == "exactly_once" else None
    s = HotPathSpec(group="g", guarantee=guarantee, transactional_id=tid, **spec)  # type: ignore[arg-type]
    h = HotPath(s, {}, {}, WorkerMetrics())
    h._offsets[("src", 0)] = 10  # an interval is open ...
    h._interval_start = time.monotonic()  # ... since just now
    return h


@pytest.mark.parametrize(
    ("guarantee", "eager", "fetched", "due"),
    [
        ("exactly_once", True, 0, True),  # nothing more fetched: commit now
        ("exactly_once", True, 50, True),  # a short batch: caught up
        ("exactly_once", True, 2000, False),  # a full batch: more is waiting, the interval paces
        ("exactly_once", False, 0, False),  # off (the default): the interval only
        ("at_least_once", True, 0, False),  # at_least_once flushes every 0.5 s as before
    ],
)
def test_commit_due(guarantee: str, eager: bool, fetched: int, due: bool) -> None:
    h = hot(guarantee, commit_when_caught_up=eager)
    assert h._commit_due(fetched) is due
    # While it waits to commit, it does not wait in consume().
    assert (h._poll_s() == 0.0) is (guarantee == "exactly_once" and eager)


def test_the_interval_still_ends_a_run_of_full_batches() -> None:
    h = hot("exactly_once", commit_when_caught_up=True)
    h._interval_start -= h.spec.commit_interval_s
    assert h._commit_due(h.spec.batch)


def test_commits_come_no_sooner_than_the_last_one_took() -> None:
    """A slow broker (commits taking long) is not asked for more of them."""
    h = hot("exactly_once", commit_when_caught_up=True)
    h._last_commit_s = 0.015
    assert not h._commit_due(0)  # the interval opened just now: wait for 15 ms
    assert 0.0 < h._poll_s() <= 0.015  # ... inside consume(), taking more records meanwhile
    h._interval_start -= 0.015
    assert h._commit_due(0) and h._poll_s() == 0.0


def test_off_by_default() -> None:
    assert not hot("exactly_once")._commit_due(0)


class RecordingProducer:
    """Stands in for confluent_kafka.Producer: keeps the configuration it was made with."""

    made: list[dict[str, object]] = []

    def __init__(self, conf: dict[str, object]) -> None:
        RecordingProducer.made.append(conf)

    def init_transactions(self, timeout: float) -> None:
        pass


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_transactional_producer_retries_concurrent_transactions_quickly(
    guarantee: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AddOffsetsToTxn racing the previous transaction's completion is retried after
    # retry.backoff.ms: librdkafka's 100 ms default put ~100 ms into the eos latency tail.
    import streamproc.runtime.hotpath as hotpath

    RecordingProducer.made.clear()
    monkeypatch.setattr(hotpath, "Producer", RecordingProducer)
    hot(guarantee)._new_producer()
    hot(guarantee, txn_retry_backoff_ms=7)._new_producer()
    first, second = RecordingProducer.made
    if guarantee == "exactly_once":
        assert (first["retry.backoff.ms"], second["retry.backoff.ms"]) == (5, 7)
    else:
        assert "retry.backoff.ms" not in first and "retry.backoff.ms" not in second
