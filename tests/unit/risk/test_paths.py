"""Field getters: the fast ones for plain, nested and one-array fields agree with the general
walk."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from typing import Any

import pytest

from streamproc.risk.paths import MissingField, _walker, getter, parse_path

RECORDS: list[Any] = [
    {"a": {"b": {"c": "x"}}},
    {"a": {"b": {"c": None}}},
    {"a": {"b": None}},
    {"a": None},
    {"a": {"b": {"c": {"lo": 1, "hi": 2}}}},
    {"a": {"b": {"c": [1.5, float("nan")]}}},
    {"a": {"b": {"c": dt.date(2020, 1, 1)}}},
    {"a": OrderedDict(b={"c": 3})},
    {"a": {"b": {}}},
    {"a": {"b": "not a record"}},
    {"a": {}},
    {},
    {"a": ["x"]},
    {"a": [{"b": "x"}, {"b": None}, None, {"b": {"c": [2, 1]}}]},
    {"a": [{"b": {"c": "y"}}, {"b": None}, {"b": {"c": float("nan")}}]},
    {"a": [{"b": {}}]},
    {"a": [{}]},
    {"a": ["not a record"]},
    {"a": []},
    {"a": {"b": ["p", None, {"q": 1}]}},
    {"a": {"b": [{"c": dt.date(2020, 1, 1)}, {"c": None}]}},
    {"a": "not a list"},
    {"a": ({"b": 1},)},
]


def outcome(get: Any, record: Any) -> Any:
    try:
        return ("value", get(record))
    except MissingField as exc:
        return ("missing", exc.args)


@pytest.mark.parametrize(
    "path", ["a", "a.b", "a.b.c", "a[]", "a[].b", "a[].b.c", "a.b[]", "a.b[].c"]
)
def test_nested_getters_agree_with_the_general_walk(path: str) -> None:
    fast, general = getter(path), _walker(path, parse_path(path))
    for record in RECORDS:
        assert outcome(fast, record) == outcome(general, record)


def test_one_array_paths_take_the_fast_getter() -> None:
    # The walk is the reference above; the fast getter is what runs per record.
    assert getter("a[].b").__qualname__.startswith("_one_array")
    assert getter("a[].b[]").__qualname__.startswith("_walker")
    assert getter("a{}.b").__qualname__.startswith("_walker")
