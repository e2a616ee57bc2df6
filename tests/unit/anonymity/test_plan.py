"""plan_for_schema: the hook the compiler, sanitize and the worker call."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from streamproc.anonymity import KeepLadder, anonymize, plan_for_schema
from streamproc.errors import PolicyError

DATE = {"type": "int", "logicalType": "date"}


def schema(**bound: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Patient",
        "privacy": {"tags": {"pii": "drop"}, **bound},
        "fields": [
            {"name": "id", "type": "string", "privacy": {"class": "direct", "action": "drop"}},
            {
                "name": "age",
                "type": "int",
                "privacy": {"class": "quasi", "action": "generalize", "bucket": [5, 10]},
            },
            {"name": "sex", "type": "string", "privacy": {"class": "quasi", "action": "keep"}},
            {
                "name": "home",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "Home",
                        "fields": [
                            {
                                "name": "postcode",
                                "type": "string",
                                "privacy": {
                                    "class": "quasi",
                                    "action": "generalize",
                                    "prefix": [3, 1],
                                },
                            }
                        ],
                    },
                ],
            },
            {"name": "dx", "type": "string", "privacy": {"class": "sensitive", "action": "keep"}},
        ],
    }


def test_plan_reads_bound_ladders_and_plain_quasi_fields() -> None:
    plan = plan_for_schema(schema(k=2, l=2, sensitive=["dx"]), schema_file="p.avsc")
    assert plan is not None
    assert plan.paths == ("age", "sex", "home.postcode")
    assert [q.laddered for q in plan.quasi] == [True, False, True]
    assert isinstance(plan.ladders[1], KeepLadder)
    rec = {"id": "x", "age": 41, "sex": "F", "home": {"postcode": "10115"}, "dx": "J45"}
    assert plan.qi(rec) == (41, "F", "10115") and plan.sensitive(rec) == ("J45",)
    before = copy.deepcopy(rec)
    out = plan.apply(rec, ({"lo": 40, "hi": 45}, None, "101"))
    assert out["age"] == {"lo": 40, "hi": 45} and out["sex"] is None
    assert out["home"] == {"postcode": "101"} and rec == before  # the input is not changed
    assert plan.apply({**rec, "home": None}, (None, None, "1"))["home"] is None


def test_no_bound_no_plan() -> None:
    assert plan_for_schema(schema(), schema_file="p.avsc") is None


def test_end_to_end_through_the_batch_engine() -> None:
    plan = plan_for_schema(schema(k=2), schema_file="p.avsc")
    assert plan is not None
    recs = [
        {"age": 41, "sex": "F", "home": {"postcode": "10115"}},
        {"age": 43, "sex": "F", "home": {"postcode": "10117"}},
        {"age": 88, "sex": "M", "home": {"postcode": "75001"}},
    ]
    res = anonymize([plan.qi(r) for r in recs], plan.ladders, k=plan.spec.k)
    outs = [plan.apply(r, v) for r, v in zip(recs, res.values, strict=True)]
    assert (
        outs[0] == outs[1] == {"age": {"lo": 40, "hi": 45}, "sex": "F", "home": {"postcode": "101"}}
    )
    assert outs[2] == {"age": None, "sex": None, "home": {"postcode": None}}


@pytest.mark.parametrize(
    ("bound", "fragment"),
    [
        ({"k": 2, "sensitive": ["nope"]}, "sensitive field nope is not a field"),
        ({"k": 2, "sensitive": ["age"]}, "both quasi and sensitive"),
        ({"k": 1}, "'k' must be an integer >= 2"),
    ],
)
def test_refusals_name_paths(bound: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PolicyError) as info:
        plan_for_schema(schema(**bound), schema_file="p.avsc")
    assert "schema p.avsc" in str(info.value) and fragment in str(info.value)


def test_quasi_inside_an_array_is_refused() -> None:
    s = schema(k=2)
    item = {
        "type": "record",
        "name": "Visit",
        "fields": [{"name": "when", "type": DATE, "privacy": {"class": "quasi", "action": "keep"}}],
    }
    s["fields"].append({"name": "visits", "type": {"type": "array", "items": item}})
    with pytest.raises(PolicyError) as info:
        plan_for_schema(s, schema_file="p.avsc")
    assert "field visits[].when" in str(info.value)


def test_a_bad_ladder_names_the_nested_path() -> None:
    s = schema(k=2)
    s["fields"][3]["type"][1]["fields"][0]["privacy"]["prefix"] = [1, 3]
    with pytest.raises(PolicyError) as info:
        plan_for_schema(s, schema_file="p.avsc")
    assert "schema p.avsc: field home.postcode" in str(info.value)
