"""Generalization ladders: the levels a quasi-identifier can be coarsened to, finest first.

A quasi field's ``generalize`` annotation names one ladder; the top of every ladder is
suppression (``None``). The engines (:mod:`.batch`, :mod:`.stream`) pick a level per group of
records; this module only knows how to map one value to its *cell* at a level, how to render a
cell as an unambiguous output value, and what the cell costs in information (NCP).

Cells are hashable and do not depend on the level that produced them, so two equal outputs always
mean the same generalized set (intervals of different levels nest or are disjoint; a kept prefix
``p`` means "every string starting with ``p``"; a category name means one fixed set of values).

>>> lad = parse_ladder({"bucket": [5, 10]}, "int", schema_file="s.avsc", field_path="age")
>>> lad.render(lad.cell(37, 0)), lad.render(lad.cell(37, 1)), lad.cell(37, lad.top)
({'lo': 35, 'hi': 40}, {'lo': 30, 'hi': 40}, None)
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from streamproc.errors import PolicyError
from streamproc.transforms import base
from streamproc.transforms.base import ValueType

Cell = Hashable  # a generalized value; None means suppressed

LADDER_KEYS = ("bucket", "to", "prefix", "levels")
# Annotation keys that belong to the field's annotation, not to the ladder.
_NON_LADDER_KEYS = frozenset({"class", "action", "doc"})

_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_NAIVE = dt.datetime(1970, 1, 1)
_LAST_DAY = (dt.date.max - _EPOCH_DATE).days  # 9999-12-31: the last representable cell end
# Calendar units of a "to" ladder below a year, finest first; each nests in the next (UTC).
_SUB_YEAR_UNITS = ("hour", "day", "month", "quarter")
# Units of whole years: "year", "decade" and "<N>y" (N consecutive years aligned at year 0, so
# 5y is 1995-1999); a coarser one must be a whole multiple of the finer one to nest.
_NAMED_YEARS = {"year": 1, "decade": 10}
_MULTI_YEAR = re.compile(r"([1-9][0-9]{0,2})y")  # 2y .. 999y; "1y" is spelled "year"
_UNITS_DOC = "hour, day, month, quarter, year, decade, or <N>y for N consecutive years (2y .. 999y)"
# Units of one Avro timestamp/date value, per logical type.
_PER_DAY = {
    "date": 1,
    "timestamp-millis": 86_400_000,
    "timestamp-micros": 86_400_000_000,
    "local-timestamp-millis": 86_400_000,
    "local-timestamp-micros": 86_400_000_000,
}


def value_type(avro_type: Any) -> tuple[ValueType, bool]:
    """The non-null type of a field's Avro type JSON and whether it admits null."""
    nullable = False
    t = avro_type
    if isinstance(t, list):
        branches = [b for b in t if b != "null"]
        nullable = len(branches) < len(t)
        if len(branches) != 1:
            raise ValueError("a ladder needs one non-null type")
        t = branches[0]
    if isinstance(t, str):
        return ValueType(t, None, t), nullable
    if isinstance(t, dict) and isinstance(t.get("type"), str):
        return ValueType(t["type"], t.get("logicalType"), t), nullable
    raise ValueError("a ladder needs a primitive, enum or logical type")


def _where(schema_file: str, field_path: str) -> str:
    return f"schema {schema_file}: field {field_path}"


@dataclass(frozen=True)
class _Ladder:
    """What every ladder offers; ``top`` is the suppression level (``len(levels)``)."""

    path: str

    @property
    def top(self) -> int:
        return self.depth

    @property
    def depth(self) -> int:  # number of non-suppressed levels
        raise NotImplementedError

    def cell(self, value: Any, level: int) -> Cell:
        """The value's cell at ``level`` (``None`` at the top, or for a missing value)."""
        raise NotImplementedError

    def cells(self, value: Any) -> list[Cell]:
        """The value's cell at every non-top level, finest first."""
        return [self.cell(value, lv) for lv in range(self.depth)]

    def render(self, cell: Cell) -> Any:
        """The output value of a cell (``{"lo", "hi"}``, a prefix, a category, or None)."""
        return cell

    def ncp(self, cell: Cell, value: Any, domain: Domain) -> float:
        """Normalized certainty penalty of publishing ``cell`` for ``value``: 0 exact, 1 none."""
        raise NotImplementedError

    def domain_of(self, values: Sequence[Any]) -> Domain:
        """The domain NCP is normalized by, from the values seen (or a declared one)."""
        return Domain()


@dataclass(frozen=True)
class Domain:
    """What NCP is normalized by: [lo, hi] for intervals; for prefixes the number of distinct
    values seen and, per kept prefix, how many of them start with it."""

    lo: float = 0.0
    hi: float = 0.0
    size: int = 0
    counts: Mapping[str, int] | None = None


@dataclass(frozen=True)
class IntervalLadder(_Ladder):
    """Numbers, dates, timestamps: cells are ``(lo, hi)`` on an integer or exact index grid.

    Level 0's index is computed from the value; each coarser index from the finer one by an
    integer ratio, so intervals of different levels nest exactly (no float drift).
    """

    kind: str  # base.INTEGER | base.FLOAT | base.DATE | base.TIMESTAMP
    logical: str | None
    widths: tuple[Fraction, ...] = ()  # numeric: bucket widths, finest first
    units: tuple[str, ...] = ()  # temporal: hour, day, month, quarter, year, Ny, finest first
    declared: tuple[float, float] | None = None  # "domain": [lo, hi] for NCP

    @property
    def depth(self) -> int:
        return len(self.widths) or len(self.units)

    def _scalar(self, value: Any) -> int | Fraction | None:
        """The value on the field's own unit (days, ms, us, or the number itself)."""
        if value is None or isinstance(value, bool):
            return None
        if self.kind == base.DATE:
            if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                return (value - _EPOCH_DATE).days
            return int(value) if isinstance(value, int) else None
        if self.kind == base.TIMESTAMP:
            if isinstance(value, dt.datetime):
                epoch = _EPOCH_UTC if value.tzinfo is not None else _EPOCH_NAIVE
                per_us = 1 if str(self.logical).endswith("micros") else 1000
                return (value - epoch) // dt.timedelta(microseconds=per_us)
            return int(value) if isinstance(value, int) else None
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return Fraction(value)
        return None

    def cell(self, value: Any, level: int) -> Cell:
        return self.cells(value)[level] if level < self.depth else None

    def cells(self, value: Any) -> list[Cell]:
        """The value's cell at every non-top level, finest first, in one pass (hot path).

        Level 0's bucket index is exact integer arithmetic on the value's ratio; each coarser
        index is the finer one floor-divided by the integer ratio of the widths.
        """
        x = self._scalar(value)
        if x is None:
            return [None] * self.depth
        if not self.widths:
            per_day = _PER_DAY[str(self.logical or "date")]
            try:
                out_t = [_time_cell(int(x), u, per_day) for u in self.units]
            except (ValueError, OverflowError):  # a cell ending past 9999-12-31
                return [None] * self.depth
            if out_t[-1][1] > _LAST_DAY * per_day:
                # Fail closed: a cell whose end is not a date cannot be rendered as {lo, hi}
                # containing the value, so the value is suppressed like a missing one.
                return [None] * self.depth
            return list[Cell](out_t)
        a, b = (x, 1) if isinstance(x, int) else (x.numerator, x.denominator)
        w0 = self.widths[0]
        idx = (a * w0.denominator) // (b * w0.numerator)
        if self.kind == base.FLOAT and ((idx + 1) * w0.numerator) / w0.denominator <= x:
            # The float below a decimal bound (107.33 is 107.3299...) has that bound as its
            # cell's hi once rendered as a float: it goes to the next cell, whose lo renders
            # as the value itself, so lo <= value < hi holds on the published floats.
            idx += 1
        out: list[Cell] = []
        prev = w0
        integer = self.kind == base.INTEGER
        for w in self.widths:
            if w is not w0:
                idx //= (w / prev).numerator  # an integer ratio, checked at parse time
                prev = w
            num, den = w.numerator, w.denominator
            if integer:
                out.append((idx * num, (idx + 1) * num))
            else:  # int / int is correctly rounded, so the float bounds stay ordered
                out.append(((idx * num) / den, ((idx + 1) * num) / den))
        return out

    def render(self, cell: Cell) -> Any:
        if cell is None:
            return None
        assert isinstance(cell, tuple)
        lo, hi = cell
        if self.kind == base.DATE:
            return {
                "lo": _EPOCH_DATE + dt.timedelta(days=lo),
                "hi": _EPOCH_DATE + dt.timedelta(days=hi),
            }
        if self.kind == base.TIMESTAMP:
            epoch = _EPOCH_NAIVE if str(self.logical).startswith("local") else _EPOCH_UTC
            step = dt.timedelta(microseconds=1 if str(self.logical).endswith("micros") else 1000)
            return {"lo": epoch + lo * step, "hi": epoch + hi * step}
        return {"lo": lo, "hi": hi}

    def ncp(self, cell: Cell, value: Any, domain: Domain) -> float:
        if cell is None:
            return 1.0
        assert isinstance(cell, tuple)
        span = domain.hi - domain.lo
        if span <= 0:
            return 0.0
        lo, hi = cell
        # Integer grids cover lo..hi-1; clip to the domain so the edges do not count.
        top = (hi - 1) if self.kind != base.FLOAT else hi
        covered = min(float(top), domain.hi) - max(float(lo), domain.lo)
        return min(1.0, max(0.0, covered / span))

    def domain_of(self, values: Sequence[Any]) -> Domain:
        if self.declared is not None:
            return Domain(lo=self.declared[0], hi=self.declared[1])
        xs = [float(x) for x in (self._scalar(v) for v in values) if x is not None]
        return Domain(lo=min(xs), hi=max(xs)) if xs else Domain()


def _time_cell(x: int, unit: str, per_day: int) -> tuple[int, int]:
    if unit == "hour":
        per_hour = per_day // 24
        h = x // per_hour
        return (h * per_hour, (h + 1) * per_hour)
    day, _rem = divmod(x, per_day)
    if unit == "day":
        return (day * per_day, (day + 1) * per_day)
    d = _EPOCH_DATE + dt.timedelta(days=day)
    if unit in ("month", "quarter"):
        span = 1 if unit == "month" else 3
        start_month = d.month - (d.month - 1) % span  # quarters start in Jan, Apr, Jul, Oct
        first = dt.date(d.year, start_month, 1)
        after = start_month - 1 + span  # months since January of the cell's end
        nxt = dt.date(d.year + after // 12, after % 12 + 1, 1)
    else:  # N whole years aligned at year 0 (a decade is 1990-1999), so that they nest
        years = _year_count(unit)
        start = d.year - d.year % years  # 0 for years 1-9: clipped at year 1, the end kept
        first = dt.date(max(start, dt.MINYEAR), 1, 1)
        nxt = dt.date(start + years, 1, 1)  # past year 9999: ValueError, the value suppressed
    return ((first - _EPOCH_DATE).days * per_day, (nxt - _EPOCH_DATE).days * per_day)


@functools.cache  # called per record and unit; the few declared units are parsed once
def _year_count(unit: str) -> int:
    """How many years a unit of whole years spans (``year`` 1, ``decade`` 10, ``5y`` 5)."""
    return _NAMED_YEARS.get(unit) or int(unit[:-1])


def _unit_rank(unit: Any) -> int | None:
    """An order of the ``to`` units in which finer comes first; None for an unknown name.

    Units below a year rank by position; whole-year units by their number of years (after
    every unit below a year), so that a rank says which of two units is coarser.
    """
    if not isinstance(unit, str):
        return None
    if unit in _SUB_YEAR_UNITS:
        return _SUB_YEAR_UNITS.index(unit) - len(_SUB_YEAR_UNITS)
    if unit in _NAMED_YEARS:
        return _NAMED_YEARS[unit]
    match = _MULTI_YEAR.fullmatch(unit)
    return int(match.group(1)) if match and int(match.group(1)) >= 2 else None


@dataclass(frozen=True)
class PrefixLadder(_Ladder):
    """Strings: cell = the kept prefix, meaning "every string starting with it"."""

    lengths: tuple[int, ...] = ()
    alphabet_size: int = 0  # "alphabet": NCP over every string of the value's length (0: seen)

    @property
    def depth(self) -> int:
        return len(self.lengths)

    def cell(self, value: Any, level: int) -> Cell:
        if level >= self.depth or not isinstance(value, str):
            return None
        return value[: self.lengths[level]]

    def ncp(self, cell: Cell, value: Any, domain: Domain) -> float:
        """(values seen with this prefix - 1) / (values seen - 1), as for a category set;
        without a domain, the share of the value's characters removed. With a declared
        ``alphabet`` of A characters, the same ratio over every possible string of the value's
        length n instead of those seen: (A^(n-m) - 1) / (A^n - 1) for a kept prefix of m (a
        code's prefix as the interval of codes it stands for, whatever the sample holds)."""
        if cell is None or not isinstance(value, str):
            return 1.0
        assert isinstance(cell, str)
        if self.alphabet_size:
            n, m, a = len(value), len(cell), self.alphabet_size
            if n <= m:
                return 0.0
            if n > 64:  # A^n is astronomically large: the ratio is A^-m to float precision
                return float(a) ** -m
            return (a ** (n - m) - 1) / (a**n - 1)
        if domain.counts is not None and cell in domain.counts:
            return (domain.counts[cell] - 1) / (domain.size - 1) if domain.size > 1 else 0.0
        return 0.0 if not value else 1.0 - len(cell) / len(value)

    def domain_of(self, values: Sequence[Any]) -> Domain:
        seen = {v for v in values if isinstance(v, str)}
        counts: dict[str, int] = {}
        for v in seen:
            self.count(v, counts)
        return Domain(size=len(seen), counts=counts)

    def count(self, value: str, counts: dict[str, int]) -> None:
        """Add one newly seen distinct value to the per-prefix counts."""
        for p in {value[:n] for n in self.lengths}:  # a short value is its own prefix once
            counts[p] = counts.get(p, 0) + 1


@dataclass(frozen=True)
class CategoryLadder(_Ladder):
    """Categories: level 0 is the value itself, level i applies ``maps[i-1]`` to level i-1.

    ``members`` holds, per output name, the set of raw values it stands for (checked at load to
    be the same at every level the name appears on); unmapped values are suppressed.
    """

    maps: tuple[Mapping[str, str], ...] = ()
    domain_values: frozenset[str] = frozenset()
    members: Mapping[str, frozenset[str]] | None = None

    @property
    def depth(self) -> int:
        return len(self.maps) + 1

    def cell(self, value: Any, level: int) -> Cell:
        if level >= self.depth or value is None or isinstance(value, bool):
            return None
        v = value if isinstance(value, str) else str(value)
        if v not in self.domain_values:
            return None
        for m in self.maps[:level]:
            v = m[v]
        return v

    def ncp(self, cell: Cell, value: Any, domain: Domain) -> float:
        if cell is None:
            return 1.0
        size = len(self.domain_values)
        if size <= 1 or self.members is None:
            return 0.0
        return (len(self.members[str(cell)]) - 1) / (size - 1)


@dataclass(frozen=True)
class KeepLadder(_Ladder):
    """A quasi field without a ladder: its (already transformed) value, or suppressed.

    The engines must group by every quasi-identifier the output carries, so a quasi field kept
    as is (or transformed by a scalar action) takes part with this two-level ladder. An
    unhashable value (a record, an array) cannot be grouped and is suppressed.
    """

    @property
    def depth(self) -> int:
        return 1

    def cell(self, value: Any, level: int) -> Cell:
        if level >= 1 or value is None or not isinstance(value, Hashable):
            return None
        return value

    def ncp(self, cell: Cell, value: Any, domain: Domain) -> float:
        return 1.0 if cell is None else 0.0


Ladder = IntervalLadder | PrefixLadder | CategoryLadder | KeepLadder


def parse_ladder(
    params: Mapping[str, Any], avro_type: Any, *, schema_file: str, field_path: str
) -> Ladder:
    """Validate a quasi field's ``generalize`` ladder once; errors name the field, not values.

    ``params`` is the field's privacy annotation (``class``/``action`` are ignored) holding
    exactly one of ``bucket``, ``to``, ``prefix``, ``levels`` as a list, plus for numbers and
    times an optional ``domain: [lo, hi]`` that NCP is normalized by.
    """
    where = _where(schema_file, field_path)
    try:
        vtype, _ = value_type(avro_type)
    except ValueError as exc:
        raise PolicyError(f"{where}: generalize ladder: {exc}") from None
    keys = [k for k in params if k not in _NON_LADDER_KEYS]
    chosen = [k for k in keys if k in LADDER_KEYS]
    if len(chosen) != 1:
        raise PolicyError(
            f"{where}: generalize ladder needs exactly one of {', '.join(LADDER_KEYS)}"
        )
    key = chosen[0]
    extra = sorted(set(keys) - {key, "domain", "alphabet"})
    if extra:
        raise PolicyError(f"{where}: generalize ladder: unknown parameter(s) {', '.join(extra)}")
    if "domain" in params and key not in ("bucket", "to"):
        raise PolicyError(f"{where}: generalize ladder: 'domain' only fits 'bucket' or 'to'")
    if "alphabet" in params and key != "prefix":
        raise PolicyError(f"{where}: generalize ladder: 'alphabet' only fits 'prefix'")
    steps = params[key]
    if not isinstance(steps, list) or not steps:
        raise PolicyError(f"{where}: generalize ladder: {key!r} must be a non-empty list")
    parsers: dict[str, Callable[..., Ladder]] = {
        "bucket": _parse_bucket,
        "to": _parse_to,
        "prefix": _parse_prefix,
    }
    parser = parsers.get(key)
    if parser is not None:
        extent = params.get("alphabet") if key == "prefix" else params.get("domain")
        return parser(steps, vtype, extent, where, field_path)
    return _parse_levels(steps, vtype, where, field_path)


def _parse_domain(raw: Any, where: str) -> tuple[float, float] | None:
    if raw is None:
        return None
    ok = (
        isinstance(raw, list)
        and len(raw) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw)
        and raw[0] < raw[1]
    )
    if not ok:
        raise PolicyError(f"{where}: generalize ladder: 'domain' must be [lo, hi] with lo < hi")
    return (float(raw[0]), float(raw[1]))


def _parse_bucket(
    steps: list[Any], vtype: ValueType, domain: Any, where: str, path: str
) -> IntervalLadder:
    if vtype.kind not in (base.INTEGER, base.FLOAT):
        raise PolicyError(f"{where}: 'bucket' ladder does not fit type {vtype.describe()}")
    integer = vtype.kind == base.INTEGER
    widths: list[Fraction] = []
    for w in steps:
        good = isinstance(w, int | float) and not isinstance(w, bool) and w > 0
        if not good or (integer and not isinstance(w, int)) or not math.isfinite(w):
            kind = "positive integers" if integer else "positive numbers"
            raise PolicyError(f"{where}: 'bucket' widths must be {kind}")
        widths.append(Fraction(str(w)))
    for finer, coarser in itertools.pairwise(widths):
        ratio = coarser / finer
        if ratio.denominator != 1 or ratio <= 1:
            raise PolicyError(
                f"{where}: 'bucket' widths must grow, each a multiple of the previous one so "
                f"levels nest (got {finer} then {coarser})"
            )
    return IntervalLadder(
        path=path,
        kind=vtype.kind,
        logical=vtype.logical,
        widths=tuple(widths),
        declared=_parse_domain(domain, where),
    )


def _parse_to(
    steps: list[Any], vtype: ValueType, domain: Any, where: str, path: str
) -> IntervalLadder:
    if vtype.kind not in (base.DATE, base.TIMESTAMP):
        raise PolicyError(f"{where}: 'to' ladder does not fit type {vtype.describe()}")
    if vtype.logical not in _PER_DAY:
        raise PolicyError(f"{where}: 'to' ladder does not fit type {vtype.describe()}")
    ranks = [_unit_rank(u) for u in steps]
    if any(r is None for r in ranks):
        raise PolicyError(f"{where}: 'to' units must be among {_UNITS_DOC}")
    for (finer, a), (coarser, b) in itertools.pairwise(zip(steps, ranks, strict=True)):
        assert a is not None and b is not None
        if b <= a:
            raise PolicyError(f"{where}: 'to' units must go from finer to coarser, each once")
        if a > 0 and b % a:
            raise PolicyError(
                f"{where}: 'to' units of years must each be a whole multiple of the previous "
                f"one so levels nest (got {finer} then {coarser})"
            )
    if vtype.kind == base.DATE and "hour" in steps:
        raise PolicyError(f"{where}: 'to: hour' does not fit type date")
    return IntervalLadder(
        path=path,
        kind=vtype.kind,
        logical=vtype.logical,
        units=tuple(steps),
        declared=_parse_domain(domain, where),
    )


def _parse_prefix(
    steps: list[Any], vtype: ValueType, alphabet: Any, where: str, path: str
) -> PrefixLadder:
    if vtype.kind != base.STRING:
        raise PolicyError(f"{where}: 'prefix' ladder does not fit type {vtype.describe()}")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in steps):
        raise PolicyError(f"{where}: 'prefix' lengths must be integers >= 1")
    if any(b >= a for a, b in itertools.pairwise(steps)):
        raise PolicyError(f"{where}: 'prefix' lengths must decrease (finest first)")
    if alphabet is not None and not (
        isinstance(alphabet, str) and len(alphabet) >= 2 and len(set(alphabet)) == len(alphabet)
    ):
        # Not echoed: the alphabet is policy, but an error never quotes annotation values.
        raise PolicyError(
            f"{where}: 'prefix' alphabet must be a string of at least 2 distinct characters"
        )
    return PrefixLadder(path=path, lengths=tuple(steps), alphabet_size=len(alphabet or ""))


def _parse_levels(steps: list[Any], vtype: ValueType, where: str, path: str) -> CategoryLadder:
    if vtype.kind not in (base.STRING, base.ENUM, base.INTEGER):
        raise PolicyError(f"{where}: 'levels' ladder does not fit type {vtype.describe()}")
    if not all(
        isinstance(m, dict) and m and all(isinstance(v, str) for v in m.values()) for m in steps
    ):
        raise PolicyError(f"{where}: 'levels' must be non-empty maps of value -> coarser name")
    maps = tuple({str(k): v for k, v in m.items()} for m in steps)
    domain = frozenset(maps[0])
    if vtype.kind == base.ENUM:
        symbols = frozenset(vtype.schema.get("symbols", ()))
        if symbols - domain:
            raise PolicyError(
                f"{where}: 'levels' level 1 leaves {len(symbols - domain)} enum symbol(s) unmapped"
            )
        if domain - symbols:
            raise PolicyError(f"{where}: 'levels' level 1 maps value(s) that are not enum symbols")
    if vtype.kind == base.INTEGER and not all(_is_int_text(k) for k in domain):
        raise PolicyError(f"{where}: 'levels' keys of an integer field must be integers")
    # Each map must be total over the previous level's outputs; a name must mean one set.
    members: dict[str, frozenset[str]] = {v: frozenset({v}) for v in domain}
    current: dict[str, str] = {v: v for v in domain}  # raw value -> name at this level
    for i, m in enumerate(maps[1:], start=2):
        outputs = set(maps[i - 2].values())
        missing = outputs - set(m)
        if missing:
            raise PolicyError(
                f"{where}: 'levels' level {i} leaves {len(missing)} value(s) of level {i - 1} "
                "unmapped"
            )
        if set(m) - outputs:
            raise PolicyError(
                f"{where}: 'levels' level {i} maps value(s) level {i - 1} never outputs"
            )
    for i, m in enumerate(maps, start=1):
        current = {r: m[n] for r, n in current.items()}
        by_name: dict[str, set[str]] = {}
        for raw, name in current.items():
            by_name.setdefault(name, set()).add(raw)
        for name, raws in by_name.items():
            if members.setdefault(name, frozenset(raws)) != raws:
                raise PolicyError(
                    f"{where}: 'levels' level {i} reuses an output name of another level for a "
                    "different set of values (outputs would be ambiguous)"
                )
    return CategoryLadder(path=path, maps=maps, domain_values=domain, members=members)


def _is_int_text(text: str) -> bool:
    try:
        return str(int(text)) == text
    except ValueError:
        return False


def derived_type(avro_type: Any, field_name: str, ladder: Ladder | None = None) -> Any:
    """The Avro type JSON of a laddered field in the derived schema (always nullable).

    A :class:`KeepLadder` field keeps its type, made nullable. Otherwise numbers and times
    become a record ``{lo, hi}`` of the field's own type (``long`` for
    ``int``, since ``hi`` may pass the int range); strings and categories become a string.
    ``field_name`` names the record type, so it must be unique in the schema (dots are
    replaced).
    """
    if isinstance(ladder, KeepLadder):
        branches = avro_type if isinstance(avro_type, list) else [avro_type]
        return branches if "null" in branches else ["null", *branches]
    vtype, _ = value_type(avro_type)
    if isinstance(ladder, CategoryLadder | PrefixLadder) or vtype.kind in (
        base.STRING,
        base.ENUM,
    ):
        return ["null", "string"]
    if vtype.kind in (base.DATE, base.TIMESTAMP):
        bound: Any = {"type": vtype.base, "logicalType": vtype.logical}
    elif vtype.base == "int":
        bound = "long"
    else:
        bound = vtype.base
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in field_name) + "_range"
    fields = [{"name": "lo", "type": bound}, {"name": "hi", "type": bound}]
    return ["null", {"type": "record", "name": name, "fields": fields}]


def is_ladder(annotation: Mapping[str, Any]) -> bool:
    """Whether a field annotation asks for a ladder (a list-valued generalize parameter)."""
    if annotation.get("action") != "generalize":
        return False
    return "levels" in annotation or any(isinstance(annotation.get(k), list) for k in LADDER_KEYS)
