"""quasi_fields / sensitive_fields on annotated, tagged, nested and derived schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamproc.avro.schema import read_schema_json
from streamproc.policy import derive_schema
from streamproc.risk import field_paths, quasi_fields, sensitive_fields

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"

NESTED: dict[str, Any] = {
    "type": "record",
    "name": "Visit",
    "namespace": "t",
    "privacy": {"tags": {"QI": {"action": "keep", "class": "quasi"}}},
    "fields": [
        {"name": "id", "type": "string", "privacy": {"class": "direct", "action": "drop"}},
        {
            "name": "patient",
            "type": {
                "type": "record",
                "name": "Patient",
                "fields": [
                    {
                        "name": "zip",
                        "type": "string",
                        "privacy": {"class": "quasi", "action": "generalize", "prefix": 2},
                    },
                    {"name": "sex", "type": "string", "confluent:tags": ["QI"]},
                    {
                        "name": "dx",
                        "type": "string",
                        "privacy": {"class": "sensitive", "action": "keep"},
                    },
                ],
            },
        },
        {"name": "carer", "type": ["null", "Patient"], "default": None},
        {"name": "visits", "type": {"type": "array", "items": "Patient"}},
        {"name": "note", "type": "string", "privacy": "drop"},
    ],
}


def test_shipped_customer_schema() -> None:
    doc, _ = read_schema_json(SCHEMAS / "customer_profile.avsc")
    assert quasi_fields(doc) == ["birth_date", "postcode", "city", "gender"]
    assert sensitive_fields(doc) == ["annual_income"]


def test_derived_schema_keeps_the_classes() -> None:
    # Kept quasi fields (city, gender) must keep their class in the derived schema too.
    derived = derive_schema(SCHEMAS / "customer_profile.avsc").derived_schema_json
    assert quasi_fields(derived) == ["birth_date", "postcode", "city", "gender"]
    assert sensitive_fields(derived) == ["annual_income"]


def test_nested_tagged_and_named_references() -> None:
    assert quasi_fields(NESTED) == [
        "patient.zip",
        "patient.sex",
        "carer.zip",
        "carer.sex",
        "visits[].zip",
        "visits[].sex",
    ]
    assert sensitive_fields(NESTED) == ["patient.dx", "carer.dx", "visits[].dx"]
    assert "note" in field_paths(NESTED) and "patient" not in field_paths(NESTED)


def test_nested_derived_schema_keeps_the_paths() -> None:
    derived = derive_schema(NESTED).derived_schema_json
    assert quasi_fields(derived) == quasi_fields(NESTED)


def test_topology_tag_actions() -> None:
    doc: dict[str, Any] = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "zip", "type": "string", "confluent:tags": ["ZIP"]}],
    }
    assert quasi_fields(doc) == []
    assert quasi_fields(doc, tag_actions={"ZIP": {"action": "keep", "class": "quasi"}}) == ["zip"]


@pytest.mark.parametrize("name", ["claims.avsc", "access_event.avsc", "customer_profile.v1.avsc"])
def test_every_shipped_schema_walks(name: str) -> None:
    doc, _ = read_schema_json(SCHEMAS / name)
    paths = field_paths(doc)
    assert set(quasi_fields(doc)) <= set(paths) and paths
