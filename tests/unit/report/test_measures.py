"""The report's measures on small tables whose answers are known."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.report.data import FieldPolicy, ReportError, scalar
from streamproc.report.measures import (
    SUPPRESSED,
    _measure_risk,
    distribution,
    edge_label,
    field_figures,
    info_loss,
    sig,
)
from streamproc.report.utility import dp_budget, utility


def pol(path: str, action: str = "keep", out: str | None = "", **ann: Any) -> FieldPolicy:
    return FieldPolicy(
        path, path if out == "" else out, action, ann.pop("cls", None), "", "annotation", ann
    )


def test_categories_under_k_are_merged_and_unnamed_when_not_kept() -> None:
    values = ["a"] * 6 + ["b"] * 5 + ["c"] * 4 + [None]
    kept = distribution("text", values, 5, named=True)
    assert kept.labels == ("a", "b", SUPPRESSED) and kept.counts == (6, 5, 4)
    assert (kept.n, kept.nulls, kept.distinct) == (16, 1, 3)
    hidden = distribution("text", values, 5, named=False)
    assert hidden.labels == ("#1", "#2", SUPPRESSED)


def test_mostly_unique_text_becomes_a_length_distribution() -> None:
    values = [f"id-{i:04d}" for i in range(50)]
    d = distribution("text", values, 5, named=False)
    assert d.kind == "lengths" and d.labels == ("7",) and d.counts == (50,)


def test_numeric_bins_cover_the_values_with_rounded_edges() -> None:
    values = [float(v) for v in range(1000)]
    d = distribution("number", values, 5, named=False)
    assert sum(d.counts) == 1000 and len(d.counts) == 20
    assert all(lbl == sig(float(lbl)) for lbl in d.labels)


def test_drift_and_loss_of_known_cases() -> None:
    raw = [{"x": float(i % 10), "c": "ab"[i % 2]} for i in range(100)]
    same = field_figures(pol("x"), raw, raw, 5)
    assert same.total_variation == 0.0 and same.wasserstein == 0.0 and same.info_loss == 0.0
    shifted = [{"x": r["x"] + 1.0, "c": r["c"]} for r in raw]
    f = field_figures(pol("x", "noise", epsilon=0.5), raw, shifted, 5)
    sd = math.sqrt(sum((v - 4.5) ** 2 for v in range(10)) / 10)
    assert f.wasserstein == pytest.approx(1.0 / sd)
    assert f.info_loss == pytest.approx(1.0 / sd)
    assert f.epsilon == 0.5
    const = [{"x": 0.0, "c": "z"} for _ in raw]
    assert info_loss(pol("c", "mask"), "text", [r["c"] for r in raw], "text", ["z"] * 100) == 1.0
    dropped = field_figures(pol("c", "drop", out=None), raw, const, 5)
    assert dropped.info_loss == 1.0 and dropped.sanitized is None
    recoded = field_figures(pol("c", "pseudonymize"), raw, [{"c": r["c"] * 3} for r in raw], 5)
    assert recoded.total_variation is None and recoded.info_loss == 0.0


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3)), min_size=1, max_size=60),
    st.integers(1, 6),
)
def test_risk_matches_a_brute_force_count(rows: list[tuple[str, int]], k: int) -> None:
    records = [{"q1": a, "q2": b} for a, b in rows]
    r = _measure_risk(records, ["q1", "q2"], k)
    sizes = [sum(1 for x in rows if x == row) for row in rows]  # class size of each record
    assert r.k_min == min(sizes)
    assert r.unique_share == sum(1 for s in sizes if s == 1) / len(rows)
    assert r.below_k_share == sum(1 for s in sizes if s < k) / len(rows)
    assert r.classes == len(set(rows))


def test_dp_budget_composes_per_subject() -> None:
    policies = [
        pol("member", "pseudonymize", cls="direct"),
        pol("a", "noise", epsilon=0.25),
        pol("b", "noise", epsilon=0.5, subject="member"),
    ]
    raw = [{"member": m} for m in "xxxyz"]
    d = dp_budget(policies, raw)
    assert d.per_field == (("a", 0.25), ("b", 0.5))
    assert d.subject_field == "member" and d.max_records_per_subject == 3
    assert d.per_subject == pytest.approx(2.25)


def test_utility_refuses_a_label_that_is_not_kept() -> None:
    raw = [{"y": i % 2, "x": float(i)} for i in range(20)]
    with pytest.raises(ReportError, match="--label y: must be a field"):
        utility([pol("y", "noise"), pol("x")], raw, raw, "y")


def test_utility_of_identical_data_is_identical() -> None:
    raw = [{"y": i % 2 == 0, "x": float(i % 2) + 0.1 * (i % 7)} for i in range(200)]
    u = utility([pol("y"), pol("x")], raw, raw, "y")
    assert u.accuracy_raw == u.accuracy_sanitized == 1.0
    assert u.n_train + u.n_test == 200


def test_scalar_kinds() -> None:
    assert scalar(None) == ("null", None)
    assert scalar(True) == ("bool", "true")
    assert scalar(3) == ("number", 3.0)
    assert scalar(dt.date(1970, 1, 11)) == ("date", 10.0)
    assert scalar(dt.datetime(1970, 1, 1, 0, 1, tzinfo=dt.UTC)) == ("timestamp", 60.0)
    assert scalar("x") == ("text", "x")


def test_date_and_time_bins_are_coarser_than_any_value() -> None:
    days = [float(d) for d in range(0, 20_000, 7)]
    d = distribution("date", days, 5, named=False)
    assert all(len(lbl) == 7 and lbl[4] == "-" for lbl in d.labels)  # YYYY-MM
    assert edge_label("timestamp", 86_400.0 * 365) == "1971-01-01"
