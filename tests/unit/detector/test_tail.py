from __future__ import annotations

import numpy as np
import pytest

from streamproc.detector.catalog import FEATURE_NAMES, FEATURES
from streamproc.detector.tail import TailReference, joint_novelty
from streamproc.errors import DetectorError

NOVELTY = [i for i, f in enumerate(FEATURES) if f.novelty]


def _normal(n: int = 4000, seed: int = 0) -> np.ndarray:
    """Rows whose novelty rarities are each often high, but seldom all at once."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 0.3, size=(n, len(FEATURES)))
    for i in NOVELTY:
        X[:, i] = rng.choice([0.5, 4.5], size=n, p=[0.85, 0.15]) + rng.normal(0, 0.1, n)
    return X


def test_the_novelty_rarities_are_dataset_address_hour_and_namespace() -> None:
    names = {FEATURE_NAMES[i] for i in NOVELTY}
    assert names == {"dataset_rare", "ip_rare", "time_rare", "domain_rare"}


def test_new_on_every_axis_at_once_scores_though_each_axis_is_within_range() -> None:
    X = _normal()
    ref = TailReference.of(X)
    row = np.median(X, axis=0)
    row[NOVELTY] = 4.6  # each at about its normal 99.9th percentile, all together
    assert (row[NOVELTY] <= np.asarray(ref.high)[NOVELTY] + 0.3).all()
    without = TailReference(ref.low, ref.median, ref.high, None)
    assert without.score(row[None, :])[0] < 0.5
    assert ref.score(row[None, :])[0] > without.score(row[None, :])[0] + 0.2


def test_the_joint_term_is_zero_on_normal_rows_and_monotone() -> None:
    X = _normal()
    ref = TailReference.of(X)
    assert ref.joint is not None
    assert (joint_novelty(X) > ref.joint[1]).mean() <= 0.002
    row = np.median(X, axis=0)
    prev = -1.0
    for v in np.linspace(0.0, 10.0, 21):
        row[NOVELTY[0]] = v
        row[NOVELTY[1:]] = 4.6
        s = float(ref.score(row[None, :])[0])
        assert s >= prev
        prev = s


def test_gain_zero_leaves_the_joint_term_out_and_the_layout_round_trips() -> None:
    X = _normal()
    assert TailReference.of(X, joint_gain=0.0).joint is None
    ref = TailReference.of(X)
    back = TailReference.from_dict(ref.to_dict())
    assert back == ref
    old = ref.to_dict()
    del old["joint"]  # a format-5 reference
    assert TailReference.from_dict(old).joint is None
    bad = ref.to_dict() | {"joint": [1.0, "x"]}
    with pytest.raises(DetectorError, match="expected layout"):
        TailReference.from_dict(bad)
