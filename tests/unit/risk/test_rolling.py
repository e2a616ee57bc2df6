"""RollingRisk equals measure() over the same last-N window, after every record."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streamproc.metrics import WorkerMetrics
from streamproc.risk import RiskError, RollingRisk, measure

ROW = st.fixed_dictionaries(
    {
        "a": st.one_of(st.none(), st.integers(0, 3)),
        "b": st.one_of(st.none(), st.sampled_from(["x", "y"])),
    }
)


def stats(r: Any) -> tuple[Any, ...]:
    return (r.records, r.classes, r.k_min, r.unique_share, r.below_k_share, r.suppressed)


@settings(max_examples=150, deadline=None)
@given(st.lists(ROW, max_size=120), st.integers(1, 25), st.integers(1, 6))
def test_matches_measure_over_the_window(rows: list[dict[str, Any]], window: int, k: int) -> None:
    rolling = RollingRisk(window, ["a", "b"], k=k)
    for i, row in enumerate(rows):
        rolling.add(row)
        batch = measure(rows[max(0, i + 1 - window) : i + 1], ["a", "b"], k=k)
        assert stats(rolling) == pytest.approx(stats(batch))


def test_k_min_recovers_after_the_smallest_class_leaves() -> None:
    r = RollingRisk(4, ["a"], k=2)
    for a in (1, 2, 2, 2):
        r.add({"a": a})
    assert r.k_min == 1
    r.add({"a": 2})  # the lone "1" leaves the window
    assert (r.k_min, r.classes, r.unique_share, r.below_k_share) == (4, 1, 0.0, 0.0)


@pytest.mark.parametrize(
    ("window", "quasi", "k", "message"),
    [(0, ["a"], 5, "window"), (5, [], 5, "quasi"), (5, ["a"], 0, "k must")],
)
def test_bad_parameters(window: int, quasi: list[str], k: int, message: str) -> None:
    with pytest.raises(RiskError, match=message):
        RollingRisk(window, quasi, k)


def test_worker_metrics_export_a_flows_exposure() -> None:
    """What the worker does with a flow's RollingRisk (SanitizeFlow.combined_state)."""
    metrics = WorkerMetrics(CollectorRegistry())
    rolling = RollingRisk(10, ["a"], k=3)
    for a in (1, 1, 1, 2, 2):
        rolling.add({"a": a, "secret": "CANARY"})
    state = {
        "exposure": {
            "records": rolling.records,
            "k_min": rolling.k_min,
            "unique_share": rolling.unique_share,
            "below_k_share": rolling.below_k_share,
        }
    }
    metrics.flow_state("customers", state)
    get = metrics.registry.get_sample_value
    assert get("streamproc_output_k_min", {"topology": "customers"}) == 2
    assert get("streamproc_output_unique_share", {"topology": "customers"}) == 0.0
    assert get("streamproc_output_below_k_share", {"topology": "customers"}) == 0.4
