"""The worker's k-anonymity buffer across crashes: properties that try to break it.

A simulated source partition is read by a simulated worker that commits and crashes at
generated points. The state topic, the sink and the committed offset are modelled as Kafka
makes them under each guarantee:

- exactly_once: rows, pins, retired pins and the offset commit in one transaction; a crash
  loses the open transaction.
- at_least_once: pins are acknowledged before their rows are sent; rows are durable once
  sent; the offset commit comes after; retired pins after it. A crash may fall between a pin
  and its rows.

After each run, every source offset is in the output (exactly once, or at least once with
identical duplicates), and every combination of the output is k/l-valid counted over
distinct records, whatever the crash points.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.anonymity import StreamAnonymizer, parse_ladder
from streamproc.pipeline.grouping import PartitionGroups, Prepared, read_state
from tests.unit.anonymity.strategies import covers, freeze, table, violations

DEAD = ("dead letter",)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def prepared(offset: int, qi: tuple[Any, ...], sens: tuple[Hashable, ...]) -> Prepared:
    return Prepared(None, b"", {}, [], 0, "t", 0, offset, None, qi, sens)


class Sim:
    """One partition, one worker at a time, Kafka's side modelled in lists."""

    def __init__(self, ladders: list[Any], k: int, l: int, delay: int, eos: bool) -> None:  # noqa: E741
        self.ladders, self.k, self.l, self.delay, self.eos = ladders, k, l, delay, eos
        self.committed = -1001  # none yet
        self.state: list[tuple[bytes, bytes | None]] = []
        self.out: list[tuple[int, tuple[Any, ...]]] = []
        self.clock = 0
        self.start()

    def start(self) -> None:
        anon = StreamAnonymizer(self.ladders, k=self.k, l=self.l, max_delay_ms=self.delay)
        st_ = read_state(0, self.state, max(self.committed, 0))
        self.g = PartitionGroups(anon, 0, skip_pinned=self.eos, state=st_)
        self.pos = max(self.committed, 0)
        self.next = self.pos
        self.txn_rows: list[tuple[int, tuple[Any, ...]]] = []
        self.txn_state: list[tuple[bytes, bytes | None]] = []

    def _rows(self, rows: list[tuple[int, tuple[Any, ...]]], *, crash_after_pin: bool) -> bool:
        msgs = self.g.pin_messages()
        if self.eos:
            self.txn_state += msgs
            self.txn_rows.extend(rows)
            return False
        self.state += msgs  # acknowledged before any of its rows is sent
        if crash_after_pin and rows:
            return True
        self.out.extend(rows)
        return False

    def step(self, rec: Prepared, *, bad: bool = False, crash_after_pin: bool = False) -> bool:
        """Read one record at the current clock; True if the worker died mid-send. A ``bad``
        record is a dead letter: produced at once, outside any group."""
        self.next = rec.offset + 1
        rows: list[tuple[int, tuple[Any, ...]]] = []
        if bad:
            if self.g.dead(rec.offset):
                rows.append((rec.offset, DEAD))
        else:
            got = self.g.offer(rec, self.clock)
            if not isinstance(got, bool):
                rows.append((rec.offset, got.values))
        rows += [(r.offset, rel.values) for r, rel in self.g.poll(self.clock)]
        return self._rows(rows, crash_after_pin=crash_after_pin)

    def tick(self, to: int) -> None:
        self.clock = max(self.clock, to)
        rows = [(r.offset, rel.values) for r, rel in self.g.poll(self.clock)]
        self._rows(rows, crash_after_pin=False)

    def commit(self) -> None:
        off = self.g.commit_offset(self.next)
        if self.eos:
            self.txn_state += self.g.state_messages(off, now_s=self.clock / 1000)
            self.out += self.txn_rows
            self.state += self.txn_state
            self.txn_rows, self.txn_state = [], []
            self.committed = off
        else:
            self.committed = off
            self.state += self.g.state_messages(off, now_s=self.clock / 1000)

    def crash(self) -> None:
        self.start()


@st.composite
def runs(draw: Any) -> tuple[Any, ...]:
    ladders, rows = draw(table(max_qis=3, max_rows=50))
    k = draw(st.integers(1, 4))
    l_div = draw(st.integers(1, 2))
    sens = [(draw(st.sampled_from(["a", "b", "c"])),) for _ in rows]
    gaps = draw(st.lists(st.integers(0, 40), min_size=len(rows), max_size=len(rows)))
    # Per read: 0 nothing, 1 commit, 2 crash, 3 crash between a pin and its rows.
    events = draw(
        st.lists(st.sampled_from([0, 0, 0, 1, 1, 2, 3]), min_size=len(rows), max_size=len(rows))
    )
    bad = draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    bad = [b and i % 3 == 0 for i, b in enumerate(bad)]  # about one in six is a dead letter
    return ladders, rows, sens, k, l_div, draw(st.integers(0, 100)), gaps, events, bad


def run(params: tuple[Any, ...], eos: bool) -> Sim:
    ladders, rows, sens, k, l_div, delay, gaps, events, bad = params
    sim = Sim(ladders, k, l_div, delay, eos)
    crashes = 0
    while sim.pos < len(rows):
        i = sim.pos
        sim.clock += gaps[i]
        sim.tick(sim.clock)
        ev = events[i] if crashes < 6 else 0
        died = sim.step(prepared(i, rows[i], sens[i]), bad=bad[i], crash_after_pin=ev == 3)
        sim.pos = i + 1
        if died or ev == 2:
            crashes += 1
            sim.crash()
            continue
        if ev == 1:
            sim.commit()
    sim.tick(sim.clock + delay + 1)
    sim.commit()
    assert sim.g.buffered == 0
    return sim


def check_output(sim: Sim, params: tuple[Any, ...], *, exactly_once: bool) -> None:
    ladders, rows, sens, k, l_div = params[:5]
    bad = params[-1]
    by_offset: dict[int, set[tuple[Any, ...]]] = defaultdict(set)
    count: dict[int, int] = defaultdict(int)
    for o, values in sim.out:
        by_offset[o].add(tuple(freeze(v) for v in values))
        count[o] += 1
        assert (values == DEAD) == bad[o]
        if values != DEAD:
            for lad, raw, v in zip(ladders, rows[o], values, strict=True):
                assert covers(lad, raw, v)
    assert sorted(by_offset) == list(range(len(rows))), "a source offset was lost"
    if exactly_once:
        assert all(n == 1 for n in count.values()), "a record was produced twice"
    # A duplicate (at_least_once) shows the same cells: nothing for a consumer to intersect.
    assert all(len(v) == 1 for v in by_offset.values())
    first = {o: values for o, values in reversed(sim.out) if values != DEAD}
    order = sorted(first)
    assert not violations([first[o] for o in order], [sens[o] for o in order], k, l_div)


@SETTINGS
@given(runs())
def test_exactly_once_crashes_lose_nothing_duplicate_nothing_and_keep_k(params: Any) -> None:
    sim = run(params, eos=True)
    check_output(sim, params, exactly_once=True)


@SETTINGS
@given(runs())
def test_at_least_once_duplicates_are_identical_and_keep_k(params: Any) -> None:
    sim = run(params, eos=False)
    check_output(sim, params, exactly_once=False)


def test_pins_below_the_commit_retire_and_the_commit_waits_for_the_buffer() -> None:
    age = parse_ladder({"bucket": [10]}, "int", schema_file="s", field_path="age")
    g = PartitionGroups(StreamAnonymizer([age], k=2, max_delay_ms=100), 0, skip_pinned=True)
    assert g.offer(prepared(0, (31,), ()), 0) is True
    assert g.offer(prepared(1, (75,), ()), 10) is True
    assert g.offer(prepared(2, (35,), ()), 20) is True
    assert g.commit_offset(3) == 0  # offset 0 is still buffered
    released = g.poll(100)  # 0 is due: it groups with 2; 1 waits
    assert sorted(r.offset for r, _ in released) == [0, 2]
    assert g.commit_offset(3) == 1
    ((key, body),) = g.pin_messages()
    assert key.startswith(b"pin/0/0/") and b'"2"' in body and b'"0"' in body
    assert g.state_messages(1, now_s=0) == []  # pin of 2 is above the commit
    state = read_state(0, [(key, body)], 1)
    assert set(state.pins) == {2}  # 0 is below the committed offset
    g.poll(110)  # 1 leaves suppressed (no partner in time)
    assert g.commit_offset(3) == 3
    msgs = g.state_messages(3, now_s=100)
    assert (key, None) in msgs  # the batch retires once the commit passed it
    assert read_state(0, [(key, body), (key, None)], 3).pins == {}


def test_a_restarted_owner_skips_committed_pins_under_exactly_once() -> None:
    age = parse_ladder({"bucket": [10]}, "int", schema_file="s", field_path="age")
    pins = {b"pin/0/5/1": b'{"pins":{"6":{"levels":[0],"cells":[[30,40]]}}}'}
    state = read_state(0, list(pins.items()), 5)
    eos = PartitionGroups(
        StreamAnonymizer([age], k=2, max_delay_ms=100), 0, skip_pinned=True, state=state
    )
    assert eos.offer(prepared(6, (33,), ()), 0) is False and eos.skipped == 1
    alo = PartitionGroups(
        StreamAnonymizer([age], k=2, max_delay_ms=100), 0, skip_pinned=False, state=state
    )
    rel = alo.offer(prepared(6, (33,), ()), 0)
    assert not isinstance(rel, bool) and rel.values == ({"lo": 30, "hi": 40},)
