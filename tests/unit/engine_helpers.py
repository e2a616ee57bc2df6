"""Helpers shared by the engine's unit tests: one-field schemas, keyrings, Avro round trips."""

from __future__ import annotations

import io
from typing import Any

import fastavro

from streamproc.keys import Keyring
from streamproc.policy import Plan, compile_plan

KEYRING = Keyring.generate(names=("default", "quarantine", "hr"))


def one_field(
    avro_type: Any, annotation: Any, *, extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A record schema with field ``v`` (annotated) plus a kept string ``sid``."""
    fields: list[dict[str, Any]] = [
        {"name": "sid", "type": "string", "privacy": {"action": "keep"}},
        {"name": "v", "type": avro_type, **({"privacy": annotation} if annotation else {})},
    ]
    return {"type": "record", "name": "T", "namespace": "test", "fields": fields + (extra or [])}


def plan_for(avro_type: Any, annotation: Any, **kwargs: Any) -> Plan:
    kwargs.setdefault("keyring", KEYRING)
    keyring = kwargs.pop("keyring")
    return compile_plan(one_field(avro_type, annotation), keyring, **kwargs)


def encode(plan: Plan, record: dict[str, Any]) -> bytes:
    """Bytes of ``record`` under the plan's derived schema (raises if it does not conform)."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, plan.derived_schema, record, strict=True)
    return buf.getvalue()


def roundtrip(plan: Plan, record: dict[str, Any]) -> dict[str, Any]:
    data = encode(plan, record)
    return fastavro.schemaless_reader(io.BytesIO(data), plan.derived_schema)  # type: ignore[return-value]


def source_bytes(plan: Plan, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, plan.source_schema, record)
    return buf.getvalue()
