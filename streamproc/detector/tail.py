"""Robust per-feature tail scores: a score that keeps growing with extremity.

An isolation forest gives a point far outside the training range about the same depth as
one just outside it, so its score saturates: a 10^4x export scores like a 20x one. The tail
score adds, per feature, how far the value lies beyond the normal 99.9th percentile (below
the 0.1th for the signed features) in units of that percentile's distance from the median:

    tail(x) = sum_j max(0, (x_j - q999_j) / (q999_j - median_j))
              + joint_gain * max(0, (n(x) - q999_n) / (q999_n - median_n))

``n(x)``, the *joint novelty*, is the sum of the context rarities marked ``novelty`` in the
catalog (dataset, source address, hour, namespace). Each of them alone stays inside its
normal range when a quiet account reads a dataset nobody in its group uses, from a new
address, at an hour its phase group does not work: every one sits at the ceiling of that
principal's evidence, as on any quiet principal's ordinary new-dataset read. Being new on
all axes at once is what is rare, and axis-parallel splits of a forest see a conjunction of
four within-range values poorly (docs/detector.md, "Format 6"). References written before
the joint term (format 5) have none and score as before.

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
_NOVELTY = np.array([f.novelty for f in FEATURES], dtype=np.float64)
_MIN_SCALE = 0.25  # a feature almost constant in normal traffic still needs a scale
#: weight of the joint-novelty excess against one feature's excess (format 6)
JOINT_GAIN = 2.0


def joint_novelty(X: np.ndarray) -> np.ndarray:
    """Sum of the ``novelty`` rarities (catalog) per row of ``X``."""
    # a matrix-vector product: no copy of the selected columns on the scoring path
    return np.asarray(X @ _NOVELTY, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class TailReference:
    """Per-feature median and extreme quantiles of normal training rows, and the same two
    numbers for their joint novelty (``None`` in references written before it)."""

    low: tuple[float, ...]  # 0.1th percentile
    median: tuple[float, ...]
    high: tuple[float, ...]  # 99.9th percentile
    #: (median, 99.9th percentile, gain) of :func:`joint_novelty` over normal training rows
    joint: tuple[float, float, float] | None = None

    @classmethod
    def of(cls, X: np.ndarray, q: float = 0.999, joint_gain: float = JOINT_GAIN) -> TailReference:
        qs = np.quantile(X, [1.0 - q, 0.5, q], axis=0)
        joint = None
        if joint_gain > 0:
            jq = np.quantile(joint_novelty(X), [0.5, q])
            joint = (float(jq[0]), float(jq[1]), float(joint_gain))
        return cls(
            tuple(map(float, qs[0])), tuple(map(float, qs[1])), tuple(map(float, qs[2])), joint
        )

    def score(self, X: np.ndarray) -> np.ndarray:
        """Tail score per row of ``X`` (0 inside the normal range)."""
        lo, med, hi = (np.asarray(v) for v in (self.low, self.median, self.high))
        up = np.maximum(hi - med, _MIN_SCALE)
        out = np.maximum(X - hi, 0.0) / up
        down = np.maximum(med - lo, _MIN_SCALE)
        out += np.where(_SIGNED, np.maximum(lo - X, 0.0) / down, 0.0)
        total = out.sum(axis=1)
        if self.joint is not None:
            jmed, jhi, gain = self.joint
            total += gain * np.maximum(joint_novelty(X) - jhi, 0.0) / max(jhi - jmed, _MIN_SCALE)
        return np.asarray(total, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "low": list(self.low),
            "median": list(self.median),
            "high": list(self.high),
        }
        if self.joint is not None:
            d["joint"] = list(self.joint)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TailReference:
        try:
            low, median, high = (tuple(float(x) for x in d[k]) for k in ("low", "median", "high"))
            raw = d.get("joint")  # absent in format 5
            joint = None
            if raw is not None:
                jmed, jhi, gain = (float(x) for x in raw)
                joint = (jmed, jhi, gain)
            ref = cls(low, median, high, joint)
        except (KeyError, TypeError, ValueError):
            raise DetectorError("tail reference does not have the expected layout") from None
        if not len(ref.low) == len(ref.median) == len(ref.high) == len(FEATURES):
            raise DetectorError("tail reference is for another feature set")
        return ref
