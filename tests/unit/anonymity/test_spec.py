"""The record-level privacy annotation: accepted forms and refusals naming the schema path."""

from __future__ import annotations

from typing import Any

import pytest

from streamproc.anonymity import PrivacySpec, parse_privacy
from streamproc.errors import PolicyError


def test_defaults_and_full_form() -> None:
    assert parse_privacy({"k": 5}, schema_file="s.avsc") == PrivacySpec(k=5)
    full = {
        "k": 5,
        "l": 2,
        "sensitive": ["diagnosis_code"],
        "max_delay_ms": 60000,
        "max_suppressed": 0.05,
    }
    assert parse_privacy(full, schema_file="s.avsc") == PrivacySpec(
        5, 2, ("diagnosis_code",), 60000, 0.05
    )


@pytest.mark.parametrize(
    ("ann", "fragment"),
    [
        ({}, "needs 'k'"),
        ({"k": 1}, "'k' must be an integer >= 2"),
        ({"k": True}, "'k'"),
        ({"k": 5, "l": 2}, "needs 'sensitive'"),
        ({"k": 5, "sensitive": "diagnosis"}, "list of field paths"),
        ({"k": 5, "max_delay_ms": -1}, "max_delay_ms"),
        ({"k": 5, "max_suppressed": 1.5}, "max_suppressed"),
        ({"k": 5, "t": 0.2}, "unknown key(s) t"),
    ],
)
def test_refusals_name_the_schema_and_record(ann: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_privacy(ann, schema_file="claims.avsc", path="Claim")
    assert str(info.value).startswith("schema claims.avsc: record Claim: ")
    assert fragment in str(info.value)
