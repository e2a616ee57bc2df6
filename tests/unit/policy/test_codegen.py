"""Codegen phase: record functions, the value-free failure locator, exec and the stubs."""

from __future__ import annotations

from typing import Any

import pytest

from streamproc.errors import PolicyError, TransformError
from streamproc.policy.codegen import Entry, Source, copy_record, unbound

SECRET = "s3cret-value"


def _upper(value: str) -> str:
    return value.upper()


def _plan() -> Any:
    src = Source()
    fn = src.name("f")
    src.globals[fn] = _upper
    entries = [Entry("a", "r['a']", "a"), Entry("b", f"{fn}(r['b'])", "b")]
    name = src.record_function("s.avsc", "", entries, uses_u=False)
    return src.build("s.avsc", name), src.text()


def test_a_record_function_builds_the_output_in_one_display() -> None:
    sanitize, text = _plan()
    assert sanitize({"a": 1, "b": "x", "extra": 2}) == {"a": 1, "b": "X"}
    assert text.startswith("def _rec2(r, up=()):")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"a": 1}, "schema s.avsc: field b: missing"),
        ({"a": 1, "b": 5}, "schema s.avsc: field b: AttributeError"),
        ([SECRET], "schema s.avsc: record <top>: not a record"),
    ],
)
def test_failures_are_located_without_the_value(record: Any, message: str) -> None:
    sanitize, _ = _plan()
    with pytest.raises(TransformError) as info:
        sanitize(record)
    assert str(info.value) == message
    assert SECRET not in repr(info.value)


def test_each_and_unless_null_take_fresh_names() -> None:
    src = Source()
    assert src.each("array", "_x1", "r['v']", "f(_x1)") == "[f(_x1) for _x1 in r['v']]"
    assert src.each("map", "_x1", "r['v']", "f(_x1)") == (
        "{_k1: f(_x1) for _k1, _x1 in r['v'].items()}"
    )
    assert src.unless_null("_v2", "r['v']", "f(_v2)") == (
        "(None if (_v2 := r['v']) is None else f(_v2))"
    )


def test_an_identity_plan_copies_and_a_derived_plan_refuses() -> None:
    record = {"a": 1}
    assert Source().build("s.avsc", None) is copy_record
    assert copy_record(record) == record and copy_record(record) is not record
    with pytest.raises(PolicyError, match=r"schema s\.avsc: plan was derived without binding"):
        unbound("s.avsc")(record)
