"""Re-identification risk of a set of records: equivalence classes on quasi-identifiers.

Records with equal (normalised) values on every quasi-identifier form a class; a person in a
class of size ``n`` is one of ``n`` candidates to anyone who knows their quasi-identifiers
(prosecutor risk ``1/n``). The report holds counts, shares and field names only, never a value.

A record whose quasi-identifiers are all null (suppressed) belongs to no class: it carries no
quasi-identifying value. It is counted in ``suppressed`` and in ``records`` (the denominator of
every share), as ARX and Sweeney's suppression do.

>>> rows = [{"zip": "101", "age": 30}, {"zip": "101", "age": 30}, {"zip": "102", "age": 41}]
>>> r = measure(rows, ["zip", "age"], k=2)
>>> (r.classes, r.k_min, round(r.unique_share, 3), round(r.below_k_share, 3))
(2, 1, 0.333, 0.333)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamproc.risk.exceptions import RiskError
from streamproc.risk.paths import key_function

# Class-size buckets of the histogram, smallest (riskiest) first: (label, lowest, highest).
SIZE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-4", 3, 4),
    ("5-9", 5, 9),
    ("10-19", 10, 19),
    ("20-49", 20, 49),
    ("50-99", 50, 99),
    ("100+", 100, None),
)


@dataclass(frozen=True)
class SizeBucket:
    """How many classes (and the records in them) have a size in ``[low, high]``."""

    label: str
    classes: int
    records: int


@dataclass(frozen=True)
class Contribution:
    """What the report would say without one quasi-identifier (its share of the risk)."""

    field: str
    k_min_without: int | None
    unique_share_without: float
    below_k_share_without: float


@dataclass(frozen=True)
class RiskReport:
    """Equivalence-class statistics of records on their quasi-identifiers (values-free)."""

    records: int
    quasi_identifiers: tuple[str, ...]
    k: int
    classes: int
    k_min: int | None  # None when no record has a quasi-identifying value
    unique_share: float  # records alone in their class / records
    below_k_share: float  # records in classes smaller than k / records
    suppressed: int = 0  # records whose quasi-identifiers are all null
    sensitive: str | None = None
    l_min: int | None = None  # distinct sensitive values, minimum over classes
    below_l_classes: int | None = None  # classes with fewer than 2 distinct sensitive values
    size_histogram: tuple[SizeBucket, ...] = ()
    contributions: tuple[Contribution, ...] = ()  # largest contribution first

    @property
    def max_risk(self) -> float:
        """The highest prosecutor re-identification risk, ``1 / k_min``."""
        return 1.0 / self.k_min if self.k_min else 0.0

    @property
    def mean_risk(self) -> float:
        """The mean prosecutor risk over records, ``classes / records``."""
        return self.classes / self.records if self.records else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the contract keys of ``streamproc risk --json`` and extras."""
        out: dict[str, Any] = {
            "records": self.records,
            "quasi_identifiers": list(self.quasi_identifiers),
            "k": self.k,
            "classes": self.classes,
            "k_min": self.k_min,
            "unique_share": self.unique_share,
            "below_k_share": self.below_k_share,
            "suppressed": self.suppressed,
            "max_risk": self.max_risk,
            "mean_risk": self.mean_risk,
            "size_histogram": [
                {"size": b.label, "classes": b.classes, "records": b.records}
                for b in self.size_histogram
            ],
            "contributions": [
                {
                    "field": c.field,
                    "k_min_without": c.k_min_without,
                    "unique_share_without": c.unique_share_without,
                    "below_k_share_without": c.below_k_share_without,
                }
                for c in self.contributions
            ],
        }
        if self.sensitive is not None:
            out["sensitive"] = self.sensitive
            out["l_min"] = self.l_min
            out["below_l_classes"] = self.below_l_classes
        return out


def measure(
    records: Iterable[Mapping[str, Any]],
    quasi: Sequence[str],
    *,
    sensitive: str | None = None,
    k: int = 5,
) -> RiskReport:
    """The re-identification risk of ``records`` on the ``quasi`` field paths (dotted)."""
    quasi = tuple(quasi)
    if not quasi:
        raise RiskError("no quasi-identifier to measure on (name one, or annotate the schema)")
    if len(set(quasi)) != len(quasi):
        raise RiskError(f"quasi-identifiers named twice: {', '.join(quasi)}")
    if k < 1:
        raise RiskError(f"k must be at least 1 (got {k})")
    key = key_function(quasi)
    value_of = key_function([sensitive]) if sensitive is not None else None
    sizes: Counter[tuple[Any, ...]] = Counter()
    diverse: dict[tuple[Any, ...], set[Any]] = {}
    total = suppressed = 0
    for record in records:
        total += 1
        qi = key(record)
        if all(v is None for v in qi):
            suppressed += 1
            continue
        sizes[qi] += 1
        if value_of is not None:
            diverse.setdefault(qi, set()).add(value_of(record)[0])
    k_min, unique, below = class_stats(sizes, total, k)
    l_min = min((len(s) for s in diverse.values()), default=None) if sensitive else None
    return RiskReport(
        records=total,
        quasi_identifiers=quasi,
        k=k,
        classes=len(sizes),
        k_min=k_min,
        unique_share=unique,
        below_k_share=below,
        suppressed=suppressed,
        sensitive=sensitive,
        l_min=l_min,
        below_l_classes=sum(len(s) < 2 for s in diverse.values()) if sensitive else None,
        size_histogram=histogram(sizes),
        contributions=contributions(sizes, quasi, total, k),
    )


def class_stats(sizes: Mapping[Any, int], total: int, k: int) -> tuple[int | None, float, float]:
    """``(k_min, unique share, below-k share)`` from class sizes over ``total`` records."""
    k_min = min(sizes.values(), default=None)
    unique = sum(1 for n in sizes.values() if n == 1)
    below = sum(n for n in sizes.values() if n < k)
    return k_min, (unique / total if total else 0.0), (below / total if total else 0.0)


def histogram(sizes: Mapping[Any, int]) -> tuple[SizeBucket, ...]:
    """Classes and records per class-size bucket (:data:`SIZE_BUCKETS`), empty ones omitted."""
    classes: Counter[str] = Counter()
    records: Counter[str] = Counter()
    for n in sizes.values():
        for label, low, high in SIZE_BUCKETS:
            if n >= low and (high is None or n <= high):
                classes[label] += 1
                records[label] += n
                break
    return tuple(
        SizeBucket(label, classes[label], records[label])
        for label, _, _ in SIZE_BUCKETS
        if classes[label]
    )


def contributions(
    sizes: Mapping[tuple[Any, ...], int], quasi: Sequence[str], total: int, k: int
) -> tuple[Contribution, ...]:
    """For each quasi-identifier, the statistics without it; the biggest drop in unique share
    first (that field makes most records unique). Records suppressed without it stay out."""
    if len(quasi) < 2:
        return ()
    out = []
    for i, name in enumerate(quasi):
        merged: Counter[tuple[Any, ...]] = Counter()
        for key, n in sizes.items():
            rest = key[:i] + key[i + 1 :]
            if rest.count(None) < len(rest):
                merged[rest] += n
        k_min, unique, below = class_stats(merged, total, k)
        out.append(Contribution(name, k_min, unique, below))
    return tuple(sorted(out, key=lambda c: (c.unique_share_without, c.below_k_share_without)))
