"""Stream k-anonymity / l-diversity with a delay bound: properties that try to break them.

A driver feeds generated records with generated gaps and polls at every arrival and at every
deadline the anonymizer announces (as the worker's timer would). After EVERY poll the
cumulative output must be k/l-valid (a consumer may read the topic at any time); no record is
released later than arrival + max_delay_ms in the injected clock; each record leaves exactly
once, as a true generalization of itself; restoring published state keeps the guarantee.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.anonymity import Release, StreamAnonymizer, parse_ladder
from tests.unit.anonymity.strategies import covers, sensitive_column, table, violations

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ident(r: Release) -> int:
    assert isinstance(r.item_id, int)
    return r.item_id


def drive(
    s: StreamAnonymizer,
    rows: Sequence[tuple[Any, ...]],
    sens: Sequence[tuple[Hashable, ...]] | None,
    gaps: Sequence[int],
    *,
    start: int = 0,
    offset: int = 0,
    check: Any = None,
) -> tuple[list[Release], int]:
    out: list[Release] = []
    t = start

    def take(releases: list[Release]) -> None:
        out.extend(releases)
        if check is not None:
            check(out)

    for i, row in enumerate(rows):
        target = t + gaps[i]
        while (d := s.next_deadline()) is not None and d <= target:
            take(s.poll(d))
        t = target
        s.add(offset + i, row, sens[i] if sens else None, arrival_ms=t)
        take(s.poll(t))
        if s.max_buffered is not None:
            assert len(s.buffered()) <= s.max_buffered
    while (d := s.next_deadline()) is not None:
        take(s.poll(d))
    assert s.oldest_buffered() is None and s.flush(t) == []
    return out, t


@SETTINGS
@given(data=st.data())
def test_cumulative_guarantee_delay_bound_and_exactly_once(data: Any) -> None:
    ladders, rows = data.draw(table())
    k, l_div = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    sens = sensitive_column(data.draw, len(rows)) if l_div > 1 else None
    delay = data.draw(st.integers(0, 50))
    cap = data.draw(st.one_of(st.none(), st.integers(1, 20)))
    gaps = data.draw(st.lists(st.integers(0, 30), min_size=len(rows), max_size=len(rows)))
    s = StreamAnonymizer(ladders, k=k, l=l_div, max_delay_ms=delay, max_buffered=cap)
    by_id = {i: r for i, r in enumerate(rows)}

    def check(out: list[Release]) -> None:
        assert (
            violations(
                [r.values for r in out],
                [sens[ident(r)] for r in out] if sens else None,
                k,
                l_div,
            )
            == []
        )

    out, _ = drive(s, rows, sens, gaps, check=check)
    assert sorted(ident(r) for r in out) == list(range(len(rows)))
    for r in out:
        assert r.released_ms <= r.arrival_ms + delay
        row = by_id[ident(r)]
        assert all(covers(lad, v, o) for lad, v, o in zip(ladders, row, r.values, strict=True))
        assert r.suppressed == all(v is None for v in r.values)


@SETTINGS
@given(data=st.data())
def test_restored_published_state_keeps_the_guarantee_across_a_restart(data: Any) -> None:
    ladders, rows = data.draw(table(max_rows=40))
    k = data.draw(st.integers(2, 4))
    cut = data.draw(st.integers(0, len(rows)))
    gaps = data.draw(st.lists(st.integers(0, 20), min_size=len(rows), max_size=len(rows)))
    first = StreamAnonymizer(ladders, k=k, max_delay_ms=25)
    out1, t = drive(first, rows[:cut], None, gaps[:cut])
    state = json.loads(json.dumps(first.snapshot()))  # must survive a JSON store
    second = StreamAnonymizer(ladders, k=k, max_delay_ms=25)
    assert second.restore(state)
    out2, _ = drive(second, rows[cut:], None, gaps[cut:], start=t, offset=cut)
    assert violations([r.values for r in out1 + out2], None, k, 1) == []


def _age(widths: list[int]) -> Any:
    return parse_ladder({"bucket": widths}, "int", schema_file="s", field_path="age")


def test_a_late_record_joins_a_published_combination_instead_of_being_suppressed() -> None:
    s = StreamAnonymizer([_age([10])], k=3, max_delay_ms=100)
    for i, age in enumerate([31, 33, 35]):
        s.add(i, (age,), arrival_ms=i)
    first = s.poll(100)
    assert [r.values for r in first] == [({"lo": 30, "hi": 40},)] * 3
    s.add(9, (38,), arrival_ms=200)
    (late,) = s.poll(300)
    assert late.values == ({"lo": 30, "hi": 40},) and late.reused and not late.suppressed
    s.add(10, (75,), arrival_ms=400)  # nothing covers it, nobody to group with
    (alone,) = s.poll(500)
    assert alone.suppressed and alone.values == (None,)
    assert s.suppressed_share == 0.2


def test_oldest_buffered_and_flush() -> None:
    s = StreamAnonymizer([_age([10])], k=2, max_delay_ms=1000)
    s.add(("p0", 7), (30,), arrival_ms=50)
    s.add(("p0", 5), (31,), arrival_ms=10)
    s.add(("p1", 2), (80,), arrival_ms=20)
    assert s.poll(500) == []
    oldest = s.oldest_buffered()
    assert oldest is not None and oldest.item_id == ("p0", 5) and oldest.arrival_ms == 10
    assert s.next_deadline() == 1010
    out = s.flush(600)
    assert {r.item_id for r in out} == {("p0", 7), ("p0", 5), ("p1", 2)}
    assert all(r.released_ms == 600 for r in out)
    assert s.oldest_buffered() is None and s.next_deadline() is None


def test_restore_refuses_state_of_other_fields() -> None:
    s = StreamAnonymizer([_age([10])], k=2, max_delay_ms=0)
    state = s.snapshot()
    other = StreamAnonymizer(
        [parse_ladder({"bucket": [10]}, "int", schema_file="s", field_path="weight")],
        k=2,
        max_delay_ms=0,
    )
    assert not other.restore(state)
    assert not s.restore({"version": 99})


def test_errors_never_echo_ids_or_values() -> None:
    s = StreamAnonymizer([_age([10])], k=2, max_delay_ms=0)
    s.add("CANARY-id", (41,), arrival_ms=0)
    with pytest.raises(ValueError) as info:
        s.add("CANARY-id", (41,), arrival_ms=0)
    with pytest.raises(ValueError) as info2:
        s.add("x", ("CANARY-v", 1), arrival_ms=0)
    assert "CANARY" not in str(info.value) and "CANARY" not in str(info2.value)


def test_replay_after_a_crash_completes_the_group_at_the_same_values() -> None:
    s = StreamAnonymizer([_age([10, 20])], k=3, max_delay_ms=100)
    for i, age in enumerate([31, 33, 35]):
        s.add(i, (age,), arrival_ms=i)
    group = s.poll(100)
    pins = {r.item_id: json.loads(json.dumps(r.pin())) for r in group}
    # Crash before the commit: a fresh worker reads all three again and replays their pins.
    again = StreamAnonymizer([_age([10, 20])], k=3, max_delay_ms=100)
    replayed = [
        again.replay(i, (age,), pin=pins[i], arrival_ms=i, now_ms=5)
        for i, age in enumerate([31, 33, 35])
    ]
    assert [r.values for r in replayed if r is not None] == [r.values for r in group]
    assert all(r is not None and r.replayed for r in replayed)
    assert again.buffered() == []
    # A pin that does not cover the record (another value, another policy) is not used.
    assert again.replay(7, (55,), pin=pins[0], arrival_ms=6, now_ms=6) is None
    assert [b.item_id for b in again.buffered()] == [7]
    assert (
        again.replay(8, (31,), pin={"levels": [9], "cells": [None]}, arrival_ms=6, now_ms=6) is None
    )


def test_companions_are_the_nearest_then_the_oldest() -> None:
    """e's group is [30, 40) x [40, 50) (nothing finer has 3 records); among the four sharing
    it, y shares e's exact first value, so it goes before the older x and w."""
    a = parse_ladder({"bucket": [1, 10]}, "int", schema_file="s", field_path="a")
    b = parse_ladder({"bucket": [1, 10]}, "int", schema_file="s", field_path="b")
    s = StreamAnonymizer([a, b], k=3, max_delay_ms=100)
    for t, (name, qi) in enumerate(
        [("e", (31, 41)), ("x", (35, 45)), ("w", (36, 46)), ("y", (31, 48))]
    ):
        s.add(name, qi, arrival_ms=t)
    first = s.poll(100)
    assert sorted(r.item_id for r in first) == ["e", "x", "y"]
    assert all(r.values == ({"lo": 30, "hi": 40}, {"lo": 40, "hi": 50}) for r in first)
