"""Readable reasons for a score: which features stand out against normal traffic.

A feature is a reason when it lies beyond the 99th percentile of normal training traffic
(or below the 1st, for the signed volume z-scores). Texts name the principal's dataset,
action, source IP and counts -- access metadata -- never a value of a data record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from streamproc.detector.events import AccessEvent
from streamproc.detector.features import FEATURE_NAMES, SIGNED_FEATURES, namespace_of

_IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}


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


def _count(v: float) -> int:
    return max(round(math.expm1(v)), 0)


def _text(name: str, v: float, ev: AccessEvent) -> str:
    if name == "rows_z":
        side = "above" if v > 0 else "below"
        return (
            f"{ev.rows:,} rows in one {ev.action} is far {side} this principal's norm (z {v:.1f})"
        )
    if name == "bytes_z":
        side = "above" if v > 0 else "below"
        return (
            f"{ev.bytes:,} bytes in one {ev.action} is far {side} this principal's norm (z {v:.1f})"
        )
    if name == "rate_short":
        return f"about {_count(v)} requests in the last ~10 minutes"
    if name == "rate_rel":
        return f"request rate about {math.exp(v):.0f}x this principal's usual"
    if name == "fail_short":
        return f"about {_count(v)} failed accesses in the last ~10 minutes"
    if name == "distinct_window":
        return f"about {_count(v)} distinct datasets touched within the last hour"
    if name == "distinct_rel":
        return f"{math.exp(v):.0f}x more distinct datasets per hour than usual"
    if name == "volume_rel":
        return f"rows accessed in the last hour about {math.exp(v):.0f}x the usual"
    if name == "dataset_rare":
        return f"dataset {ev.dataset} is new or rare for this principal"
    if name == "domain_rare":
        space = namespace_of(ev.dataset) or "(no namespace)"
        return f"namespace {space} of dataset {ev.dataset} is new or rare for this principal"
    if name == "ip_rare":
        return f"source IP {ev.source_ip} is new or rare for this principal"
    if name == "action_rare":
        return f"action {ev.action} is unusual for this principal"
    if name == "pair_rare":
        return f"{ev.action} on {ev.dataset} is new or rare for this principal"
    if name == "volume_cusum":
        return (
            f"several {ev.action}s in a row above this principal's usual volume "
            f"(cumulative excess {math.expm1(v):.0f} sd)"
        )
    if name == "dataset_run":
        return f"dataset {ev.dataset} used about {math.exp(v):.0f}x more often than usual lately"
    if name == "action_burst":
        return f"{ev.action} about {math.exp(v):.0f}x more often than its usual share lately"
    if name == "time_rare":
        hour = (ev.ts % 86_400_000) // 3_600_000
        day = "weekend" if ((ev.ts // 86_400_000) + 3) % 7 >= 5 else "weekday"
        return f"activity at {hour:02d}:00 UTC on a {day} is unusual for this principal"
    return name


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
    for i, name in enumerate(FEATURE_NAMES):
        v = float(features[i])
        med = median[i]
        up = max(high[i] - med, 1e-6)
        strength = (v - med) / up
        bound = high[i]
        if name in SIGNED_FEATURES and v < med:
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
        Reason(r.feature, r.value, r.normal, r.strength, _text(r.feature, r.value, event))
        for r in out[:limit]
    ]


def feature_index(name: str) -> int:
    """Column of a feature name."""
    return _IDX[name]
