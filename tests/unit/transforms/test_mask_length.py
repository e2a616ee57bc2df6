"""``mask`` with a fixed ``length``: the output never tells the value's length or shape."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import PolicyError
from tests.unit.engine_helpers import plan_for


@pytest.mark.parametrize(
    ("ann", "value", "expected"),
    [
        ({"length": 8}, "grace.lovelace0@example.com", "********"),
        ({"length": 8}, "a", "********"),
        ({"length": 8}, "", "********"),
        ({"length": 8, "keep_first": 1}, "grace.lovelace0@example.com", "g*******"),
        ({"length": 8, "keep_first": 1}, "ab", "a*******"),
        ({"length": 8, "keep_first": 1}, "a", "********"),  # would reveal it all
        ({"length": 6, "keep_first": 1, "keep_last": 2}, "bob@x.io", "b***io"),
        ({"length": 6, "keep_first": 1, "keep_last": 2}, "abc", "******"),
        ({"length": 4, "char": "#"}, "4111 1111", "####"),
    ],
)
def test_fixed_length_mask(ann: dict[str, Any], value: str, expected: str) -> None:
    plan = plan_for("string", {"action": "mask", **ann})
    assert plan.sanitize({"sid": "s", "v": value})["v"] == expected


def test_fixed_length_mask_of_a_uuid_is_a_string() -> None:
    plan = plan_for({"type": "string", "logicalType": "uuid"}, {"action": "mask", "length": 5})
    assert plan.sanitize({"sid": "s", "v": uuid.UUID(int=1)})["v"] == "*****"
    assert plan.derived_schema_json["fields"][1]["type"] == "string"


@given(
    st.text(max_size=60),
    st.integers(1, 40),
    st.integers(0, 5),
    st.integers(0, 5),
)
def test_output_length_and_content_never_depend_on_the_hidden_part(
    value: str, length: int, first: int, last: int
) -> None:
    if first + last >= length:
        return
    ann = {"action": "mask", "length": length, "keep_first": first, "keep_last": last}
    out = plan_for("string", ann).sanitize({"sid": "s", "v": value})["v"]
    assert len(out) == length
    middle = out[first : length - last]
    assert set(middle) <= {"*"}
    # Two values with the same kept ends mask alike, whatever their length in between.
    if len(value) > first + last:
        other = value[:first] + "x" * 17 + (value[len(value) - last :] if last else "")
        assert plan_for("string", ann).sanitize({"sid": "s", "v": other})["v"] == out


@pytest.mark.parametrize(
    ("ann", "message"),
    [
        ({"length": 0}, "parameter 'length' must be >= 1"),
        ({"length": "8"}, "parameter 'length' must be an integer"),
        ({"length": True}, "parameter 'length' must be an integer"),
        ({"length": 3, "keep_first": 2, "keep_last": 1}, "'keep_first' \\+ 'keep_last' must be <"),
        ({"length": 5000}, "parameter 'length' must be <= 1024"),
    ],
)
def test_bad_length_fails_at_load_naming_the_field(ann: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=f"field v: mask: {message}"):
        plan_for("string", {"action": "mask", **ann})
