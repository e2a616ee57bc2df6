"""The issue's goals on a modest trace: trained on one population, judged on an unseen one.

Known gap: at the default calibration (1 % on held-back normal traffic) the realised normal
flag rate on an unseen population with another role mix is about 1.2-2 %, not <= 1 %; the
test pins it below 2.5 % so a regression shows, and docs/detector.md reports the figures.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from load.access_traces import KINDS, TraceConfig, generate
from streamproc.detector.decide import Decider
from streamproc.detector.evaluate import evaluate_rows
from streamproc.detector.events import parse_event
from streamproc.detector.model import Detector
from streamproc.detector.pipeline import Scorer

TRAIN = TraceConfig(seed=4242, n_principals=50, days=14, incidents_per_kind=0)
UNSEEN = TraceConfig(
    n_principals=45,
    days=18,
    history_days=11,
    start="2024-10-07",
    incidents_per_kind=4,
    role_mix={
        "analyst": 0.25,
        "data_scientist": 0.25,
        "engineer": 0.25,
        "support": 0.1,
        "admin": 0.05,
        "etl_service": 0.06,
        "bi_service": 0.04,
    },
)


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    det = Detector.train([parse_event(r) for r in generate(TRAIN)])
    return Scorer(det, Decider.from_detector(det))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_goals_on_unseen_traces(scorer: Scorer, seed: int) -> None:
    r = evaluate_rows(scorer, generate(replace(UNSEEN, seed=seed))).report
    assert set(r.recall_by_kind) == set(KINDS)
    assert r.roc_auc >= 0.98, r.render()
    assert r.incident_recall >= 0.95, r.render()
    assert r.normal_flag_rate <= 0.025, r.render()
