"""measure(): equivalence classes, shares, l-diversity, suppression, and no values out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamproc.risk import RiskError, measure, normalise

ROWS: list[dict[str, Any]] = [
    {"zip": "101", "age": 30, "dx": "flu"},
    {"zip": "101", "age": 30, "dx": "flu"},
    {"zip": "101", "age": 30, "dx": "cold"},
    {"zip": "102", "age": 41, "dx": "flu"},
    {"zip": "102", "age": 41, "dx": "flu"},
    {"zip": "103", "age": 52, "dx": "gout"},
]


def test_counts_on_a_hand_checked_table() -> None:
    r = measure(ROWS, ["zip", "age"], sensitive="dx", k=3)
    assert (r.records, r.classes, r.k_min) == (6, 3, 1)
    assert r.unique_share == pytest.approx(1 / 6)
    assert r.below_k_share == pytest.approx(3 / 6)  # the classes of 2 and 1
    assert r.l_min == 1 and r.below_l_classes == 2
    assert [(b.label, b.classes, b.records) for b in r.size_histogram] == [
        ("1", 1, 1),
        ("2", 1, 2),
        ("3-4", 1, 3),
    ]


def test_contract_keys_in_json() -> None:
    doc = measure(ROWS, ["zip", "age"], sensitive="dx").to_json()
    for key in (
        "records",
        "quasi_identifiers",
        "classes",
        "k_min",
        "unique_share",
        "below_k_share",
        "k",
        "l_min",
    ):
        assert key in doc
    assert doc["quasi_identifiers"] == ["zip", "age"]
    assert "l_min" not in measure(ROWS, ["zip"]).to_json()


def test_report_never_holds_a_value() -> None:
    rows = [{"zip": f"CANARY-{i}", "dx": f"SECRET-{i % 2}"} for i in range(20)]
    text = json.dumps(measure(rows, ["zip"], sensitive="dx").to_json()) + repr(
        measure(rows, ["zip"], sensitive="dx")
    )
    assert "CANARY" not in text and "SECRET" not in text


def test_contributions_name_the_field_that_makes_records_unique() -> None:
    rows = [{"a": i % 2, "id": i} for i in range(40)]  # "id" alone makes everyone unique
    r = measure(rows, ["a", "id"], k=5)
    assert r.unique_share == 1.0
    first = r.contributions[0]
    assert first.field == "id" and first.unique_share_without == 0.0 and first.k_min_without == 20


def test_nested_paths_and_generalized_ranges() -> None:
    rows = [
        {"person": {"age": {"lo": 30, "hi": 40}, "zip": "10"}},
        {"person": {"age": {"hi": 40, "lo": 30}, "zip": "10"}},  # same set, other key order
        {"person": None},
    ]
    r = measure(rows, ["person.age", "person.zip"], k=2)
    assert r.classes == 1 and r.k_min == 2 and r.suppressed == 1


def test_suppressed_records_form_no_class_but_count_in_shares() -> None:
    rows = [{"a": None, "b": None}] * 3 + [{"a": 1, "b": None}] * 2 + [{"a": None, "b": 2}]
    r = measure(rows, ["a", "b"], k=2)
    assert r.suppressed == 3 and r.records == 6 and r.classes == 2
    assert r.k_min == 1 and r.unique_share == pytest.approx(1 / 6)


def test_empty_and_all_suppressed() -> None:
    assert measure([], ["a"]).k_min is None
    r = measure([{"a": None}] * 4, ["a"])
    assert (r.k_min, r.classes, r.suppressed, r.unique_share) == (None, 0, 4, 0.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"lo": 1, "hi": 2}, (("hi", 2), ("lo", 1))),
        ([1, [2, 3]], (1, (2, 3))),
        (None, None),
        ("x", "x"),
    ],
)
def test_normalise(value: Any, expected: Any) -> None:
    assert normalise(value) == expected
    hash(normalise(value))


def test_nan_is_one_class() -> None:
    r = measure([{"x": float("nan")}, {"x": float("nan")}], ["x"], k=2)
    assert r.classes == 1 and r.k_min == 2


@pytest.mark.parametrize(
    ("quasi", "kwargs", "message"),
    [
        (["zip", "nope"], {}, "field nope: not in the record"),
        ([], {}, "no quasi-identifier"),
        (["zip", "zip"], {}, "named twice"),
        (["zip"], {"k": 0}, "k must be at least 1"),
        (["zip"], {"sensitive": "nope"}, "field nope: not in the record"),
    ],
)
def test_errors_name_fields_not_values(quasi: list[str], kwargs: Any, message: str) -> None:
    with pytest.raises(RiskError, match=message) as info:
        measure([{"zip": "CANARY-1"}], quasi, **kwargs)
    assert "CANARY" not in str(info.value)


def test_array_paths() -> None:
    rows = [{"orders": [{"sku": "a"}, {"sku": "b"}]}, {"orders": [{"sku": "a"}, {"sku": "b"}]}]
    assert measure(rows, ["orders[].sku"], k=2).k_min == 2
