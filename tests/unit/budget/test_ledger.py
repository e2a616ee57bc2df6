"""The budget ledger alone: exact accounting, event-time windows, snapshots, metrics."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamproc.budget import BudgetError, BudgetLedger, BudgetStats, subject_key
from streamproc.budget.ledger import DAY_MS, FUTURE_TOLERANCE_MS, to_units
from streamproc.errors import BudgetKeyError

P = b"\x01" * 16


def ledger_at(t: list[int]) -> BudgetLedger:
    return BudgetLedger(clock=lambda: t[0])


@pytest.mark.parametrize(
    ("epsilon", "budget", "releases"),
    [(0.1, 1.0, 10), (0.3, 1.0, 3), (1.0, 1.0, 1), (0.25, 1.0, 4), (0.7, 2.1, 3), (1 / 3, 1, 2)],
)
def test_exact_decimal_accounting(epsilon: float, budget: float, releases: int) -> None:
    """0.1 ten times is exactly 1.0 (no float drift lets an eleventh through or stops the
    tenth); a cost that does not divide evenly (1/3) is rounded up, never down."""
    ledger = BudgetLedger(clock=lambda: 0)
    acc = ledger.account("f", epsilon=epsilon, budget=budget, window_days=1)
    granted = [ledger.spend(P, acc) for _ in range(releases + 3)]
    assert granted == [True] * releases + [False] * 3
    assert ledger.exhausted_subjects == 1 and ledger.refused == 3


def test_units_round_conservatively() -> None:
    assert to_units(0.1, round_up=True) == 100_000_000
    assert to_units(1 / 3, round_up=True) == 333_333_334
    assert to_units(1 / 3, round_up=False) == 333_333_333


def test_spent_epsilon_expires_after_the_window() -> None:
    t = [0]
    ledger = ledger_at(t)
    acc = ledger.account("f", epsilon=0.5, budget=1.0, window_days=2)
    assert [ledger.spend(P, acc) for _ in range(3)] == [True, True, False]
    t[0] = 2 * DAY_MS - 1
    assert not ledger.spend(P, acc)
    t[0] = 2 * DAY_MS  # the first two releases leave the window (t - W, t]
    assert ledger.spend(P, acc) and ledger.spend(P, acc) and not ledger.spend(P, acc)


def test_a_late_record_is_charged_against_every_window_it_falls_in() -> None:
    """Out of order: a release at day 5 must fit both with day 0..7 and day 5..12 neighbours."""
    t = [0]
    ledger = ledger_at(t)
    acc = ledger.account("f", epsilon=1, budget=2, window_days=7)
    assert ledger.spend(P, acc)  # day 0
    t[0] = 10 * DAY_MS
    assert ledger.spend(P, acc)  # day 10
    t[0] = 5 * DAY_MS
    assert ledger.spend(P, acc)  # day 5: windows [0, 7) and [5, 12) each hold 2
    t[0] = 4 * DAY_MS
    assert not ledger.spend(P, acc)  # [0, 7) would hold 3 (the window ending at day 4 only 2)
    t[0] = 3 * DAY_MS  # a full window before day 10: refused, its history is gone
    assert not ledger.spend(P, acc)
    assert ledger.refused == 2


def test_accounts_and_subjects_are_independent() -> None:
    ledger = BudgetLedger(clock=lambda: 0)
    a = ledger.account("a", epsilon=1, budget=1, window_days=1)
    b = ledger.account("b", epsilon=1, budget=1, window_days=1)
    q = b"\x02" * 16
    assert ledger.spend(P, a) and ledger.spend(P, b) and ledger.spend(q, a)
    assert not ledger.spend(P, a)
    assert ledger.epsilon_spent == 3.0 and ledger.subjects == 2
    assert ledger.stats() == BudgetStats(2, 1, 1, 3.0)


def test_bad_accounts_are_refused() -> None:
    ledger = BudgetLedger()
    with pytest.raises(BudgetError, match="account f: budget is smaller"):
        ledger.account("f", epsilon=2, budget=1, window_days=1)
    ledger.account("g", epsilon=1, budget=1, window_days=1)
    with pytest.raises(BudgetError, match="account g: registered twice"):
        ledger.account("g", epsilon=1, budget=2, window_days=1)


def test_snapshot_restore_roundtrip_continues_the_accounting() -> None:
    t = [0]
    ledger = ledger_at(t)
    acc = ledger.account("f", epsilon=0.5, budget=1.0, window_days=1)
    assert ledger.spend(P, acc)
    ledger.remember(P, acc, 41.5)
    assert ledger.drain_dirty() == {P} and ledger.drain_dirty() == set()
    data = ledger.snapshot(P)

    other = ledger_at(t)
    acc2 = other.account("f", epsilon=0.5, budget=1.0, window_days=1)
    other.restore(P, data)
    assert other.last(P, acc2) == (True, 41.5)
    assert other.spend(P, acc2) and not other.spend(P, acc2)
    assert other.exhausted_subjects == 1
    other.restore(P, data)  # replacing an exhausted subject's state keeps the count right
    assert other.exhausted_subjects == 0


@pytest.mark.parametrize("data", [b"", b"{}", b"not json", b'{"v":9,"x":false,"a":{}}'])
def test_corrupt_snapshots_fail_closed(data: bytes) -> None:
    with pytest.raises(BudgetError, match="cannot be restored"):
        BudgetLedger().restore(P, data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 40 * DAY_MS)),
        max_size=120,
    ),
    st.sampled_from([0.1, 0.25, 0.3, 0.5, 1.0]),
    st.sampled_from([0.5, 1.0, 2.0]),
    st.integers(1, 10),
)
def test_no_window_ever_holds_more_than_the_budget(
    events: list[tuple[int, int]], epsilon: float, budget: float, days: int
) -> None:
    """Any order of event times (late ones included), any subject mix: in every window
    [s, s + W) the epsilon granted to a subject stays within its budget."""
    if budget < epsilon:
        return
    t = [0]
    ledger = ledger_at(t)
    acc = ledger.account("f", epsilon=epsilon, budget=budget, window_days=days)
    granted: dict[int, list[int]] = {}
    for subject, ts in events:
        t[0] = ts
        if ledger.spend(bytes([subject]) * 16, acc):
            granted.setdefault(subject, []).append(ts)
    w = days * DAY_MS
    cap = to_units(budget, round_up=False)
    cost = to_units(epsilon, round_up=True)
    for times in granted.values():
        for s in times:  # the heaviest window starts at a granted release
            assert sum(1 for x in times if s <= x < s + w) * cost <= cap


# --- keyed (the worker): a record is charged within its partition, under its subject's key


def test_subject_key_forms() -> None:
    assert (
        subject_key("C1") == b"C1" and subject_key(42) == b"42" and subject_key(b"\x00") == b"\x00"
    )
    assert subject_key(uuid.UUID(int=1)) == b"00000000-0000-0000-0000-000000000001"
    assert subject_key(True) is None and subject_key(1.5) is None and subject_key(None) is None


def test_keyed_ledger_refuses_a_record_not_keyed_by_its_subject() -> None:
    ledger = BudgetLedger(clock=lambda: 0)
    ledger.check_subject("C1")  # not keyed (batch): no rule
    ledger.keyed()
    ledger.at(0, scope=0, key=b"C1")
    ledger.check_subject("C1")
    for key in (b"C2", None):
        ledger.at(0, scope=0, key=key)
        with pytest.raises(BudgetKeyError) as err:
            ledger.check_subject("C1")
        assert err.value.reason == "budget_key_mismatch"
        assert "C1" not in str(err.value)  # never the value


def test_keyed_subject_stays_with_its_partition() -> None:
    ledger = BudgetLedger(clock=lambda: 0)
    acc = ledger.account("f", epsilon=0.5, budget=1.0, window_days=1)
    ledger.keyed()
    ledger.at(0, scope=3, key=b"x")
    assert ledger.spend(P, acc)
    assert ledger.home(P) == 3 and ledger.held({3}) == [P] and ledger.held({1}) == []
    ledger.at(0, scope=1, key=b"x")
    with pytest.raises(BudgetKeyError) as err:
        ledger.spend(P, acc)
    assert err.value.reason == "budget_partition_mismatch"
    ledger.at(0, scope=3, key=b"x")
    assert ledger.spend(P, acc) and not ledger.spend(P, acc)  # the budget held across it


def test_forget_and_restore_with_scope_move_a_partition_between_owners() -> None:
    t = [0]
    a = ledger_at(t)
    acc = a.account("f", epsilon=0.5, budget=1.0, window_days=1)
    a.keyed()
    a.at(None, scope=2, key=b"x")
    assert a.spend(P, acc) and a.spend(P, acc) and not a.spend(P, acc)
    data = a.snapshot(P)
    assert a.drain_dirty() == {P}
    a.forget(a.held({2}))
    assert a.subjects == 0 and a.exhausted_subjects == 0 and a.home(P) is None
    a.at(None, scope=2, key=b"x")
    assert a.spend(P, acc)  # forgotten: fresh (the owner that forgot no longer charges it)

    b = ledger_at(t)
    acc_b = b.account("f", epsilon=0.5, budget=1.0, window_days=1)
    b.keyed()
    b.restore(P, data, scope=2)
    assert b.home(P) == 2 and b.exhausted_subjects == 1
    b.at(None, scope=2, key=b"x")
    assert not b.spend(P, acc_b)  # the new owner continues the spent budget


def test_keyed_partition_watermark_refuses_late_records_and_expires_idle_subjects() -> None:
    ledger = BudgetLedger(clock=lambda: 10 * DAY_MS)
    acc = ledger.account("f", epsilon=1.0, budget=1.0, window_days=1)
    ledger.keyed()
    q = b"\x02" * 16

    def at(t: int, pseudonym: bytes) -> bool:
        ledger.at(t, scope=0, key=b"k")
        return ledger.spend(pseudonym, acc)

    assert at(0, P) and ledger.watermark(0) == 0
    assert at(3 * DAY_MS, q) and ledger.watermark(0) == 3 * DAY_MS
    # P's only release lies three windows back: no record still accepted can reach it.
    assert ledger.expired({0}) == [(0, P)] and ledger.expired({1}) == []
    # A record more than a window older than the partition's newest is refused, even for a
    # subject the ledger never saw (its history might have been expired).
    assert not at(2 * DAY_MS - 1, b"\x03" * 16)
    assert at(2 * DAY_MS + 1, b"\x04" * 16)
    ledger.forget([s for _, s in ledger.expired({0})])
    assert ledger.home(P) is None and ledger.subjects == 3
    ledger.restore_watermark(0, DAY_MS)  # a restore never moves a watermark back
    assert ledger.watermark(0) == 3 * DAY_MS


@settings(max_examples=150, deadline=None)
@given(
    # Event times on a coarse grid (quarter days, a little jitter): windows collide often.
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.builds(lambda q, j: q * DAY_MS // 4 + j, st.integers(0, 48), st.integers(-2, 2)),
        ),
        max_size=80,
    ),
    st.integers(1, 3),
)
# A one-window expiry would forget subject 0 at the third record and grant the fourth.
@example([(0, 0), (0, 1), (1, DAY_MS + 2), (0, 3)], 1)
# Without the partition rule, a late record of a rightly forgotten subject would be granted.
@example([(0, 0), (0, 1), (1, 2 * DAY_MS + 2), (0, 3)], 1)
def test_expiring_idle_subjects_never_lets_a_window_exceed_the_budget(
    events: list[tuple[int, int]], days: int
) -> None:
    """Keyed ledger, expired subjects forgotten after every record: within every window of
    every subject the granted epsilon stays within the budget (as without expiry)."""
    ledger = BudgetLedger(clock=lambda: 100 * DAY_MS)
    acc = ledger.account("f", epsilon=0.5, budget=1.0, window_days=days)
    ledger.keyed()
    granted: dict[int, list[int]] = {}
    for who, t in events:
        t = max(t, 0)
        ledger.at(t, scope=0, key=b"k")
        if ledger.spend(bytes([who]) * 16, acc):
            granted.setdefault(who, []).append(t)
        ledger.forget([s for _, s in ledger.expired({0})])
    w = days * DAY_MS
    for times in granted.values():
        for s in times:
            assert sum(1 for t in times if s <= t < s + w) * 0.5 <= 1.0


def test_keyed_record_from_the_future_is_refused_and_moves_nothing() -> None:
    """A producer with a wrong clock: its far-future record gets no release, and neither the
    partition's watermark nor any subject's state moves, so honest records stay granted."""
    now = 50 * DAY_MS
    ledger = BudgetLedger(clock=lambda: now)
    acc = ledger.account("f", epsilon=0.5, budget=1.0, window_days=1)
    ledger.keyed()
    q = b"\x02" * 16

    def at(t: int, pseudonym: bytes, scope: int = 0) -> bool:
        ledger.at(t, scope=scope, key=b"k")
        return ledger.spend(pseudonym, acc)

    assert at(now, P) and ledger.watermark(0) == now
    assert at(now + FUTURE_TOLERANCE_MS, P)  # within the tolerance: an ordinary release
    assert not at(now + 365 * DAY_MS, q)
    assert ledger.watermark(0) == now + FUTURE_TOLERANCE_MS
    assert ledger.home(q) is None and ledger.subjects == 1 and ledger.drain_dirty() == {P}
    assert ledger.future_refused == 1 and ledger.stats().future_refused == 1
    assert ledger.exhausted_subjects == 0  # not an exhausted budget
    assert at(now + 1, q)  # honest records of the partition are still granted
    with pytest.raises(BudgetKeyError):  # the partition rule holds for a future record too
        at(now + 365 * DAY_MS, q, scope=1)
