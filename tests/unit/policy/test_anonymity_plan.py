"""Record-level k-anonymity in the compiled plan: load-time errors, derived types, two steps."""

from __future__ import annotations

import copy
import datetime as dt
import io
import pickle
from typing import Any

import fastavro
import pytest

from streamproc.errors import PolicyError
from streamproc.keys import Keyring
from streamproc.policy import compile_plan, derive_schema
from streamproc.policy.anonymity import PENDING

KEYRING = Keyring.generate()
CANARY = "ZQX-canary-9137"


def schema(**over: Any) -> dict[str, Any]:
    """A record with a k bound and one ladder per kind; ``over`` replaces fields by name."""
    fields: dict[str, dict[str, Any]] = {
        "age": {
            "name": "age",
            "type": "int",
            "privacy": {"class": "quasi", "action": "generalize", "bucket": [5, 10, 50]},
        },
        "born": {
            "name": "born",
            "type": {"type": "int", "logicalType": "date"},
            "privacy": {"class": "quasi", "action": "generalize", "to": ["month", "year"]},
        },
        "zip": {
            "name": "zip",
            "type": "string",
            "privacy": {"class": "quasi", "action": "generalize", "prefix": [3, 2]},
        },
        "city": {
            "name": "city",
            "type": "string",
            "privacy": {
                "class": "quasi",
                "action": "generalize",
                "levels": [{"Berlin": "DE", "Bonn": "DE", "Paris": "FR"}],
            },
        },
        "diag": {
            "name": "diag",
            "type": "string",
            "privacy": {"class": "sensitive", "action": "keep"},
        },
    }
    for name, f in over.items():
        if f is None:
            fields.pop(name)
        else:
            fields[name] = f
    return {
        "type": "record",
        "name": "Patient",
        "namespace": "ns",
        "privacy": {"k": 2, "l": 2, "sensitive": ["diag"]},
        "fields": list(fields.values()),
    }


def record(i: int = 0) -> dict[str, Any]:
    return {
        "age": 30 + i,
        "born": dt.date(1990, 1 + i % 12, 3),
        "zip": f"101{i:02d}",
        "city": ("Berlin", "Bonn", "Paris")[i % 3],
        "diag": f"d{i % 3}",
    }


def test_derived_schema_has_nullable_ranges_and_strings_with_their_class() -> None:
    plan = derive_schema(schema())
    by_name = {f["name"]: f for f in plan.derived_schema_json["fields"]}
    assert by_name["age"]["type"] == [
        "null",
        {
            "type": "record",
            "name": "age_range",
            "fields": [{"name": "lo", "type": "long"}, {"name": "hi", "type": "long"}],
        },
    ]
    date = {"type": "int", "logicalType": "date"}
    assert by_name["born"]["type"][1]["fields"] == [
        {"name": "lo", "type": date},
        {"name": "hi", "type": date},
    ]
    assert by_name["zip"]["type"] == ["null", "string"]
    assert by_name["city"]["type"] == ["null", "string"]
    for name in ("age", "born", "zip", "city"):
        assert by_name[name]["streamproc"] == {"action": "generalize", "class": "quasi"}
    assert by_name["diag"]["type"] == "string"
    spec = plan.anonymity
    assert spec is not None
    assert spec.fields == ("age", "born", "zip", "city")
    assert (spec.k, spec.l, spec.sensitive) == (2, 2, ("diag",))
    transforms = {f.source_path: f.transform for f in plan.lineage}
    assert transforms["age"] == "generalize(bucket=[5,10,50])"
    assert transforms["city"] == "generalize(levels=1)"


def test_new_date_units_and_a_prefix_alphabet_compile_and_show_in_lineage() -> None:
    """``schema derive`` shows the units and the alphabet's size; the output type is unchanged."""
    born = {
        "name": "born",
        "type": {"type": "int", "logicalType": "date"},
        "privacy": {"class": "quasi", "action": "generalize", "to": ["quarter", "year", "5y"]},
    }
    zip_ = {
        "name": "zip",
        "type": "string",
        "privacy": {
            "class": "quasi",
            "action": "generalize",
            "prefix": [3, 2],
            "alphabet": "0123456789",
        },
    }
    plan = derive_schema(schema(born=born, zip=zip_))
    transforms = {f.source_path: f.transform for f in plan.lineage}
    assert transforms["born"] == "generalize(to=[quarter,year,5y])"
    assert transforms["zip"] == "generalize(prefix=[3,2],alphabet=10)"
    base = derive_schema(schema()).derived_schema_json["fields"]
    types = {f["name"]: f["type"] for f in plan.derived_schema_json["fields"]}
    assert types == {f["name"]: f["type"] for f in base}  # {lo, hi} and strings, as before


def test_sanitize_leaves_pending_which_does_not_encode_until_filled() -> None:
    plan = compile_plan(schema(), KEYRING)
    spec = plan.anonymity
    assert spec is not None
    rows = [record(i) for i in range(6)]
    outs = [plan.sanitize(r) for r in rows]
    assert all(o[name] is PENDING for o in outs for name in spec.fields)
    with pytest.raises(ValueError):  # skipping the anonymizer cannot leak a raw value
        fastavro.schemaless_writer(io.BytesIO(), plan.derived_schema, outs[0])
    assert spec.quasi(rows[0]) == (30, dt.date(1990, 1, 3), "10100", "Berlin")
    assert spec.sensitive_values(outs[0]) == ("d0",)
    res = spec.anonymize([spec.quasi(r) for r in rows], [spec.sensitive_values(o) for o in outs])
    for o, values in zip(outs, res.values, strict=True):
        filled = spec.fill(o, values)
        fastavro.schemaless_writer(io.BytesIO(), plan.derived_schema, filled)
        assert o["age"] is PENDING  # fill copies
    fastavro.schemaless_writer(io.BytesIO(), plan.derived_schema, spec.suppressed(outs[0]))
    assert pickle.loads(pickle.dumps(PENDING)) is PENDING


def test_stream_factory_uses_the_declared_bound() -> None:
    spec = compile_plan(schema(), KEYRING).anonymity
    assert spec is not None
    s = spec.stream()
    for i in range(4):
        r = record(i)
        s.add(i, spec.quasi(r), (r["diag"],), arrival_ms=i)
    released = s.flush(10)
    assert sorted(int(str(r.item_id)) for r in released) == [0, 1, 2, 3]


def test_fixed_generalize_is_unchanged_without_a_bound() -> None:
    doc = schema()
    doc.pop("privacy")
    doc["fields"] = [
        {
            "name": "born",
            "type": {"type": "int", "logicalType": "date"},
            "privacy": {"class": "quasi", "action": "generalize", "to": "year"},
        },
        {
            "name": "zip",
            "type": "string",
            "privacy": {"class": "quasi", "action": "generalize", "prefix": 3},
        },
    ]
    plan = compile_plan(doc, KEYRING)
    assert plan.anonymity is None
    by_name = {f["name"]: f for f in plan.derived_schema_json["fields"]}
    assert by_name["born"]["type"] == {"type": "int", "logicalType": "date"}
    assert by_name["zip"]["type"] == "string"
    out = plan.sanitize({"born": dt.date(1990, 5, 3), "zip": "10115"})
    assert out == {"born": dt.date(1990, 1, 1), "zip": "101"}


def _no_bound() -> dict[str, Any]:
    doc = schema()
    doc.pop("privacy")
    return doc


def _nested() -> dict[str, Any]:
    inner = {
        "type": "record",
        "name": "Addr",
        "fields": [
            {
                "name": "zip",
                "type": "string",
                "privacy": {"class": "quasi", "action": "generalize", "prefix": [3, 2]},
            }
        ],
    }
    return schema(home={"name": "home", "type": inner})


def _bound_on_nested() -> dict[str, Any]:
    inner = {
        "type": "record",
        "name": "Addr",
        "privacy": {"k": 3},
        "fields": [{"name": "n", "type": "string", "privacy": {"action": "keep"}}],
    }
    return schema(home={"name": "home", "type": inner})


def _with(**over: Any) -> dict[str, Any]:
    return schema(**over)


def _bound(**privacy: Any) -> dict[str, Any]:
    doc = schema()
    doc["privacy"] = privacy
    return doc


KEEP_QUASI = {"name": "sex", "type": "string", "privacy": {"class": "quasi", "action": "keep"}}
FIXED_QUASI = {
    "name": "sex",
    "type": "string",
    "privacy": {"class": "quasi", "action": "generalize", "prefix": 1},
}
LADDER_PUBLIC = {
    "name": "sex",
    "type": "string",
    "privacy": {"class": "public", "action": "generalize", "prefix": [2, 1]},
}
BAD_BUCKET = {
    "name": "age",
    "type": "int",
    "privacy": {"class": "quasi", "action": "generalize", "bucket": [5, 7]},
}
ALL_LADDERS = {"age": None, "born": None, "zip": None, "city": None}

ERRORS = [
    (_no_bound(), "field age: a generalize ladder needs a record-level bound"),
    (_with(**ALL_LADDERS), "record ns.Patient: privacy 'k' needs at least one quasi field"),
    (_nested(), "field home.zip: a generalize ladder is only supported on a top-level field"),
    (_bound_on_nested(), "record ns.Addr: a k-anonymity bound ('k') is only allowed on the top"),
    (_with(sex=KEEP_QUASI), "field sex: under a record-level k every quasi field that is kept"),
    (_with(sex=FIXED_QUASI), "field sex: under a record-level k every quasi field that is kept"),
    (_with(sex=LADDER_PUBLIC), 'field sex: a generalize ladder needs "class": "quasi"'),
    (_with(age=BAD_BUCKET), "field age: 'bucket' widths must grow"),
    (_bound(k=2, sensitive=["nope"]), "field nope: privacy 'sensitive' must name a top-level"),
    (_bound(k=2, sensitive=["age"]), "field age: a privacy 'sensitive' field cannot be a quasi"),
    (_bound(k=1), "record ns.Patient: privacy 'k' must be an integer >= 2"),
    (_bound(k=2, kk=3), "'privacy' on a record only takes"),
]


@pytest.mark.parametrize(("doc", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_load_errors_name_schema_and_path_never_values(doc: dict[str, Any], message: str) -> None:
    doc = copy.deepcopy(doc)
    # A canary in every string the annotation could echo (category names are schema text,
    # but an error has no business repeating them either).
    for f in doc["fields"]:
        ann = f.get("privacy", {})
        if "levels" in ann:
            ann["levels"] = [{CANARY: "DE", "Bonn": "DE", "Paris": "FR"}]
    for bind in (True, False):
        with pytest.raises(PolicyError) as info:
            if bind:
                compile_plan(doc, KEYRING, tag_actions=None)
            else:
                derive_schema(doc)
        text = str(info.value)
        assert text.startswith("schema <") or text.startswith("schema ")
        assert message in text
        assert CANARY not in text
