"""The feature table: name, range, direction, meaning and explanation of every column, once.

The extractor (:mod:`.features`) produces rows in this order, the model (:mod:`.model`)
builds its training background from the bounds, :mod:`.explain` words a reason with the
row's ``text`` and :mod:`.decide` picks the kind of containment from its ``sign``. Adding a
feature means adding one row here and computing it in ``FeatureExtractor.update``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from streamproc.detector.events import (
    DAY_MS,
    HOUR_MS,
    AccessEvent,
    is_weekend,
    namespace_of,
)

#: What a high value of a feature is a sign of, for the recommended containment action.
Sign = Literal["read", "credential", "context"]


@dataclass(frozen=True, slots=True)
class Feature:
    """One column of the feature row.

    ``signed``: both tails are unusual (a far smaller volume than usual, too); otherwise only
    high values are strange and low ones are as normal as the median. ``lo``/``hi``: the range
    the feature can meaningfully take (the training background spans it). ``novelty``: one of
    the context rarities whose sum is the joint novelty of an event (tail.py): a read new on
    several axes at once (dataset, namespace, address, hour).
    """

    name: str
    lo: float
    hi: float
    doc: str
    text: Callable[[float, AccessEvent], str]
    sign: Sign = "context"
    signed: bool = False
    novelty: bool = False


def _count(v: float) -> int:
    return max(round(math.expm1(v)), 0)


def _about(v: float, one: str, many: str, when: str) -> str:
    """ "about N <many> <when>" of a decayed log1p count; below one (but not zero) it says so,
    instead of "about 0" beside a reason that ranked high."""
    n = _count(v)
    if n == 0 and v > 0:
        return f"under 1 {one} {when} (older ones decayed)"
    return f"about {n} {one if n == 1 else many} {when}"


def _side(v: float) -> str:
    return "above" if v > 0 else "below"


def _time_text(_: float, ev: AccessEvent) -> str:
    hour = (ev.ts % DAY_MS) // HOUR_MS
    day = "weekend" if is_weekend(ev.ts) else "weekday"
    return f"activity at {hour:02d}:00 UTC on a {day} is unusual for this principal"


FEATURES: tuple[Feature, ...] = (
    Feature(
        "rows_z",
        -20.0,
        20.0,
        "robust z of log1p(rows) vs the principal's norm for this action",
        lambda v, ev: (
            f"{ev.rows:,} rows in one {ev.action} is far {_side(v)} this principal's norm "
            f"(z {v:.1f})"
        ),
        "read",
        signed=True,
    ),
    Feature(
        "bytes_z",
        -20.0,
        20.0,
        "robust z of log1p(bytes) vs the principal's norm for this action",
        lambda v, ev: (
            f"{ev.bytes:,} bytes in one {ev.action} is far {_side(v)} this principal's norm "
            f"(z {v:.1f})"
        ),
        "read",
        signed=True,
    ),
    Feature(
        "rate_short",
        0.0,
        8.0,  # up to ~3000 events per half-life
        "log1p(decayed event count, short half-life)",
        lambda v, ev: _about(v, "request", "requests", "in the last ~10 minutes"),
        "read",
    ),
    Feature(
        "rate_rel",
        -8.0,
        8.0,
        "rate_short minus the principal's typical rate_short",
        lambda v, ev: f"request rate about {math.exp(v):.0f}x this principal's usual",
        "read",
    ),
    Feature(
        "fail_short",
        0.0,
        8.0,
        "log1p(decayed failure count, short half-life)",
        lambda v, ev: _about(v, "failed access", "failed accesses", "in the last ~10 minutes"),
        "credential",
    ),
    Feature(
        "distinct_window",
        0.0,
        6.5,  # up to ~650 datasets
        "log1p(datasets touched in the window, decayed)",
        lambda v, ev: _about(
            v, "distinct dataset", "distinct datasets", "touched within the last hour"
        ),
        "read",
    ),
    Feature(
        "distinct_rel",
        -6.5,
        6.5,
        "distinct_window minus the principal's typical value",
        lambda v, ev: f"{math.exp(v):.0f}x more distinct datasets per hour than usual",
        "read",
    ),
    Feature(
        "volume_rel",
        -25.0,
        25.0,
        "log1p(rows in the window, decayed) minus the principal's typical value",
        lambda v, ev: f"rows accessed in the last hour about {math.exp(v):.0f}x the usual",
        "read",
    ),
    Feature(
        "dataset_rare",
        0.0,
        12.0,
        "surprisal of the dataset for this principal (first seen = highest)",
        lambda v, ev: f"dataset {ev.dataset} is new or rare for this principal",
        "read",
        novelty=True,
    ),
    Feature(
        "ip_rare",
        0.0,
        12.0,
        "surprisal of the source IP",
        lambda v, ev: f"source IP {ev.source_ip} is new or rare for this principal",
        novelty=True,
    ),
    Feature(
        "action_rare",
        0.0,
        12.0,
        "surprisal of the action",
        lambda v, ev: f"action {ev.action} is unusual for this principal",
    ),
    Feature(
        "pair_rare",
        0.0,
        12.0,
        "surprisal of (action, dataset): e.g. deleting what one only ever read",
        lambda v, ev: f"{ev.action} on {ev.dataset} is new or rare for this principal",
    ),
    Feature(
        "time_rare",
        0.0,
        12.0,
        "surprisal of hour-of-day x weekday/weekend",
        _time_text,
        novelty=True,
    ),
    Feature(
        "volume_cusum",
        0.0,
        6.0,
        "log1p(CUSUM of rows_z beyond a slack, decayed): staged volume adds up",
        lambda v, ev: (
            f"several {ev.action}s in a row above this principal's usual volume "
            f"(cumulative excess {math.expm1(v):.0f} sd)"
        ),
        "read",
    ),
    Feature(
        "dataset_run",
        -6.5,
        6.5,
        "log1p(recent uses of this dataset) minus the principal's typical value",
        lambda v, ev: (
            f"dataset {ev.dataset} used about {math.exp(v):.0f}x more often than usual lately"
        ),
        "read",
    ),
    Feature(
        "action_burst",
        -6.5,
        6.5,
        "log of recent uses of this action vs its long-run share of the window",
        lambda v, ev: (
            f"{ev.action} about {math.exp(v):.0f}x more often than its usual share lately"
        ),
    ),
    Feature(
        "domain_rare",
        0.0,
        12.0,
        "surprisal of the dataset's namespace (the text before its last dot)",
        lambda v, ev: (
            f"namespace {namespace_of(ev.dataset) or '(no namespace)'} of dataset "
            f"{ev.dataset} is new or rare for this principal"
        ),
        "read",
        novelty=True,
    ),
)

#: Names of the feature columns, in order.
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
#: ``(lo, hi)`` per column, in order.
FEATURE_BOUNDS: tuple[tuple[float, float], ...] = tuple((f.lo, f.hi) for f in FEATURES)
#: Columns where both tails are unusual.
SIGNED_FEATURES: frozenset[str] = frozenset(f.name for f in FEATURES if f.signed)
N_FEATURES = len(FEATURES)
FEATURE_INDEX: dict[str, int] = {f.name: i for i, f in enumerate(FEATURES)}


def signs(sign: Sign) -> frozenset[str]:
    """Names of the features whose high values are a sign of ``sign``."""
    return frozenset(f.name for f in FEATURES if f.sign == sign)
