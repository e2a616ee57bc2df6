"""Policy compilation: fail-closed errors, derived schema, tags, lineage, fingerprints."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streamproc.errors import PolicyError, SchemaError, TransformError, UnannotatedFieldError
from streamproc.keys import Keyring
from streamproc.policy import compile_plan, derive_schema
from tests.unit.engine_helpers import KEYRING, encode, one_field, plan_for

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
REC = {
    "type": "record",
    "name": "Inner",
    "fields": [{"name": "a", "type": "string", "privacy": {"action": "keep"}}],
}


@pytest.mark.parametrize(
    ("avro_type", "annotation", "message"),
    [
        ("string", {"action": "scramble"}, "unknown action 'scramble'"),
        ("string", {"action": "mask", "keep_frist": 1}, "unknown parameter"),
        ("string", {"action": "mask", "keep_first": -1}, "'keep_first' must be >= 0"),
        ("string", {"action": "mask", "keep_first": "1"}, "must be an integer"),
        ("string", {"action": "generalize", "bucket": 10}, "'bucket' does not fit type string"),
        ("int", {"action": "generalize", "prefix": 2}, "'prefix' does not fit type int"),
        ("int", {"action": "generalize", "bucket": 2.5}, "must be an integer"),
        ({"type": "int", "logicalType": "date"}, {"action": "generalize", "to": "hour"}, "hour"),
        ("int", {"action": "mask"}, "does not fit type int"),
        ("boolean", {"action": "pseudonymize"}, "does not fit type boolean"),
        ("string", {"action": "noise", "epsilon": 1, "sensitivity": 1}, "does not fit"),
        ("double", {"action": "noise", "epsilon": 0, "sensitivity": 1}, "'epsilon'"),
        ("double", {"action": "noise", "epsilon": 1}, "'sensitivity' is required"),
        (
            "double",
            {"action": "noise", "mechanism": "gaussian", "epsilon": 1, "sensitivity": 1},
            "delta",
        ),
        ("double", {"action": "noise", "epsilon": 1, "sensitivity": 1, "clamp": [5, 1]}, "clamp"),
        ("string", {"action": "encrypt"}, "'mode' is required"),
        ("string", {"action": "encrypt", "mode": "ecb"}, "'mode' must be one of"),
        ("string", {"action": "pseudonymize", "key": "nokey"}, "key 'nokey' is not in the keyring"),
        ("string", {"action": "redact", "with": 5}, "'with' literal does not fit"),
        (
            {"type": "int", "logicalType": "date"},
            {"action": "date_shift", "max_days": 5, "subject": "ghost"},
            "subject field 'ghost'",
        ),
        ("string", {"action": "keep", "class": "secret"}, "unknown privacy class"),
        ("string", {"action": "drop", "extra": 1}, "unknown parameter"),
        (["null", "string", "int"], {"action": "mask"}, "union of several types"),
        (REC, {"action": "keep"}, "only 'drop' is allowed"),
        ({"type": "array", "items": REC}, {"action": "redact"}, "only 'drop' is allowed"),
        ("string", 42, "must be an object"),
    ],
)
def test_policy_errors_name_schema_and_field(avro_type: Any, annotation: Any, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        plan_for(avro_type, annotation)
    text = str(info.value)
    assert message in text
    assert "schema <inline schema>" in text and "field v" in text


def test_error_names_the_schema_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.avsc"
    path.write_text(json.dumps(one_field("string", {"action": "bogus"})))
    with pytest.raises(PolicyError, match=r"bad\.avsc: field v"):
        compile_plan(path, KEYRING)


@pytest.mark.parametrize(
    "text",
    [
        "{",
        '{"type": "string"}',
        '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nosuch"}]}',
    ],
)
def test_invalid_schema_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.avsc"
    path.write_text(text)
    with pytest.raises(SchemaError, match=r"x\.avsc"):
        compile_plan(path, KEYRING)


def test_missing_keyring_is_a_policy_error_at_load() -> None:
    with pytest.raises(PolicyError, match="no keyring"):
        plan_for("string", {"action": "pseudonymize"}, keyring=None)


def test_unannotated_fields_are_dropped_or_refused_in_strict_mode() -> None:
    schema = one_field("string", None)
    plan = compile_plan(schema, KEYRING)
    assert [f["name"] for f in plan.derived_schema_json["fields"]] == ["sid"]
    assert plan.sanitize({"sid": "s", "v": "secret"}) == {"sid": "s"}
    (item,) = [i for i in plan.lineage if i.source_path == "v"]
    assert item.output_path is None and item.origin == "unannotated"
    with pytest.raises(UnannotatedFieldError, match="field v: no privacy annotation"):
        compile_plan(schema, KEYRING, strict=True)


def test_nested_unannotated_field_dropped_and_strict_names_its_path() -> None:
    inner = {
        "type": "record",
        "name": "In",
        "fields": [
            {"name": "x", "type": "string"},
            {"name": "y", "type": "string", "privacy": {"action": "keep"}},
        ],
    }
    schema = one_field({"type": "array", "items": inner}, None)
    plan = compile_plan(schema, KEYRING)
    assert plan.sanitize({"sid": "s", "v": [{"x": "secret", "y": "ok"}]})["v"] == [{"y": "ok"}]
    with pytest.raises(UnannotatedFieldError, match=r"field v\[\]\.x"):
        compile_plan(schema, KEYRING, strict=True)


def test_derived_schema_of_customer_profile() -> None:
    plan = compile_plan(SCHEMAS / "customer_profile.avsc", KEYRING)
    derived = plan.derived_schema_json
    names = [f["name"] for f in derived["fields"]]
    assert "full_name" not in names and "phone" not in names and "credit_score" not in names
    by_name = {f["name"]: f for f in derived["fields"]}
    assert by_name["customer_id"]["type"] == "string"
    assert "pseudonymize" in by_name["customer_id"]["doc"]
    assert by_name["customer_id"]["streamproc"] == {"action": "pseudonymize", "class": "direct"}
    # k = 5 on the record: the ladder fields become nullable {lo, hi} records / strings.
    date = {"type": "int", "logicalType": "date"}
    assert by_name["birth_date"]["type"] == [
        "null",
        {
            "type": "record",
            "name": "birth_date_range",
            "fields": [{"name": "lo", "type": date}, {"name": "hi", "type": date}],
        },
    ]
    for name in ("postcode", "city", "gender"):
        assert by_name[name]["type"] == ["null", "string"]
    assert by_name["gender"]["streamproc"] == {"action": "generalize", "class": "quasi"}
    assert plan.anonymity is not None
    assert plan.anonymity.fields == ("birth_date", "postcode", "city", "gender")
    assert "privacy" not in json.dumps(derived)
    assert derived["streamproc"]["policy_fingerprint"] == plan.fingerprint
    assert plan.key_versions == {"default": 1}
    assert len(plan.transformed) == 8 and len(plan.dropped) == 3


def test_derive_without_keyring_gives_the_same_schema() -> None:
    path = SCHEMAS / "claims.avsc"
    assert (
        derive_schema(path).derived_schema_json == compile_plan(path, KEYRING).derived_schema_json
    )
    with pytest.raises(PolicyError, match="without binding"):
        derive_schema(path).sanitize({})


def test_fingerprint_is_stable_and_tracks_the_policy_not_the_keys() -> None:
    path = SCHEMAS / "customer_profile.avsc"
    a = compile_plan(path, KEYRING).fingerprint
    other = Keyring.generate()
    other.rotate("default")
    b = compile_plan(path, other)
    assert a == b.fingerprint and b.key_versions == {"default": 2}
    doc = json.loads(path.read_text())
    doc["fields"][2]["privacy"]["keep_first"] = 2
    assert compile_plan(doc, KEYRING).fingerprint != a
    assert (
        compile_plan(path, KEYRING, strict=False).fingerprint
        != compile_plan(
            json.loads(path.read_text()), KEYRING, tag_actions={"PII": "drop"}
        ).fingerprint
    )


def test_confluent_tags_map_to_actions() -> None:
    schema = {
        "type": "record",
        "name": "T",
        "fields": [
            {"name": "email", "type": "string", "confluent:tags": ["PII"]},
            {"name": "ssn", "type": "string", "confluent:tags": ["PII", "SENSITIVE"]},
            {"name": "note", "type": "string", "confluent:tags": ["UNMAPPED"]},
            {
                "name": "own",
                "type": "string",
                "confluent:tags": ["PII"],
                "privacy": {"action": "keep"},
            },
        ],
    }
    tags = {
        "PII": {"class": "direct", "action": "mask", "keep_first": 1},
        "SENSITIVE": {"class": "direct", "action": "mask", "keep_first": 1},
    }
    plan = compile_plan(schema, KEYRING, tag_actions=tags)
    out = plan.sanitize({"email": "ann@x.io", "ssn": "123", "note": "n", "own": "kept"})
    assert out == {"email": "a**@*.**", "ssn": "1**", "own": "kept"}  # explicit wins
    origins = {i.source_path: i.origin for i in plan.lineage}
    assert origins["email"] == "tag:PII" and origins["note"] == "unannotated"
    # record-level tag table overrides the topology's
    schema2 = copy.deepcopy(schema)
    schema2["privacy"] = {"tags": {"PII": "drop", "SENSITIVE": "drop"}}
    out2 = compile_plan(schema2, KEYRING, tag_actions=tags).sanitize(
        {"email": "ann@x.io", "ssn": "123", "note": "n", "own": "kept"}
    )
    assert out2 == {"own": "kept"}
    with pytest.raises(PolicyError, match="map to different actions"):
        compile_plan(schema, KEYRING, tag_actions={"PII": "drop", "SENSITIVE": "keep"})


def test_claims_nested_record_sanitizes_and_encodes(claims_record: dict[str, Any]) -> None:
    plan = compile_plan(SCHEMAS / "claims.avsc", KEYRING)
    original = copy.deepcopy(claims_record)
    out = plan.sanitize(claims_record)
    assert claims_record == original  # pure: the input is untouched
    encode(plan, out)
    assert "name" not in out["patient"]
    assert "street" not in out["patient"]["address"]
    assert out["patient"]["address"]["postcode"] == "LS1****"
    assert out["lines"][0]["diagnosis_codes"] == ["E11", "I10"]
    assert out["lines"][0]["notes"] is None
    assert out["patient_id"].startswith("ps1:")
    assert out["member_email"].startswith("ps1:")  # via the record's PII tag table
    assert out["billing_address"] is None
    assert out["adjuster_notes"]["adjuster"].startswith("enc:r:")
    # service date and submission move by the same per-patient offset
    shift = out["submitted_at"] - claims_record["submitted_at"]
    assert out["lines"][0]["service_date"] - claims_record["lines"][0]["service_date"] == shift


def test_named_type_reused_in_two_fields_is_defined_once(claims_record: dict[str, Any]) -> None:
    plan = compile_plan(SCHEMAS / "claims.avsc", KEYRING)
    text = json.dumps(plan.derived_schema_json)
    assert text.count('"name": "com.example.claims.Address"') == 1
    claims_record["billing_address"] = {"street": "x", "city": "York", "postcode": "YO1 7HH"}
    out = plan.sanitize(claims_record)
    assert out["billing_address"] == {"city": "York", "postcode": "YO1****"}
    encode(plan, out)


def test_transform_error_names_the_nested_path_only(claims_record: dict[str, Any]) -> None:
    plan = compile_plan(SCHEMAS / "claims.avsc", KEYRING)
    claims_record["lines"][0]["amount"] = "SECRET-123"
    with pytest.raises(TransformError) as info:
        plan.sanitize(claims_record)
    assert "field lines[].amount" in str(info.value)
    assert "SECRET-123" not in str(info.value)
    del claims_record["lines"]
    with pytest.raises(TransformError, match="field lines: missing"):
        plan.sanitize(claims_record)
    with pytest.raises(TransformError, match="not a record"):
        plan.sanitize("not a dict")  # type: ignore[arg-type]


def test_recursive_types_are_refused() -> None:
    schema = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "v", "type": "int", "privacy": {"action": "keep"}},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    with pytest.raises(PolicyError, match="recursive"):
        compile_plan(schema, KEYRING)
    schema["fields"][1]["privacy"] = {"action": "drop"}
    assert compile_plan(schema, KEYRING).sanitize({"v": 1, "next": None}) == {"v": 1}


def test_all_kept_record_passes_through_without_rebuild() -> None:
    schema = {
        "type": "record",
        "name": "K",
        "fields": [
            {"name": "a", "type": "string", "privacy": {"action": "keep"}},
            {
                "name": "b",
                "type": {
                    "type": "record",
                    "name": "B",
                    "fields": [{"name": "c", "type": "long", "privacy": "keep"}],
                },
            },
        ],
    }
    plan = compile_plan(schema, KEYRING)
    rec = {"a": "x", "b": {"c": 1}}
    out = plan.sanitize(rec)
    assert out == rec and out is not rec


def test_older_writer_schema_resolves_then_sanitizes() -> None:
    plan = compile_plan(SCHEMAS / "customer_profile.avsc", KEYRING)
    v1 = fastavro.parse_schema(json.loads((SCHEMAS / "customer_profile.v1.avsc").read_text()))
    rec = {
        "customer_id": "C1",
        "full_name": "Ann",
        "email": "a@b.c",
        "phone": None,
        "national_id": "X1",
        "birth_date": dt.date(1990, 2, 3),
        "postcode": "AB1 2CD",
        "city": "Leeds",
        "country": "GB",
        "gender": "FEMALE",
        "annual_income": 1.0,
        "credit_score": 700,
        "signup_ts": dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v1, rec)
    buf.seek(0)
    resolved = fastavro.schemaless_reader(buf, v1, plan.source_schema)
    out = plan.sanitize(resolved)  # type: ignore[arg-type]
    assert out["segment"] is None and out["marketing_opt_in"] is False
    assert plan.anonymity is not None  # ladder fields wait for the anonymizer: suppress them
    encode(plan, plan.anonymity.suppressed(out))


def test_plan_repr_is_short_and_value_free() -> None:
    plan = plan_for("string", {"action": "pseudonymize"})
    assert "Plan(schema_file='<inline schema>'" in repr(plan)
    assert len(repr(plan)) < 300
