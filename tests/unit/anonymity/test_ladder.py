"""Ladders: parsing (errors name schema and field, never values), rendering, nesting, NCP."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.anonymity import (
    CategoryLadder,
    Domain,
    IntervalLadder,
    PrefixLadder,
    derived_type,
    parse_ladder,
)
from streamproc.errors import PolicyError
from tests.unit.anonymity.strategies import DATE, QI, TS_MS, make_ladder

CANARY = "CANARY-7f3a"


def lad(spec: dict[str, Any], avro: Any = "int") -> Any:
    return parse_ladder(spec, avro, schema_file="people.avsc", field_path="person.q")


BAD = [
    ({"bucket": [10, 25]}, "int", "multiple"),  # 25 is not a multiple of 10: levels would overlap
    ({"bucket": [5, 10, 25, 50]}, "int", "multiple"),  # the issue's example does not nest
    ({"bucket": [10, 5]}, "int", "grow"),
    ({"bucket": [2.5]}, "int", "integers"),
    ({"bucket": []}, "int", "non-empty"),
    ({"bucket": [0]}, "double", "positive"),
    ({"bucket": [5]}, "string", "does not fit"),
    ({"bucket": [5], "domain": [10, 1]}, "int", "domain"),
    ({"to": ["year", "day"]}, DATE, "finer to coarser"),
    ({"to": ["hour"]}, DATE, "hour"),
    ({"to": ["week"]}, DATE, "among"),
    ({"to": ["1y"]}, DATE, "among"),  # spelled "year"
    ({"to": ["0y"]}, DATE, "among"),
    ({"to": ["1000y"]}, DATE, "among"),
    ({"to": ["5 y"]}, DATE, "among"),
    ({"to": ["year", "2y", "5y"]}, DATE, "multiple"),  # [1994, 1996) straddles [1995, 2000)
    ({"to": ["5y", "decade", "25y"]}, DATE, "multiple"),
    ({"to": ["decade", "10y"]}, DATE, "finer to coarser"),  # the same level twice
    ({"to": ["year", "quarter"]}, DATE, "finer to coarser"),
    ({"to": ["5y", "year"]}, TS_MS, "finer to coarser"),
    ({"to": ["day"]}, "long", "does not fit"),
    ({"prefix": [2, 3]}, "string", "decrease"),
    ({"prefix": [0]}, "string", ">= 1"),
    ({"prefix": [3]}, "int", "does not fit"),
    ({"levels": [{"a": "x"}, {"y": "z"}]}, "string", "unmapped"),
    ({"levels": [{"a": "x"}, {"x": "z", "w": "z"}]}, "string", "never outputs"),
    ({"levels": [{"a": "b", "b": "b2"}]}, "string", "ambiguous"),
    ({"levels": [{"x": "1"}]}, "int", "integers"),
    (
        {"levels": [{"RED": "warm"}]},
        {"type": "enum", "name": "C", "symbols": ["RED", "BLUE"]},
        "unmapped",
    ),
    ({"bucket": [5], "alphabet": "01"}, "int", "only fits 'prefix'"),
    ({"prefix": [2], "alphabet": "0"}, "string", "at least 2 distinct"),
    ({"prefix": [2], "alphabet": "0010"}, "string", "at least 2 distinct"),
    ({"prefix": [2], "alphabet": 10}, "string", "at least 2 distinct"),
    ({"bucket": [5], "prefix": [2]}, "int", "exactly one"),
    ({"bucket": [5], "round": 2}, "int", "unknown"),
    ({}, "int", "exactly one"),
]


@pytest.mark.parametrize(("spec", "avro", "fragment"), BAD)
def test_bad_ladders_are_refused_naming_schema_and_field(
    spec: Any, avro: Any, fragment: str
) -> None:
    with pytest.raises(PolicyError) as info:
        lad(spec, avro)
    assert "schema people.avsc: field person.q" in str(info.value)
    assert fragment in str(info.value)


def test_an_error_about_a_levels_map_never_names_its_values() -> None:
    spec = {"levels": [{CANARY: f"{CANARY}-grp"}, {"other": "top"}]}
    with pytest.raises(PolicyError) as info:
        lad(spec, "string")
    assert "CANARY" not in str(info.value) and "other" not in str(info.value)
    enum = {"type": "enum", "name": "E", "symbols": [CANARY, "B"]}
    with pytest.raises(PolicyError) as info:
        lad({"levels": [{"B": "b"}]}, enum)
    assert "CANARY" not in str(info.value)


def test_outputs_per_kind() -> None:
    age = lad({"bucket": [5, 10]})
    assert [age.render(age.cell(37, lv)) for lv in range(3)] == [
        {"lo": 35, "hi": 40},
        {"lo": 30, "hi": 40},
        None,
    ]
    assert age.render(age.cell(-3, 0)) == {"lo": -5, "hi": 0}  # aligned at 0, floor
    born = lad({"to": ["day", "month", "year"]}, DATE)
    d = dt.date(1987, 12, 31)
    assert born.render(born.cell(d, 1)) == {"lo": dt.date(1987, 12, 1), "hi": dt.date(1988, 1, 1)}
    assert born.cell((d - dt.date(1970, 1, 1)).days, 2) == born.cell(d, 2)  # days accepted too
    years = lad({"to": ["month", "quarter", "year", "5y", "decade", "20y"]}, DATE)
    assert [years.render(years.cell(dt.date(1987, 11, 5), lv)) for lv in range(7)] == [
        {"lo": dt.date(1987, 11, 1), "hi": dt.date(1987, 12, 1)},
        {"lo": dt.date(1987, 10, 1), "hi": dt.date(1988, 1, 1)},
        {"lo": dt.date(1987, 1, 1), "hi": dt.date(1988, 1, 1)},
        {"lo": dt.date(1985, 1, 1), "hi": dt.date(1990, 1, 1)},
        {"lo": dt.date(1980, 1, 1), "hi": dt.date(1990, 1, 1)},
        {"lo": dt.date(1980, 1, 1), "hi": dt.date(2000, 1, 1)},
        None,
    ]
    assert years.render(years.cell(dt.date(1995, 2, 28), 1)) == {
        "lo": dt.date(1995, 1, 1),
        "hi": dt.date(1995, 4, 1),
    }
    # Years 1-9 have no year 0 to start at: their cells start at year 1 and end where the
    # cells of years 10 and up begin, so the levels still nest.
    early = lad({"to": ["year", "2y", "decade"]}, DATE)
    assert [early.render(early.cell(dt.date(1, 6, 1), lv))["hi"] for lv in range(3)] == [
        dt.date(2, 1, 1),
        dt.date(2, 1, 1),
        dt.date(10, 1, 1),
    ]
    assert early.render(early.cell(dt.date(3, 6, 1), 1)) == {
        "lo": dt.date(2, 1, 1),
        "hi": dt.date(4, 1, 1),
    }
    # A cell must end on a date: the values of a cell ending past 9999-12-31 are suppressed
    # at every level (they were a crash for month and year, an empty cell for a decade).
    assert years.cells(dt.date(9999, 5, 1)) == [None] * 6
    assert years.cells(dt.date(9979, 5, 1))[4] is not None  # [9970, 9980) is a date range
    ts = lad({"to": ["hour", "day"]}, TS_MS)
    last = dt.datetime(9999, 12, 31, 5, tzinfo=dt.UTC)
    assert ts.cells(last) == [None, None]  # its day ends past 9999-12-31: not renderable
    t = dt.datetime(2024, 3, 1, 12, 34, tzinfo=dt.UTC)
    assert ts.render(ts.cell(t, 0)) == {
        "lo": t.replace(minute=0),
        "hi": t.replace(hour=13, minute=0),
    }
    pc = lad({"prefix": [3, 1]}, "string")
    assert [pc.cell("10115", lv) for lv in range(3)] == ["101", "1", None]
    city = lad(
        {"levels": [{"Berlin": "DE", "Munich": "DE", "Paris": "FR"}, {"DE": "EU", "FR": "EU"}]},
        "string",
    )
    assert [city.cell("Munich", lv) for lv in range(4)] == ["Munich", "DE", "EU", None]
    assert city.cell("Atlantis", 0) is None  # unmapped at run time: suppressed at every level
    assert isinstance(city, CategoryLadder) and city.ncp("DE", "Munich", Domain()) == 0.5


def test_a_declared_alphabet_measures_a_prefix_over_every_code() -> None:
    """Without it a prefix costs the share of the values *seen* that start with it; with it,
    the share of all strings of the value's length: a postcode prefix as its code interval."""
    seen = ["10115", "10117", "10999", "75001"]
    plain = lad({"prefix": [3, 2]}, "string")
    digits = lad({"prefix": [3, 2], "alphabet": "0123456789"}, "string")
    assert isinstance(plain, PrefixLadder) and isinstance(digits, PrefixLadder)
    dom = plain.domain_of(seen)
    assert plain.ncp("10", "10115", dom) == pytest.approx(2 / 3)  # 3 of the 4 seen
    assert digits.ncp("10", "10115", digits.domain_of(seen)) == pytest.approx(999 / 99_999)
    assert digits.ncp("101", "10115", dom) == pytest.approx(99 / 99_999)
    assert digits.ncp("10115", "10115", dom) == 0.0 and digits.ncp(None, "10115", dom) == 1.0
    assert digits.ncp("1", "1" * 100, dom) == pytest.approx(0.1)  # long values: no overflow
    with pytest.raises(PolicyError) as info:
        lad({"prefix": [2], "alphabet": CANARY + CANARY[0]}, "string")
    assert "CANARY" not in str(info.value)


def test_float_buckets_nest_exactly() -> None:
    f = lad({"bucket": [0.1, 0.2, 1.0]}, "double")
    x = 0.30000000000000004
    cells = [f.cell(x, lv) for lv in range(3)]
    assert cells[0][0] <= x < cells[0][1]
    for fine, coarse in itertools.pairwise(cells):
        assert coarse[0] <= fine[0] and fine[1] <= coarse[1]
    assert f.cell(float("nan"), 0) is None and f.cell(float("inf"), 0) is None


@settings(max_examples=300, deadline=None)
@given(
    width=st.sampled_from(["0.01", "0.05", "0.1", "0.3", "2.5"]),
    steps=st.integers(-200_000, 200_000),
    digits=st.integers(0, 3),
)
def test_rendered_float_cells_contain_decimal_values(width: str, steps: int, digits: int) -> None:
    """A float just below its decimal (107.33 is 107.3299...) must not get a cell whose
    rendered hi equals it: lo <= value < hi on the published floats, at every level."""
    w = float(width)
    f = lad({"bucket": [w, w * 4, w * 8]}, "double")
    x = round(steps * w / 10**digits, 6)
    for lv in range(f.top):
        lo, hi = _interval(f, f.cell(x, lv))
        assert lo <= x < hi
    assert f.cell(107.33, 0) == (107.33, 107.34) or w != 0.01


def _interval(lad_: Any, cell: Any) -> tuple[Any, Any]:
    out = lad_.render(cell)
    return out["lo"], out["hi"]


@settings(max_examples=300, deadline=None)
@given(spec=QI, data=st.data())
def test_cells_contain_the_value_and_levels_nest_or_are_disjoint(spec: Any, data: Any) -> None:
    ladder = make_ladder(spec, "f")
    a, b = data.draw(spec.values), data.draw(spec.values)
    la, lb = data.draw(st.integers(0, ladder.top)), data.draw(st.integers(0, ladder.top))
    ca, cb = ladder.cell(a, la), ladder.cell(b, lb)
    assert ladder.cell(a, ladder.top) is None
    if isinstance(ladder, IntervalLadder) and ca is not None and cb is not None:
        (alo, ahi), (blo, bhi) = _interval(ladder, ca), _interval(ladder, cb)
        assert alo <= _as(ladder, a) < ahi
        nest = (alo <= blo and bhi <= ahi) or (blo <= alo and ahi <= bhi)
        assert nest or ahi <= blo or bhi <= alo
        if (alo, ahi) == (blo, bhi):
            assert ca == cb
        own = [_interval(ladder, c) for c in ladder.cells(a)]  # a's cells, finest first
        for (flo, fhi), (clo, chi) in itertools.pairwise(own):
            assert clo <= flo and fhi <= chi  # each level's cell inside the next one's
    if isinstance(ladder, PrefixLadder) and ca is not None:
        assert a.startswith(ca)  # the output "p" means "every string starting with p"
    if isinstance(ladder, CategoryLadder) and ca is not None and cb is not None and ca == cb:
        assert ladder.members is not None and {a, b} <= ladder.members[str(ca)]
    if ca is not None:
        d = ladder.domain_of([a, b])
        assert 0.0 <= ladder.ncp(ca, a, d) <= 1.0


def _as(ladder: IntervalLadder, value: Any) -> Any:
    if isinstance(value, int) and ladder.kind in ("date", "timestamp"):
        return ladder.render((value, value + 1))["lo"]
    return value


def test_derived_types() -> None:
    assert derived_type("int", "age", lad({"bucket": [5]})) == [
        "null",
        {
            "type": "record",
            "name": "age_range",
            "fields": [{"name": "lo", "type": "long"}, {"name": "hi", "type": "long"}],
        },
    ]
    rec = derived_type(DATE, "person.birth")[1]
    assert rec["name"] == "person_birth_range" and rec["fields"][0]["type"] == DATE
    assert derived_type(["null", "string"], "zip") == ["null", "string"]
    assert derived_type("int", "code", lad({"levels": [{"1": "low"}]})) == ["null", "string"]
