"""Derive phase: derived types, fields, default rules and the top-level stamp."""

from __future__ import annotations

from typing import Any

import pytest

from streamproc.policy.derive import (
    ENGINE_VERSION,
    DefaultRule,
    DerivedTypes,
    derived_field,
    policy_fingerprint,
    stamp,
)
from streamproc.policy.resolve import NamedTypes

ENUM = {"type": "enum", "name": "Colour", "namespace": "x", "symbols": ["RED"], "privacy": "keep"}
DOC = {"type": "record", "name": "T", "namespace": "ns", "fields": [{"name": "c", "type": ENUM}]}


def test_a_named_type_is_emitted_in_full_once_then_by_name() -> None:
    types = DerivedTypes(NamedTypes(DOC, "s.avsc"))
    first = types.passthrough({"type": "array", "items": "x.Colour"}, "ns")
    assert first == {
        "type": "array",
        "items": {"type": "enum", "name": "x.Colour", "symbols": ["RED"]},
    }
    assert types.passthrough(["null", "x.Colour"], "ns") == ["null", "x.Colour"]


def test_passthrough_strips_the_privacy_attribute() -> None:
    types = DerivedTypes(NamedTypes(DOC, "s.avsc"))
    t = {"type": "int", "logicalType": "date", "privacy": "keep"}
    assert types.passthrough(t, "ns") == {"type": "int", "logicalType": "date"}


def test_a_record_is_emitted_once() -> None:
    types = DerivedTypes(NamedTypes(DOC, "s.avsc"))
    assert types.record("ns.T", "doc", []) == {
        "type": "record",
        "name": "ns.T",
        "fields": [],
        "doc": "doc",
    }
    assert types.record("ns.T", "doc", []) == "ns.T"


@pytest.mark.parametrize(
    ("rule", "out_type", "source_default", "expected"),
    [
        ("kept", "string", "x", "x"),
        ("kept", ["null", "string"], None, None),
        ("transformed", ["null", "string"], None, None),
        ("transformed", ["string", "null"], "x", "absent"),
        ("transformed", "string", "x", "absent"),
        ("transformed", ["null", "string"], "absent", "absent"),
        ("rebuilt", ["null", {"type": "record"}], None, "absent"),
    ],
)
def test_default_rules(
    rule: DefaultRule, out_type: Any, source_default: Any, expected: Any
) -> None:
    f: dict[str, Any] = {"name": "v", "type": "ignored"}
    if source_default != "absent":
        f["default"] = source_default
    d = derived_field(f, out_type, rule)
    assert d.get("default", "absent") == expected


def test_a_transformed_field_says_what_was_done_to_it() -> None:
    f = {"name": "v", "type": "string", "doc": "Email.", "aliases": ["mail"]}
    d = derived_field(
        f, "string", "transformed", note="streamproc: mask()", action="mask", privacy_class="direct"
    )
    assert d == {
        "name": "v",
        "type": "string",
        "doc": "Email. [streamproc: mask()]",
        "aliases": ["mail"],
        "streamproc": {"action": "mask", "class": "direct"},
    }
    bare = derived_field({"name": "v"}, "string", "transformed", note="n", action="mask")
    assert bare["doc"] == "n" and bare["streamproc"] == {"action": "mask"}


def test_stamp_marks_the_top_record() -> None:
    derived: dict[str, Any] = {"type": "record", "name": "ns.T", "fields": [], "doc": "Orders."}
    stamp(derived, "ab" * 32, "ns.T")
    assert derived["streamproc"] == {
        "policy_fingerprint": "ab" * 32,
        "source_schema": "ns.T",
        "engine": ENGINE_VERSION,
    }
    assert derived["doc"] == f"Orders. Sanitized by streamproc (policy {'ab' * 8}) from ns.T."


def test_fingerprint_tracks_schema_mode_and_tag_map() -> None:
    base = policy_fingerprint(DOC, False, {})
    assert base == policy_fingerprint(dict(DOC), False, {})
    assert base != policy_fingerprint(DOC, True, {})
    assert base != policy_fingerprint(DOC, False, {"PII": {"action": "drop"}})
    assert base != policy_fingerprint({**DOC, "doc": "changed"}, False, {})
