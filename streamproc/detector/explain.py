"""Readable reasons for a score: which features stand out against normal traffic.

A feature is a reason when it lies beyond the 99th percentile of normal training traffic
(or below the 1st, for the signed volume z-scores). Texts name the principal's dataset,
action, source IP and counts -- access metadata -- never a value of a data record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from streamproc.detector.catalog import FEATURE_INDEX, FEATURES
from streamproc.detector.events import AccessEvent


@dataclass(frozen=True, slots=True)
class Reason:
    """One feature that made an event look anomalous."""

    feature: str
    value: float
    normal: float  # the 99th (or 1st) percentile of normal traffic it exceeded
    strength: float  # how far beyond normal, in units of (p99 - median)
    text: str

    def to_avro_dict(self) -> dict[str, object]:
        return {
            "feature": self.feature,
            "value": float(self.value),
            "normal": float(self.normal),
            "text": self.text,
        }


def explain(
    features: Sequence[float],
    event: AccessEvent,
    *,
    low: Sequence[float],
    median: Sequence[float],
    high: Sequence[float],
    limit: int = 4,
) -> list[Reason]:
    """The features of ``event`` beyond normal, strongest first (at most ``limit``).

    If none is beyond the 1st/99th percentile (an unusual *combination*), the single
    strongest deviation is returned so a flagged event always carries a reason.
    """
    out: list[Reason] = []
    best: Reason | None = None
    for i, feat in enumerate(FEATURES):
        name = feat.name
        v = float(features[i])
        med = median[i]
        up = max(high[i] - med, 1e-6)
        strength = (v - med) / up
        bound = high[i]
        if feat.signed and v < med:
            strength = (med - v) / max(med - low[i], 1e-6)
            bound = low[i]
        if not math.isfinite(strength):
            continue
        r = Reason(name, v, float(bound), float(strength), "")
        if strength > 1.0:
            out.append(r)
        elif best is None or strength > best.strength:
            best = r
    if not out and best is not None and best.strength > 0:
        out.append(best)
    out.sort(key=lambda r: -r.strength)
    return [
        Reason(r.feature, r.value, r.normal, r.strength, _TEXT[r.feature](r.value, event))
        for r in out[:limit]
    ]


def feature_index(name: str) -> int:
    """Column of a feature name."""
    return FEATURE_INDEX[name]


_TEXT = {f.name: f.text for f in FEATURES}
