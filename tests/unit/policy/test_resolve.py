"""Resolve phase: named types and what each field's or record's annotation asks for."""

from __future__ import annotations

from typing import Any

import pytest

from streamproc.anonymity import PrivacySpec
from streamproc.errors import PolicyError, SchemaError
from streamproc.policy.resolve import (
    RECORD_KEYS,
    NamedTypes,
    resolve_field,
    resolve_record,
)

ENUM = {"type": "enum", "name": "Colour", "symbols": ["RED"]}
INNER = {"type": "record", "name": "Inner", "namespace": "other", "fields": []}
DOC: dict[str, Any] = {
    "type": "record",
    "name": "Top",
    "namespace": "ns",
    "fields": [
        {"name": "c", "type": ENUM},
        {"name": "i", "type": ["null", INNER]},
        {"name": "again", "type": {"type": "array", "items": "other.Inner"}},
        {"name": "colour", "type": "Colour"},
    ],
}


def test_named_types_are_collected_under_their_full_names() -> None:
    named = NamedTypes(DOC, "s.avsc")
    assert named["ns.Top"] is DOC
    assert named["ns.Colour"] is ENUM
    assert named["other.Inner"] is INNER


def test_a_reference_resolves_in_the_enclosing_namespace_first() -> None:
    named = NamedTypes(DOC, "s.avsc")
    assert named.resolve("Colour", "ns") == (ENUM, "ns")
    assert named.resolve("other.Inner", "ns") == (INNER, "other")
    assert named.resolve("string", "ns") == ("string", "ns")
    with pytest.raises(SchemaError, match=r"schema s\.avsc: unknown type Nope"):
        named.resolve("Nope", "ns")


def test_a_type_defined_twice_is_refused() -> None:
    doc = {**DOC, "fields": [*DOC["fields"], {"name": "d", "type": dict(ENUM)}]}
    with pytest.raises(SchemaError, match=r"type ns\.Colour is defined twice"):
        NamedTypes(doc, "s.avsc")


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        ("string", False),
        ("Colour", False),
        (["null", "other.Inner"], True),
        ({"type": "array", "items": "other.Inner"}, True),
        ({"type": "map", "values": {"type": "array", "items": "string"}}, False),
        ({"type": "map", "values": ["null", "other.Inner"]}, True),
    ],
)
def test_contains_record_looks_through_unions_containers_and_references(
    t: Any, expected: bool
) -> None:
    assert NamedTypes(DOC, "s.avsc").contains_record(t, "ns") is expected


def test_value_type_of_an_enum_carries_its_full_name() -> None:
    vtype = NamedTypes(DOC, "s.avsc").value_type(ENUM, "ns")
    assert (vtype.base, vtype.kind, vtype.schema["name"]) == ("enum", "enum", "ns.Colour")


def test_the_privacy_attribute_wins_over_tags() -> None:
    f = {"name": "e", "type": "string", "privacy": "keep", "confluent:tags": ["PII"]}
    fa = resolve_field(f, "e", "s.avsc", {"PII": {"action": "drop"}})
    assert (fa.action, fa.origin, fa.tags) == ("keep", "annotation", ("PII",))


def test_a_mapped_tag_gives_the_annotation_and_the_origin() -> None:
    f = {"name": "e", "type": "string", "confluent:tags": ["X", "PII"]}
    mapping = {"PII": {"action": "mask", "keep_last": 2, "class": "direct"}}
    fa = resolve_field(f, "a.e", "s.avsc", mapping)
    assert (fa.action, fa.privacy_class, fa.origin) == ("mask", "direct", "tag:PII")
    assert fa.params == {"keep_last": 2}


def test_no_annotation_and_no_mapped_tag_asks_for_nothing() -> None:
    fa = resolve_field({"name": "e", "type": "string"}, "e", "s.avsc", {})
    assert fa.action is None and fa.params == {} and fa.privacy_class is None


def test_an_unknown_privacy_class_names_schema_and_field() -> None:
    f = {"name": "e", "type": "string", "privacy": {"action": "keep", "class": "secret"}}
    with pytest.raises(PolicyError, match=r"^schema s.avsc: field a.e: unknown privacy class"):
        resolve_field(f, "a.e", "s.avsc", {})


def test_record_policy_reads_tags() -> None:
    t = {"privacy": {"tags": {"PII": "drop"}}}
    assert resolve_record(t, "ns.R", "r", "s.avsc").tags == {"PII": {"action": "drop"}}
    assert resolve_record({}, "ns.R", "r", "s.avsc").tags == {}


@pytest.mark.parametrize("own", [{"kk": 5}, {"tags": {}, "delay": 2}, "tags", ["tags"]])
def test_record_policy_refuses_keys_it_does_not_know(own: Any) -> None:
    with pytest.raises(PolicyError) as info:
        resolve_record({"privacy": own}, "ns.R", "", "s.avsc")
    allowed = ", ".join(repr(k) for k in RECORD_KEYS)
    assert str(info.value) == (
        f"schema s.avsc: field <top>: record ns.R: 'privacy' on a record only takes {allowed}"
    )


def test_record_policy_reads_the_k_anonymity_bound() -> None:
    own = {"k": 5, "l": 2, "sensitive": ["d"], "max_delay_ms": 1000, "tags": {"PII": "drop"}}
    policy = resolve_record({"privacy": own}, "ns.R", "", "s.avsc")
    assert policy.anonymity == PrivacySpec(
        k=5, l=2, sensitive=("d",), max_delay_ms=1000, max_suppressed=0.05
    )
    assert policy.tags == {"PII": {"action": "drop"}}
    assert resolve_record({"privacy": {"tags": {}}}, "ns.R", "", "s.avsc").anonymity is None


@pytest.mark.parametrize(
    ("own", "message"),
    [
        ({"l": 2, "sensitive": ["d"]}, "privacy needs 'k'"),
        ({"k": 1}, "privacy 'k' must be an integer >= 2"),
        ({"k": 5, "l": 2}, "privacy 'l' > 1 needs 'sensitive' fields"),
        ({"k": 5, "max_suppressed": 2}, "privacy 'max_suppressed' must be a share in [0, 1]"),
    ],
)
def test_a_bad_bound_names_schema_and_record(own: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as info:
        resolve_record({"privacy": own}, "ns.R", "", "s.avsc")
    assert str(info.value) == f"schema s.avsc: record ns.R: {message}"
