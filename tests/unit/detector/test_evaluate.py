from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamproc.detector.evaluate import evaluate_scores, plot_roc_pr
from streamproc.errors import DetectorError


def test_metrics_on_a_hand_made_trace() -> None:
    #            n     n     i1    i1    n     i2    i2    warm-up incident
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.95, 0.4, 0.45, 0.99])
    labels = np.array([0, 0, 1, 1, 0, 1, 1, 1])
    judged = np.array([1, 1, 1, 1, 1, 1, 1, 0], dtype=bool)
    flagged = judged & (scores >= 0.8)
    ts = np.array([0, 1000, 2000, 7000, 8000, 9000, 10000, 11000])
    ids = [None, None, "i1", "i1", None, "i2", "i2", "i3"]
    kinds = [None, None, "scraping", "scraping", None, "destructive", "destructive", "bulk"]
    r = evaluate_scores(scores, flagged, judged, labels, ts, ids, kinds, 0.8)
    assert r.judged == 7 and r.incidents == 3
    assert r.incident_recall == pytest.approx(1 / 3)
    assert r.normal_flag_rate == pytest.approx(1 / 3)
    assert r.ttd_median_s == pytest.approx(5.0)
    assert r.recall_by_kind == {"scraping": 1.0, "destructive": 0.0, "bulk": 0.0}
    assert r.missed == ("i2", "i3")
    # judged pairs (incident, normal): 4 x 3 = 12, correctly ordered: 0.3>{.1,.2}, 0.9>{.1,.2},
    # 0.4>{.1,.2}, 0.45>{.1,.2} -> 8
    assert r.roc_auc == pytest.approx(8 / 12)
    assert "incident recall" in r.render()


def test_needs_both_classes() -> None:
    z = np.zeros(3)
    with pytest.raises(DetectorError):
        evaluate_scores(z, z.astype(bool), np.ones(3, bool), z, z, [None] * 3, [None] * 3, 0.5)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(200), np.ones(20)]
    s = np.r_[rng.uniform(0.3, 0.6, 200), rng.uniform(0.5, 0.8, 20)]
    p = tmp_path / "roc.png"
    plot_roc_pr(s, y, p, threshold=0.55)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
