"""Hypothesis strategies for the anonymity tests: ladder specs, skewed QI values, a checker.

A generated quasi-identifier is (annotation, Avro type, value strategy); values are drawn from
a small pool most of the time (skew: a few very common values) and from the whole range
otherwise, with missing and (for categories) unmapped values mixed in.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from streamproc.anonymity import KeepLadder, Ladder, parse_ladder

DATE = {"type": "int", "logicalType": "date"}
TS_MS = {"type": "long", "logicalType": "timestamp-millis"}
# "to" units that nest, finest first: two chains, since 2y and 5y do not nest in each other.
UNIT_CHAINS = (
    ["hour", "day", "month", "quarter", "year", "2y", "decade", "20y"],
    ["hour", "day", "month", "quarter", "year", "5y", "decade", "50y"],
)


@dataclass(frozen=True)
class QiSpec:
    annotation: dict[str, Any]
    avro: Any
    values: st.SearchStrategy[Any]


def _skewed(full: st.SearchStrategy[Any], draw: Any) -> st.SearchStrategy[Any]:
    pool = draw(st.lists(full, min_size=1, max_size=4))
    return st.one_of(st.sampled_from(pool), st.sampled_from(pool), full)


@st.composite
def int_qi(draw: Any) -> QiSpec:
    w = [draw(st.sampled_from([1, 2, 3, 5]))]
    for m in draw(st.lists(st.sampled_from([2, 3, 5]), max_size=3)):
        w.append(w[-1] * m)
    full = st.integers(-1000, 1000)
    return QiSpec({"bucket": w}, draw(st.sampled_from(["int", "long"])), _skewed(full, draw))


@st.composite
def float_qi(draw: Any) -> QiSpec:
    w = [draw(st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.5]))]
    for m in draw(st.lists(st.sampled_from([2, 4, 10]), max_size=3)):
        w.append(w[-1] * m)
    full = st.floats(-1e4, 1e4, allow_nan=False)
    values = st.one_of(_skewed(full, draw), st.just(float("nan")))
    return QiSpec({"bucket": w}, draw(st.sampled_from(["float", "double"])), values)


@st.composite
def date_qi(draw: Any) -> QiSpec:
    chain = draw(st.sampled_from(UNIT_CHAINS))
    units = draw(st.lists(st.sampled_from(chain[1:]), min_size=1, max_size=4, unique=True))
    units.sort(key=chain.index)
    days = st.integers(-30000, 30000).map(lambda d: dt.date(1970, 1, 1) + dt.timedelta(days=d))
    return QiSpec({"to": units}, DATE, _skewed(days, draw))


@st.composite
def ts_qi(draw: Any) -> QiSpec:
    chain = draw(st.sampled_from(UNIT_CHAINS))
    units = draw(st.lists(st.sampled_from(chain), min_size=1, max_size=5, unique=True))
    units.sort(key=chain.index)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    ts = st.integers(-(10**12), 10**12).map(lambda ms: epoch + dt.timedelta(milliseconds=ms))
    return QiSpec({"to": units}, TS_MS, _skewed(ts, draw))


@st.composite
def prefix_qi(draw: Any) -> QiSpec:
    lengths = sorted(draw(st.sets(st.integers(1, 6), min_size=1, max_size=4)), reverse=True)
    full = st.text(alphabet="ab0", max_size=7)
    return QiSpec(
        {"prefix": lengths}, ["null", "string"], st.one_of(_skewed(full, draw), st.none())
    )


@st.composite
def levels_qi(draw: Any) -> QiSpec:
    raw = [f"v{i}" for i in range(draw(st.integers(1, 8)))]
    maps: list[dict[str, str]] = []
    names = raw
    for depth in range(draw(st.integers(0, 3))):
        groups = draw(st.integers(1, max(1, len(names))))
        maps.append({n: f"g{depth}_{i % groups}" for i, n in enumerate(names)})
        names = sorted(set(maps[-1].values()))
    if not maps:  # a ladder needs at least one map; a single group is a legal coarsest level
        maps.append({n: "all" for n in raw})
    values = st.one_of(_skewed(st.sampled_from(raw), draw), st.just("unmapped"))
    return QiSpec({"levels": maps}, "string", values)


@st.composite
def keep_qi(draw: Any) -> QiSpec:
    """A quasi field without a ladder (kept or scalar-transformed): value or suppressed."""
    full = st.one_of(st.integers(0, 3), st.sampled_from(["F", "M"]), st.lists(st.integers()))
    return QiSpec({"keep": True}, "string", st.one_of(_skewed(full, draw), st.none()))


QI = st.one_of(int_qi(), float_qi(), date_qi(), ts_qi(), prefix_qi(), levels_qi(), keep_qi())


def make_ladder(spec: QiSpec, path: str) -> Ladder:
    if spec.annotation == {"keep": True}:
        return KeepLadder(path=path)
    return parse_ladder(spec.annotation, spec.avro, schema_file="t.avsc", field_path=path)


@st.composite
def table(
    draw: Any, max_qis: int = 4, max_rows: int = 60
) -> tuple[list[Ladder], list[tuple[Any, ...]]]:
    specs = draw(st.lists(QI, min_size=1, max_size=max_qis))
    ladders = [make_ladder(s, f"q{i}") for i, s in enumerate(specs)]
    n = draw(st.integers(0, max_rows))
    rows = [tuple(draw(s.values) for s in specs) for _ in range(n)]
    return ladders, rows


def sensitive_column(draw: Any, n: int) -> list[tuple[Hashable, ...]]:
    width = draw(st.integers(1, 2))
    pool = st.sampled_from(["s0", "s1", "s2", "s3"][: draw(st.integers(1, 4))])
    return [tuple(draw(pool) for _ in range(width)) for _ in range(n)]


def freeze(value: Any) -> Hashable:
    """What a consumer groups by: the rendered output value, made hashable."""
    if isinstance(value, dict):
        return ("range", value["lo"], value["hi"])
    return value


def violations(
    outputs: Sequence[tuple[Any, ...]],
    sensitive: Sequence[tuple[Hashable, ...]] | None,
    k: int,
    l: int,  # noqa: E741
) -> list[str]:
    """Combinations (not fully suppressed) with < k records or < l distinct sensitive values."""
    groups: dict[tuple[Hashable, ...], list[int]] = defaultdict(list)
    for i, out in enumerate(outputs):
        key = tuple(freeze(v) for v in out)
        if any(v is not None for v in key):
            groups[key].append(i)
    bad = []
    for idx in groups.values():
        if len(idx) < k:
            bad.append(f"{len(idx)} < k records")
        if sensitive is not None and l > 1:
            for a in range(len(sensitive[idx[0]])):
                if len({sensitive[i][a] for i in idx}) < l:
                    bad.append(f"attribute {a}: < l distinct")
    return bad


def covers(ladder: Ladder, value: Any, out: Any) -> bool:
    """The output is one of the value's generalizations on its ladder (truthful)."""
    return any(ladder.render(ladder.cell(value, lv)) == out for lv in range(ladder.top + 1))


def count_suppressed(outputs: Sequence[tuple[Any, ...]]) -> int:
    return sum(all(v is None for v in out) for out in outputs)
