"""Field paths of a record and hashable values at them.

A path uses the compiler's notation: ``address.postcode`` for a nested record field,
``orders[].sku`` for a field of every array element, ``prefs{}.level`` for every map value.
Values are normalised to hashable, order-stable forms so that two equal outputs fall in the
same equivalence class: a dict (e.g. a generalized ``{"lo": .., "hi": ..}``) becomes a tuple
of its ``(key, value)`` pairs sorted by key, a list a tuple, NaN one sentinel, None stays None.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamproc.risk.exceptions import RiskError

Getter = Callable[[Mapping[str, Any]], Any]

# One NaN object for every NaN: float('nan') != float('nan') would split a class.
NAN = ("<nan>",)
# Types that are hashable and compare by value as decoded: returned as they are (fast path).
_ATOMS = frozenset(
    {type(None), str, int, bool, bytes, dt.date, dt.datetime, dt.time, decimal.Decimal, uuid.UUID}
)
_STEP = re.compile(r"([^.\[\]{}]+)((?:\[\]|\{\})*)")


class MissingField(Exception):
    """A record lacks a field on the path (internal; callers turn it into a RiskError)."""


def normalise(value: Any) -> Any:
    """A hashable form of a decoded Avro value (see the module docstring)."""
    if type(value) in _ATOMS:
        return value
    if isinstance(value, float):
        return NAN if math.isnan(value) else value
    if isinstance(value, Mapping):
        return tuple((k, normalise(v)) for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return tuple(normalise(v) for v in value)
    return value  # dates, datetimes, decimals, UUIDs: already hashable


def parse_path(path: str) -> list[tuple[str, str]]:
    """``[(field name, container suffix), ...]`` for a dotted path; RiskError if malformed."""
    steps = []
    for part in path.split("."):
        m = _STEP.fullmatch(part)
        if m is None:
            raise RiskError(f"field path {path!r} is malformed")
        steps.append((m.group(1), m.group(2)))
    return steps


def getter(path: str) -> Getter:
    """A function ``record -> normalised value at path`` (MissingField if a field is absent)."""
    steps = parse_path(path)
    if len(steps) == 1 and not steps[0][1]:
        return _flat(steps[0][0])
    if not any(suffix for _, suffix in steps):
        return _nested(path, tuple(name for name, _ in steps))
    arrays = [i for i, (_, suffix) in enumerate(steps) if suffix]
    if len(arrays) == 1 and steps[arrays[0]][1] == "[]":
        i = arrays[0]
        names = tuple(name for name, _ in steps)
        return _one_array(path, names[: i + 1], names[i + 1 :])
    return _walker(path, steps)


def _walker(path: str, steps: list[tuple[str, str]]) -> Getter:
    """The getter of any path: a walk through records, arrays and maps."""

    def walk(value: Any, i: int) -> Any:
        if i == len(steps):
            return normalise(value)
        if value is None:
            return None  # a null record on the way: the value is unknown to everyone
        name, suffix = steps[i]
        if not isinstance(value, Mapping) or name not in value:
            raise MissingField(path)
        return expand(value[name], suffix, i)

    def expand(value: Any, suffix: str, i: int) -> Any:
        if not suffix or value is None:
            return walk(value, i + 1)
        head, rest = suffix[:2], suffix[2:]
        if head == "[]" and isinstance(value, list):
            return tuple(expand(v, rest, i) for v in value)
        if head == "{}" and isinstance(value, Mapping):
            return tuple((k, expand(v, rest, i)) for k, v in sorted(value.items()))
        raise MissingField(path)

    return lambda record: walk(record, 0)


def _flat(name: str) -> Getter:
    """The getter of a top-level field: the common case, kept cheap (it runs per record)."""

    def get(record: Mapping[str, Any]) -> Any:
        try:
            value = record[name]
        except (KeyError, TypeError):
            raise MissingField(name) from None
        return value if type(value) in _ATOMS else normalise(value)

    return get


def _nested(path: str, names: tuple[str, ...]) -> Getter:
    """The getter of a field in nested records (no array or map on the way): the walk of
    :func:`getter` as one loop, since it runs per record for every such quasi-identifier."""

    def get(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for name in names:
            if value is None:
                return None  # a null record on the way: the value is unknown to everyone
            if not (type(value) is dict or isinstance(value, Mapping)) or name not in value:
                raise MissingField(path)
            value = value[name]
        return value if type(value) in _ATOMS else normalise(value)

    return get


def _one_array(path: str, outer: tuple[str, ...], inner: tuple[str, ...]) -> Getter:
    """The getter of a field under exactly one array (``lines[].service_date``): the walk of
    :func:`getter` as two loops, since it runs per record (the nested claim's dates)."""

    def get(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for name in outer:
            if value is None:
                return None
            if not (type(value) is dict or isinstance(value, Mapping)) or name not in value:
                raise MissingField(path)
            value = value[name]
        if value is None:
            return None
        if not isinstance(value, list):
            raise MissingField(path)
        out = []
        for item in value:
            for name in inner:
                if item is None:
                    break
                if not (type(item) is dict or isinstance(item, Mapping)) or name not in item:
                    raise MissingField(path)
                item = item[name]
            out.append(item if type(item) in _ATOMS else normalise(item))
        return tuple(out)

    return get


def key_function(quasi: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """``record -> tuple of normalised quasi-identifier values`` (RiskError names the field)."""
    gets = [getter(path) for path in quasi]

    def key(record: Mapping[str, Any]) -> tuple[Any, ...]:
        try:
            return tuple([get(record) for get in gets])
        except MissingField as exc:
            raise RiskError(f"field {exc.args[0]}: not in the record") from None

    return key
