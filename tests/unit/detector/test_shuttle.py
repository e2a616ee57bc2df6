"""Reproduce Liu, Ting & Zhou (2008), Table 2: isolation forest on Shuttle, ROC-AUC 1.00."""

from __future__ import annotations

import gzip
from importlib.resources import files

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from streamproc.detector.forest import CompiledForest


def load_shuttle() -> tuple[np.ndarray, np.ndarray]:
    raw = files("river.datasets").joinpath("shuttle.csv.gz").read_bytes()
    lines = gzip.decompress(raw).decode().splitlines()
    data = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]])
    return data[:, :-1], data[:, -1].astype(int)


@pytest.mark.slow
def test_shuttle_roc_auc_reproduces_the_paper() -> None:
    X, y = load_shuttle()
    assert X.shape == (49_097, 9) and y.sum() == 3_511
    # the paper's defaults: t = 100 trees, psi = 256 sub-samples, fitted on all (unlabelled) data
    aucs = []
    for seed in (0, 1, 2):
        f = IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(X)
        aucs.append(roc_auc_score(y, CompiledForest(f).score(X)))
    assert min(aucs) >= 0.99, aucs
