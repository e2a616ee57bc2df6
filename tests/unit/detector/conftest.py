"""Small traces and a detector trained once per session (kept small: 2 shared cores)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from streamproc.detector.events import AccessEvent, parse_event
from streamproc.detector.model import Detector, ForestParams
from streamproc.testing.access_traces import TraceConfig, generate

SMALL = TraceConfig(seed=11, n_principals=24, days=12, history_days=8, incidents_per_kind=2)


@pytest.fixture(scope="session")
def baseline_rows() -> list[dict[str, Any]]:
    return generate(replace(SMALL, seed=901, incidents_per_kind=0))


@pytest.fixture(scope="session")
def baseline_events(baseline_rows: list[dict[str, Any]]) -> list[AccessEvent]:
    return [parse_event(r) for r in baseline_rows]


@pytest.fixture(scope="session")
def labelled_rows() -> list[dict[str, Any]]:
    return generate(SMALL)


@pytest.fixture(scope="session")
def small_detector(baseline_events: list[AccessEvent]) -> Detector:
    return Detector.train(
        baseline_events, min_age_ms=3 * 86_400_000, params=ForestParams(n_estimators=50)
    )
