"""The issue's goals, on populations the model has never seen.

Trained on one population; judged on traces of other seeds drawn from another configuration
(other population size, role mix, start date, more benign oddities). Each trace asserts the
real goals: every incident kind present, incident recall >= 0.95, normal flag rate <= 1 %,
ROC-AUC >= 0.98. The full table over seeds and configurations is in docs/detector.md.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from load.eval_detector import TRAIN as TRAIN_EVAL
from load.eval_detector import UNSEEN as UNSEEN_EVAL
from streamproc.detector.decide import Decider
from streamproc.detector.evaluate import evaluate_rows
from streamproc.detector.events import parse_event
from streamproc.detector.model import Detector
from streamproc.detector.pipeline import Scorer
from streamproc.testing.access_traces import KINDS, TraceConfig, generate

#: The training configuration of load/eval_detector.py (seed 1000, as in docs/detector.md).
TRAIN = TRAIN_EVAL
#: The unseen configuration of load/eval_detector.py (130 principals, 24 days).
UNSEEN = UNSEEN_EVAL


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    det = Detector.train([parse_event(r) for r in generate(TRAIN)])
    return Scorer(det, Decider.from_detector(det))


def _check(scorer: Scorer, cfg: TraceConfig, max_flag_rate: float = 0.01) -> None:
    r = evaluate_rows(scorer, generate(cfg)).report
    assert set(r.recall_by_kind) == set(KINDS)
    assert r.roc_auc >= 0.98, r.render()
    assert r.incident_recall >= 0.95, r.render()
    assert r.normal_flag_rate <= max_flag_rate, r.render()


def test_goals_on_an_unseen_trace(scorer: Scorer) -> None:
    _check(scorer, replace(UNSEEN, seed=1))


@pytest.mark.slow
def test_goals_with_another_training_seed_on_a_small_population() -> None:
    """Trained on seed 4242 instead and judged on a smaller unseen population (60
    principals, seed 3, the noisiest of docs/detector.md), the flag rate was 1.40 %
    (unweighted calibration, 100 trees), 1.01 % (weighted), 0.99 % with 300 trees and is
    0.86 % with format 3 (namespace rarity, one-sided background, calibration for
    20-principal populations): all goals hold."""
    det = Detector.train([parse_event(r) for r in generate(replace(TRAIN, seed=4242))])
    _check(Scorer(det), replace(UNSEEN, n_principals=60, seed=3))
