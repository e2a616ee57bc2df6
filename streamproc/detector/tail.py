"""Robust per-feature tail scores: a score that keeps growing with extremity.

An isolation forest gives a point far outside the training range about the same depth as
one just outside it, so its score saturates: a 10^4x export scores like a 20x one. The tail
score adds, per feature, how far the value lies beyond the normal 99.9th percentile (below
the 0.1th for the signed features) in units of that percentile's distance from the median:

    tail(x) = sum_j max(0, (x_j - q999_j) / (q999_j - median_j))

It is zero for nearly all normal traffic, grows linearly with every feature (and the
features grow with the log of a volume, a count, a rarity), and never decreases when any
feature moves further out. The detector's score is ``forest + weight * tail``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamproc.detector.catalog import FEATURES
from streamproc.errors import DetectorError

_SIGNED = np.array([f.signed for f in FEATURES])
_MIN_SCALE = 0.25  # a feature almost constant in normal traffic still needs a scale


@dataclass(frozen=True, slots=True)
class TailReference:
    """Per-feature median and extreme quantiles of normal training rows."""

    low: tuple[float, ...]  # 0.1th percentile
    median: tuple[float, ...]
    high: tuple[float, ...]  # 99.9th percentile

    @classmethod
    def of(cls, X: np.ndarray, q: float = 0.999) -> TailReference:
        qs = np.quantile(X, [1.0 - q, 0.5, q], axis=0)
        return cls(tuple(map(float, qs[0])), tuple(map(float, qs[1])), tuple(map(float, qs[2])))

    def score(self, X: np.ndarray) -> np.ndarray:
        """Tail score per row of ``X`` (0 inside the normal range)."""
        lo, med, hi = (np.asarray(v) for v in (self.low, self.median, self.high))
        up = np.maximum(hi - med, _MIN_SCALE)
        out = np.maximum(X - hi, 0.0) / up
        down = np.maximum(med - lo, _MIN_SCALE)
        out += np.where(_SIGNED, np.maximum(lo - X, 0.0) / down, 0.0)
        return np.asarray(out.sum(axis=1), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"low": list(self.low), "median": list(self.median), "high": list(self.high)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TailReference:
        try:
            ref = cls(*(tuple(float(x) for x in d[k]) for k in ("low", "median", "high")))
        except (KeyError, TypeError, ValueError):
            raise DetectorError("tail reference does not have the expected layout") from None
        if not len(ref.low) == len(ref.median) == len(ref.high) == len(FEATURES):
            raise DetectorError("tail reference is for another feature set")
        return ref
