"""The benchmark's windowed rows: arrival runs and the ladder bound restricted to a window.

``load/bench_anonymity.py`` reports how far a delay bound alone keeps any method from
Mondrian's whole-file loss; these tests pin what its windowed bounds count.
"""

from __future__ import annotations

import numpy as np
import pytest

from load.bench_anonymity import Dataset, Evaluator, _box_counts, chunks, ladder_bound
from streamproc.anonymity import parse_ladder


def test_chunks_are_consecutive_and_a_short_tail_joins_the_last_run() -> None:
    assert chunks(list(range(10)), 4, k=2) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert chunks(list(range(9)), 4, k=2) == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    assert chunks(list(range(3)), 4, k=2) == [[0, 1, 2]]


def test_box_counts_within_runs_and_near_arrivals() -> None:
    key = np.array([7, 7, 7, 7, 9, 9])
    assert _box_counts(key, None, None).tolist() == [4, 4, 4, 4, 2, 2]
    runs = np.array([0, 0, 1, 1, 1, 0])
    assert _box_counts(key, runs, None).tolist() == [2, 2, 2, 2, 1, 1]
    # Arrivals 0..5; w = 2: the same box and less than 2 apart.
    pos = np.arange(6)
    assert _box_counts(key, None, (pos, 2)).tolist() == [2, 3, 3, 2, 2, 2]


def _tiny() -> tuple[Dataset, list[tuple[int]]]:
    lad = parse_ladder({"bucket": [1, 2, 4]}, "int", schema_file="t", field_path="x")
    rows = [(v,) for v in (0, 0, 1, 1, 2, 3, 0, 0)]
    ds = Dataset("tiny", "test", ("x",), (lad,), rows, np.zeros((len(rows), 0)), None)
    return ds, rows


def test_a_window_can_only_raise_the_ladder_bound() -> None:
    ds, rows = _tiny()
    ev = Evaluator(ds.ladders, [[r[0] for r in rows]])
    whole = ladder_bound(ds, rows, 2, ev)
    # Whole file: every record has a partner in its exact cell except 2 and 3, which share [2, 4).
    assert whole == pytest.approx((6 * 0.0 + 2 * (1 / 3)) / 8)
    runs = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    windowed = ladder_bound(ds, rows, 2, ev, runs=runs)
    assert windowed == pytest.approx(whole)  # every box still has its pair in its own run
    split = np.array([0, 1, 0, 1, 0, 1, 0, 1])  # pairs torn apart
    assert ladder_bound(ds, rows, 2, ev, runs=split) > whole
    pos = np.arange(8)
    assert ladder_bound(ds, rows, 2, ev, near=(pos, 8)) == pytest.approx(whole)
    assert ladder_bound(ds, rows, 2, ev, near=(pos, 1)) == 1.0  # nothing near: suppressed
