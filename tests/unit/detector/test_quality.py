"""The issue's goals as deployed: on a population the model has never seen, and on the
population whose history it was trained on (the issue's own protocol).

Trained on one population (load/eval_detect_bands.py's access training trace, seed 1000);
judged on a trace of another seed drawn from another configuration (other population size,
role mix, start date, more benign oddities): its first 14 days are history the deployed
detector has seen and calibrates on (``detector calibrate``: a threshold trained on one
population is calibrated for populations like it, see docs/detector.md "Calibration per
evidence"), and scoring counts from the first event after deployment. Asserts every
incident kind present, recall >= 0.95, normal flag rate <= 1 %, ROC-AUC >= 0.98. Both
generators, per kind and band: docs/detector.md.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from load.eval_detect_bands import ACCESS, Trace, access_trace, evaluate, office_trace, train
from load.eval_detector import UNSEEN
from streamproc.detector.model import Detector
from streamproc.testing.access_traces import KINDS


@pytest.fixture(scope="module")
def detector() -> Detector:
    return train("access")


def _check(det: Detector | None, tr: Trace, recalibrate: bool = True) -> float:
    r = evaluate(det, tr, recalibrate=recalibrate)
    kinds = {k for k, _ in r.incidents}
    hits = [x for v in r.incidents.values() for x in v]
    flag = sum(r.normal_flagged.values()) / sum(r.normal.values())
    assert kinds == set(KINDS)
    assert r.auc >= 0.98, r
    assert sum(hits) / len(hits) >= 0.95, r
    assert flag <= 0.01, r
    return flag


def test_goals_on_an_unseen_population(detector: Detector) -> None:
    cfg = replace(UNSEEN, days=17, history_days=14, incidents_per_kind=4)
    _check(detector, access_trace(1, cfg))


@pytest.mark.slow
def test_goals_with_another_training_seed() -> None:
    # a population like the training one: the trained threshold carries over uncalibrated
    det = train("access", seed=4242)
    _check(det, access_trace(3, replace(ACCESS, n_principals=60)), recalibrate=False)


def test_goals_trained_on_its_own_history() -> None:
    """``detector train`` on the first 14 days, scored from the end-of-training state: the
    realized flag rate honours the target from below too (0.5-1x; the calibration's
    confidence default is 0.7 for this, see docs/detector.md)."""
    cfg = replace(UNSEEN, days=17, history_days=14, incidents_per_kind=4)
    flag = _check(None, access_trace(1, cfg), recalibrate=False)
    assert flag >= 0.005


def test_each_activity_band_honours_the_target_on_the_second_generator() -> None:
    """The issue's protocol on an office trace (a tuning seed): the 2-10 and > 10 bands,
    each with about a thousand normal events or more, realize 0.5-1x of the target. With one
    threshold floored at the main one for every band (before format 7's second revision)
    this trace's 2-10 band flagged 0.09 % (docs/detector.md, "Bands on their own out-of-fold
    scores"). The <= 2 band has ~300 events here, too few to hold a rate to."""
    r = evaluate(None, office_trace(101))
    hits = [x for v in r.incidents.values() for x in v]
    assert {k for k, _ in r.incidents} == set(KINDS)
    assert sum(hits) / len(hits) >= 0.95 and r.auc >= 0.98, r
    for band in ("2-10", ">10"):
        assert r.normal[band] >= 1000, r
        assert 0.005 <= r.normal_flagged[band] / r.normal[band] <= 0.01, (band, r)
