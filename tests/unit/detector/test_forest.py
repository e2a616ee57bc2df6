from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from streamproc.detector.forest import APPLY_MIN_ROWS, CompiledForest, average_path_length
from streamproc.errors import DetectorError


@pytest.mark.parametrize(("max_features", "max_samples"), [(1.0, 256), (0.5, 64), (1.0, 2)])
def test_compiled_scores_equal_sklearn(max_features: float, max_samples: int) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, 6))
    f = IsolationForest(
        n_estimators=30, max_samples=max_samples, max_features=max_features, random_state=1
    ).fit(X)
    Y = np.vstack([rng.normal(size=(300, 6)) * 2, X[:50]])
    np.testing.assert_allclose(CompiledForest(f).score(Y), -f.score_samples(Y), rtol=0, atol=1e-12)


@pytest.mark.parametrize("max_features", [1.0, 0.5])
def test_both_walks_give_sklearns_scores(
    max_features: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large batch goes through sklearn's per-tree ``Tree.apply``, a small one through the
    numpy walk: both equal ``-score_samples`` row by row, so a row's score does not depend on
    the size of the fetch it arrived in."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(1000, 5))
    f = IsolationForest(n_estimators=40, max_features=max_features, random_state=2).fit(X)
    cf = CompiledForest(f)
    applied: list[int] = []
    apply_depths = cf._apply_depths

    def spy(rows: np.ndarray) -> np.ndarray:
        applied.append(len(rows))
        return apply_depths(rows)

    monkeypatch.setattr(cf, "_apply_depths", spy)
    Y = np.vstack([rng.standard_t(2, size=(3 * APPLY_MIN_ROWS, 5)) * 3, X[:40]])
    whole = cf.score(Y)  # one batch: Tree.apply
    assert applied == [len(Y)]
    small = APPLY_MIN_ROWS // 4
    pieces = np.concatenate([cf.score(Y[i : i + small]) for i in range(0, len(Y), small)])
    assert applied == [len(Y)]  # the small pieces took the numpy walk
    expected = -f.score_samples(Y)
    np.testing.assert_allclose(whole, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pieces, expected, rtol=0, atol=1e-12)


def test_single_row_and_empty_batch() -> None:
    X = np.random.default_rng(0).normal(size=(300, 3))
    f = IsolationForest(n_estimators=10, random_state=0).fit(X)
    cf = CompiledForest(f)
    assert cf.score(X[:1]).shape == (1,)
    assert cf.score(np.empty((0, 3))).shape == (0,)
    with pytest.raises(DetectorError, match="shape"):
        cf.score(np.zeros((2, 4)))


def test_unfitted_forest_is_refused() -> None:
    with pytest.raises(DetectorError, match="not fitted"):
        CompiledForest(IsolationForest())


def test_average_path_length_matches_paper() -> None:
    n = np.array([1, 2, 256])
    c = average_path_length(n)
    assert c[0] == 0 and c[1] == 1
    # c(n) = 2 H(n-1) - 2 (n-1)/n with H(i) ~ ln(i) + Euler's constant
    assert c[2] == pytest.approx(2 * (np.log(255) + np.euler_gamma) - 2 * 255 / 256)
