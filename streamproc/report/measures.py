"""The report's figures: distributions (small groups suppressed), drift, information loss,
correlations, re-identification risk, DP epsilon and model utility.

Nothing here returns a raw value of a field whose action is not ``keep``: distributions of
such fields are value-free (anonymous ranked categories, text lengths, or numeric bins whose
edges are rounded percentiles), and every group under ``k`` records is suppressed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import wasserstein_distance

from streamproc.report.data import EPOCH, NUMERIC_KINDS, FieldPolicy, column
from streamproc.risk import measure

BINS = 20
SUPPRESSED = "(groups < k)"


@dataclass(frozen=True)
class Dist:
    """One plotted distribution: bar labels and counts (already suppressed)."""

    kind: str  # numeric | categories | lengths
    labels: tuple[str, ...]
    counts: tuple[int, ...]
    n: int
    nulls: int
    distinct: int


@dataclass(frozen=True)
class FieldFigures:
    policy: FieldPolicy
    raw: Dist
    sanitized: Dist | None
    total_variation: float | None
    wasserstein: float | None  # W1 divided by the raw standard deviation
    info_loss: float
    epsilon: float | None


def sig(x: float, digits: int = 3) -> str:
    """``x`` rounded to ``digits`` significant digits (axis labels of value-free plots)."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{round(x, digits - 1 - math.floor(math.log10(abs(x)))):g}"


def edge_label(kind: str, edge: float) -> str:
    """A bin edge as text: dates to the month, timestamps to the day (coarser than any raw
    value), numbers to 3 significant digits."""
    if kind == "date":
        return (EPOCH + dt.timedelta(days=int(edge))).strftime("%Y-%m")
    if kind == "timestamp":
        return dt.datetime.fromtimestamp(edge, dt.UTC).strftime("%Y-%m-%d")
    return sig(edge)


def _numeric_dist(kind: str, values: Sequence[float | None], edges: np.ndarray) -> Dist:
    xs = np.array([v for v in values if v is not None], dtype=float)
    counts, _ = np.histogram(np.clip(xs, edges[0], edges[-1]), bins=edges)
    labels = tuple(edge_label(kind, float(e)) for e in edges[:-1])
    nulls = len(values) - len(xs)
    return Dist("numeric", labels, tuple(int(c) for c in counts), len(values), nulls, len(set(xs)))


def _edges(*columns: Sequence[float | None]) -> np.ndarray:
    """Common bins over the pooled 1st-99th percentiles (so one record's extreme never shows)."""
    xs = np.array([v for c in columns for v in c if v is not None], dtype=float)
    if len(xs) == 0:
        return np.linspace(0.0, 1.0, BINS + 1)
    lo, hi = np.percentile(xs, [1, 99])
    lo, hi = float(sig(lo)), float(sig(hi))
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, BINS + 1)


def _categories(values: Sequence[Any], k: int, *, named: bool) -> Dist:
    present = [v for v in values if v is not None]
    counts = Counter(present).most_common()
    shown = [(v, c) for v, c in counts if c >= k][:BINS]
    hidden = len(present) - sum(c for _, c in shown)
    labels = [str(v) if named else f"#{i + 1}" for i, (v, _) in enumerate(shown)]
    bars = [c for _, c in shown]
    if hidden:
        labels.append(SUPPRESSED)
        bars.append(hidden)
    nulls = len(values) - len(present)
    return Dist("categories", tuple(labels), tuple(bars), len(values), nulls, len(counts))


def _lengths(values: Sequence[Any], k: int) -> Dist:
    lengths = [len(str(v)) if v is not None else None for v in values]
    d = _categories(lengths, k, named=True)
    order = sorted(
        range(len(d.labels)), key=lambda i: (d.labels[i] == SUPPRESSED, _num(d.labels[i]))
    )
    distinct = len({v for v in values if v is not None})
    return Dist(
        "lengths",
        tuple(d.labels[i] for i in order),
        tuple(d.counts[i] for i in order),
        d.n,
        d.nulls,
        distinct,
    )


def _num(label: str) -> float:
    try:
        return float(label)
    except ValueError:
        return math.inf


def distribution(
    kind: str, values: Sequence[Any], k: int, *, named: bool, edges: np.ndarray | None = None
) -> Dist:
    """The plotted distribution of one column; ``named`` allows category names to show."""
    if kind in NUMERIC_KINDS:
        return _numeric_dist(kind, values, edges if edges is not None else _edges(values))
    if kind == "text":
        cats = _categories(values, k, named=named)
        hidden = cats.counts[-1] if cats.labels and cats.labels[-1] == SUPPRESSED else 0
        if hidden > cats.n / 2:  # mostly unique (ids, pseudonyms): lengths say more
            return _lengths(values, k)
        return cats
    return _categories(values, k, named=named)


def _tv(a: Counter[Any], b: Counter[Any]) -> float:
    na, nb = sum(a.values()), sum(b.values())
    if not na or not nb:
        return 0.0
    return 0.5 * sum(abs(a[x] / na - b[x] / nb) for x in set(a) | set(b))


def _entropy(values: Sequence[Any]) -> float:
    counts = Counter(v for v in values if v is not None)
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


def _wasserstein(a: Sequence[float | None], b: Sequence[float | None]) -> float | None:
    xa = [v for v in a if v is not None]
    xb = [v for v in b if v is not None]
    if not xa or not xb:
        return None
    sd = float(np.std(xa)) or 1.0
    return float(wasserstein_distance(xa, xb)) / sd


def info_loss(
    policy: FieldPolicy, raw_kind: str, raw: Sequence[Any], san_kind: str, san: Sequence[Any]
) -> float:
    """Drop: 1. Same numeric kind, rows aligned: mean |raw - sanitized| / raw std. Otherwise
    the share of the raw entropy lost (0: distinctions kept, 1: constant output)."""
    if policy.output_path is None:
        return 1.0
    if raw_kind == san_kind and raw_kind in NUMERIC_KINDS and len(raw) == len(san):
        pairs = [(a, b) for a, b in zip(raw, san, strict=True) if a is not None and b is not None]
        sd = float(np.std([a for a, _ in pairs])) if pairs else 0.0
        if not pairs or sd == 0:
            return 0.0
        return float(np.mean([abs(a - b) for a, b in pairs])) / sd
    h = _entropy(raw)
    return max(0.0, 1.0 - _entropy(san) / h) if h else 0.0


def field_figures(
    policy: FieldPolicy, raw: list[dict[str, Any]], sanitized: list[dict[str, Any]], k: int
) -> FieldFigures:
    raw_kind, raw_vals = column(raw, policy.path)
    named = policy.action == "keep"
    if policy.output_path is None:
        dist = distribution(raw_kind, raw_vals, k, named=named)
        return FieldFigures(policy, dist, None, None, None, 1.0, None)
    san_kind, san_vals = column(sanitized, policy.output_path)
    edges = None
    tv = w1 = None
    if raw_kind == san_kind and raw_kind in NUMERIC_KINDS:
        edges = _edges(raw_vals, san_vals)
        w1 = _wasserstein(raw_vals, san_vals)
    raw_d = distribution(raw_kind, raw_vals, k, named=named, edges=edges)
    san_d = distribution(san_kind, san_vals, k, named=True, edges=edges)
    # Drift where values keep their meaning: numbers/dates of one kind, or kept categories.
    if raw_kind == san_kind and (edges is not None or policy.action == "keep"):
        if edges is not None:
            tv = _tv(Counter(dict(enumerate(raw_d.counts))), Counter(dict(enumerate(san_d.counts))))
        else:
            tv = _tv(
                Counter(v for v in raw_vals if v is not None),
                Counter(v for v in san_vals if v is not None),
            )
    eps = None
    if policy.action == "noise":
        eps = float(policy.annotation.get("epsilon", math.nan))
    loss = info_loss(policy, raw_kind, raw_vals, san_kind, san_vals)
    return FieldFigures(policy, raw_d, san_d, tv, w1, loss, eps)


@dataclass(frozen=True)
class Correlations:
    fields: tuple[str, ...]  # source paths
    raw: tuple[tuple[float, ...], ...]
    sanitized: tuple[tuple[float, ...], ...]

    @property
    def max_abs_change(self) -> float:
        return max(
            (
                abs(a - b)
                for ra, rb in zip(self.raw, self.sanitized, strict=True)
                for a, b in zip(ra, rb, strict=True)
                if not (math.isnan(a) or math.isnan(b))
            ),
            default=0.0,
        )


def correlations(
    policies: Sequence[FieldPolicy], raw: list[dict[str, Any]], sanitized: list[dict[str, Any]]
) -> Correlations | None:
    """Pearson correlations among the fields that are numeric before and after."""
    cols: list[tuple[str, list[Any], list[Any]]] = []
    for p in policies:
        if p.output_path is None:
            continue
        rk, rv = column(raw, p.path)
        sk, sv = column(sanitized, p.output_path)
        if rk in NUMERIC_KINDS and sk in NUMERIC_KINDS:
            cols.append((p.path, rv, sv))
    if len(cols) < 2 or len(raw) != len(sanitized):
        return None
    return Correlations(
        tuple(c[0] for c in cols),
        _pearson([c[1] for c in cols]),
        _pearson([c[2] for c in cols]),
    )


def _pearson(columns: list[list[Any]]) -> tuple[tuple[float, ...], ...]:
    rows = [i for i in range(len(columns[0])) if all(c[i] is not None for c in columns)]
    m = np.array([[c[i] for i in rows] for c in columns], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(m) if len(rows) > 1 else np.full((len(columns),) * 2, np.nan)
    return tuple(tuple(round(float(x), 6) for x in row) for row in np.atleast_2d(r))


@dataclass(frozen=True)
class Risk:
    quasi: tuple[str, ...]
    records: int
    classes: int
    k_min: int
    unique_share: float
    below_k_share: float


def _measure_risk(records: list[dict[str, Any]], quasi: Sequence[str], k: int) -> Risk:
    """k-anonymity figures of ``records`` on the ``quasi`` paths (``streamproc risk``'s)."""
    if not records or not quasi:
        return Risk(tuple(quasi), len(records), 0, 0, 0.0, 0.0)
    r = measure(records, quasi, k=k)
    return Risk(tuple(quasi), r.records, r.classes, r.k_min or 0, r.unique_share, r.below_k_share)


def risk(
    policies: Sequence[FieldPolicy],
    raw: list[dict[str, Any]],
    sanitized: list[dict[str, Any]],
    k: int,
) -> tuple[Risk, Risk]:
    """Risk of the raw and the sanitized records on the fields of class ``quasi``."""
    quasi = [p for p in policies if p.privacy_class == "quasi"]
    out = [p.output_path for p in quasi if p.output_path is not None]
    return _measure_risk(raw, [p.path for p in quasi], k), _measure_risk(sanitized, out, k)
