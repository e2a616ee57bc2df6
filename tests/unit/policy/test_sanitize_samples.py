"""The pure entry point, the canary test on the sample schemas, pseudonym collisions."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streamproc.policy import compile_plan
from streamproc.transforms.base import FieldContext, Resources, ValueType
from streamproc.transforms.pseudonymize import Pseudonymize
from tests.unit.engine_helpers import KEYRING

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def canary(tag: str, i: int) -> str:
    return f"ZQX{tag}{i:05d}QZ"


def profile(i: int) -> dict[str, Any]:
    return {
        "customer_id": canary("cid", i),
        "full_name": canary("name", i),
        "email": f"{canary('mail', i)}@example.com",
        "phone": canary("phone", i),
        "national_id": canary("nid", i),
        "birth_date": dt.date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
        "postcode": canary("pc", i),
        "city": "Leeds",
        "country": "GB",
        "gender": "FEMALE",
        "annual_income": 40_000.0 + i,
        "credit_score": 700,
        "signup_ts": dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        "marketing_opt_in": True,
        "segment": "GOLD",
    }


def claim(i: int) -> dict[str, Any]:
    return {
        "claim_id": uuid.UUID(int=i),
        "patient_id": canary("pid", i),
        "member_email": canary("memail", i),
        "patient": {
            "name": canary("pname", i),
            "date_of_birth": dt.date(1980, 5, 17),
            "address": {
                "street": canary("street", i),
                "city": "York",
                "postcode": canary("ppc", i),
            },
            "phone_numbers": [canary("tel", i), canary("tel2", i)],
        },
        "provider": {"npi": canary("npi", i), "name": "Dr Who", "specialty": "GP"},
        "billing_address": {
            "street": canary("bstreet", i),
            "city": "York",
            "postcode": canary("bpc", i),
        },
        "submitted_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
        "lines": [
            {
                "line_no": 1,
                "procedure_code": "99213",
                "diagnosis_codes": [canary("dx", i)],
                "service_date": dt.date(2024, 2, 1),
                "amount": decimal.Decimal("10.00"),
                "notes": canary("note", i),
            }
        ],
        "total_amount": decimal.Decimal("10.00"),
        "status": "PAID",
        "adjuster_notes": {"a": canary("adj", i)},
        "risk_score": 0.5,
    }


def sanitized_batch(plan: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sanitize a batch; under record-level k, generalize the ladder fields over the batch."""
    outs = [plan.sanitize(r) for r in records]
    spec = plan.anonymity
    if spec is None:
        return outs
    res = spec.anonymize([spec.quasi(r) for r in records], [spec.sensitive_values(o) for o in outs])
    return [spec.fill(o, v) for o, v in zip(outs, res.values, strict=True)]


def test_canaries_never_reach_the_output_bytes() -> None:
    for schema, make in (("customer_profile.avsc", profile), ("claims.avsc", claim)):
        plan = compile_plan(SCHEMAS / schema, KEYRING)
        records = [make(i) for i in range(300)]
        buf = io.BytesIO()
        fastavro.writer(buf, plan.derived_schema, sanitized_batch(plan, records))
        blob = buf.getvalue()
        text = blob + repr(sanitized_batch(plan, records)).encode()
        # The raw records do carry canaries, so the scan below can fail.
        assert "ZQX" in repr(records)
        for i in range(300):
            for tag in (
                "cid",
                "name",
                "mail",
                "phone",
                "nid",
                "pc",
                "pid",
                "memail",
                "pname",
                "street",
                "ppc",
                "tel",
                "tel2",
                "npi",
                "bstreet",
                "bpc",
                "dx",
                "note",
                "adj",
            ):
                token = canary(tag, i).encode()
                assert token not in text
                assert base64.b64encode(token)[:12] not in text


def test_sanitize_is_plan_sanitize_and_pure() -> None:
    plan = compile_plan(SCHEMAS / "customer_profile.avsc", KEYRING)
    rec = profile(1)
    before = dict(rec)
    a = plan.sanitize(rec)
    assert rec == before
    b = plan.sanitize(rec)
    assert {k: v for k, v in a.items() if k != "annual_income"} == {
        k: v for k, v in b.items() if k != "annual_income"
    }


@pytest.mark.slow
def test_pseudonyms_collision_free_over_a_million_inputs() -> None:
    ctx = FieldContext("<test>", "id")
    vtype = ValueType("string", None, "string")
    fn = Pseudonymize(key="default", domain="customer").bind(vtype, ctx, Resources(keyring=KEYRING))
    start = time.perf_counter()
    out = {fn(str(i)) for i in range(1_000_000)}
    assert len(out) == 1_000_000
    assert time.perf_counter() - start < 60
