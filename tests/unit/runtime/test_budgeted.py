"""The worker's keyed DP ledger: what a route persists, and the records it refuses.

The state topic itself is read and written on the real broker in
tests/integration/test_budget_worker.py; here, the messages the hot path is handed.
"""

from __future__ import annotations

import logging
import random

import pytest
from prometheus_client import CollectorRegistry

from streamproc.budget import BudgetLedger
from streamproc.metrics import WorkerMetrics
from streamproc.pipeline import DeadLetter, Sanitized
from streamproc.runtime.budgeted import MARKER, BudgetState, budget_topic_name
from streamproc.runtime.statetopic import StateTopic
from streamproc.testing.customers import customer_record, single_object
from tests.unit.pipeline.test_sanitize_budget import budgeted_flow


def keyed_state(*, eos: bool) -> BudgetState:
    return BudgetState(budgeted_flow(), StateTopic("app-customers-budget", 3, eos, {}, "g"))


def test_budget_topic_is_named_after_app_and_topology() -> None:
    assert budget_topic_name("app", "customers") == "app-customers-budget"


def test_records_not_keyed_by_their_subject_are_dead_letters() -> None:
    state = keyed_state(eos=True)
    flow = state.flow
    rec = customer_record(1, random.Random(1))
    value = single_object(flow.plan.source_schema, rec)
    for i, key in enumerate([b"someone else", None]):
        out = flow.process(value, key=key, topic="t", partition=0, offset=i, timestamp_ms=1)
        assert isinstance(out, DeadLetter) and out.reason == "budget_key_mismatch"
        assert rec["customer_id"].encode() not in out.value  # sealed
    ok = rec["customer_id"].encode()
    out = flow.process(value, key=ok, topic="t", partition=4, offset=2, timestamp_ms=1)
    assert isinstance(out, Sanitized)
    # The same subject on another partition: its budget would be split between owners.
    out = flow.process(value, key=ok, topic="t", partition=1, offset=3, timestamp_ms=1)
    assert isinstance(out, DeadLetter) and out.reason == "budget_partition_mismatch"


def test_dirty_subjects_become_one_snapshot_each_in_their_state_partition() -> None:
    state = keyed_state(eos=True)
    flow = state.flow
    recs = [customer_record(i, random.Random(i)) for i in range(3)]
    for off, (p, rec) in enumerate([(4, recs[0]), (4, recs[0]), (2, recs[1]), (0, recs[2])]):
        value = single_object(flow.plan.source_schema, rec)
        key = rec["customer_id"].encode()
        out = flow.process(value, key=key, topic="t", partition=p, offset=off, timestamp_ms=1)
        assert isinstance(out, Sanitized)
    msgs = state.dirty_messages()
    assert sorted((sp, k.split(b"/")[1]) for sp, k, _ in msgs) == [(0, b"0"), (1, b"4"), (2, b"2")]
    assert state.dirty_messages() == []  # drained
    raw = {r["customer_id"].encode() for r in recs}
    for _sp, key, snap in msgs:
        assert key.startswith(b"bud/") and not any(r in key or r in snap for r in raw)
        fresh = BudgetLedger()
        fresh.restore(bytes.fromhex(key.split(b"/")[2].decode()), snap)  # restorable
    # Dropping a partition forgets its subjects only.
    state.drop([4])
    assert state.ledger.subjects == 2


def test_commit_markers_only_under_exactly_once() -> None:
    assert keyed_state(eos=True).at_commit({4: 10, 0: 3}) == [
        (1, MARKER + b"4", b"10"),
        (0, MARKER + b"0", b"3"),
    ]
    assert keyed_state(eos=False).at_commit({4: 10}) == []


def test_watermarks_are_persisted_and_idle_subjects_tombstoned() -> None:
    state = keyed_state(eos=True)
    flow = state.flow
    state.owned = {0}
    day = 86_400_000
    recs = [customer_record(i, random.Random(i)) for i in range(2)]
    for off, (rec, ts) in enumerate([(recs[0], day), (recs[1], 30 * day)]):
        value = single_object(flow.plan.source_schema, rec)
        key = rec["customer_id"].encode()
        out = flow.process(value, key=key, topic="t", partition=0, offset=off, timestamp_ms=ts)
        assert isinstance(out, Sanitized)
    msgs = state.dirty_messages()
    assert (0, b"bwm/0", str(30 * day).encode()) in msgs
    assert [m for m in state.dirty_messages() if m[1] == b"bwm/0"] == []  # sent once
    # The budget window is 7 days: the first customer's release lies over two windows back.
    tomb = state.sweep()
    assert len(tomb) == 1 and tomb[0][2] is None and tomb[0][1].startswith(b"bud/0/")
    assert state.ledger.subjects == 1


def test_a_record_from_the_future_moves_no_watermark_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = keyed_state(eos=True)
    flow = state.flow
    state.owned = {0}
    day = 86_400_000  # the flow's clock reads day 365
    recs = [customer_record(i, random.Random(i)) for i in range(2)]
    for off, (rec, ts) in enumerate([(recs[0], 300 * day), (recs[1], 900 * day)]):
        value = single_object(flow.plan.source_schema, rec)
        key = rec["customer_id"].encode()
        flow.process(value, key=key, topic="t", partition=0, offset=off, timestamp_ms=ts)
    msgs = state.dirty_messages()
    assert (0, b"bwm/0", str(300 * day).encode()) in msgs  # the future one moved nothing
    assert len([m for m in msgs if m[1].startswith(b"bud/")]) == 1
    assert flow.combined_state()["budget"]["future_refused"] == 1
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    metrics.flow_state("customers", flow.combined_state())
    assert (
        registry.get_sample_value("streamproc_dp_budget_future_refused", {"topology": "customers"})
        == 1
    )
    with caplog.at_level(logging.WARNING, logger="streamproc.runtime.budgeted"):
        state.sweep()
        state.sweep()
    warned = [r for r in caplog.records if "producers' clocks" in r.getMessage()]
    assert len(warned) == 1  # once per new refusal, not once per sweep
