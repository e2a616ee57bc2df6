"""Inputs of the steward's report: the two Avro files, the policy per field, value kinds.

Values are turned into plot-able scalars once (:func:`scalar`): numbers, dates (days since
1970), timestamps (seconds), booleans and text. Nested record fields are addressed by dotted
paths, as in the lineage.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from streamproc.avro.schema import read_schema_json
from streamproc.errors import StreamprocError
from streamproc.policy.compiler import derive_schema

EPOCH = dt.date(1970, 1, 1)
NUMERIC_KINDS = frozenset({"number", "date", "timestamp"})


class ReportError(StreamprocError):
    """The report's inputs are unusable (unreadable file, unknown label field, ...)."""


@dataclass(frozen=True)
class FieldPolicy:
    """What the policy does to one source field."""

    path: str
    output_path: str | None
    action: str
    privacy_class: str | None
    transform: str
    origin: str
    annotation: Mapping[str, Any]


@dataclass(frozen=True)
class Inputs:
    schema_file: str
    fingerprint: str
    fields: tuple[FieldPolicy, ...]
    raw: list[dict[str, Any]]
    sanitized: list[dict[str, Any]]


def load_inputs(schema: Path, raw: Path, sanitized: Path) -> Inputs:
    """The policy of ``schema`` and the records of both container files."""
    return inputs_for(schema, _read(raw), _read(sanitized))


def inputs_for(schema: Path, raw: list[dict[str, Any]], sanitized: list[dict[str, Any]]) -> Inputs:
    """The same from records in memory (``streamproc demo`` reports on its own flow)."""
    plan = derive_schema(schema)
    notes = dict(_annotations(read_schema_json(schema)[0]))
    fields = tuple(
        FieldPolicy(
            f.source_path,
            f.output_path,
            f.action,
            f.privacy_class,
            f.transform,
            f.origin,
            notes.get(f.source_path, {}),
        )
        for f in plan.lineage
        if f.origin != "container"
    )
    return Inputs(plan.schema_file, plan.fingerprint, fields, raw, sanitized)


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open("rb") as fh:
            return [dict(r) for r in fastavro.reader(fh)]  # type: ignore[arg-type]
    except (OSError, ValueError, EOFError) as exc:
        raise ReportError(
            f"{path}: not a readable Avro container file ({type(exc).__name__})"
        ) from None


def _annotations(schema: Any, prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(dotted field path, privacy annotation) of every field of a record schema."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return
    for f in schema.get("fields", []):
        path = f"{prefix}{f['name']}"
        if isinstance(f.get("privacy"), dict):
            yield path, f["privacy"]
        types = f["type"] if isinstance(f["type"], list) else [f["type"]]
        for t in types:
            yield from _annotations(t, path + ".")


def get_path(record: Mapping[str, Any] | None, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def scalar(value: Any) -> tuple[str, Any]:
    """(kind, plot-able value); kind is number, date, timestamp, bool, text or null."""
    if value is None:
        return "null", None
    if isinstance(value, bool):
        return "bool", "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        return "number", float(value)
    if isinstance(value, dt.datetime):
        return "timestamp", value.timestamp()
    if isinstance(value, dt.date):
        return "date", float((value - EPOCH).days)
    if isinstance(value, bytes):
        return "text", value.hex()
    if isinstance(value, str):
        return "text", value
    return "text", json.dumps(value, sort_keys=True, default=str)


def column(records: list[dict[str, Any]], path: str) -> tuple[str, list[Any]]:
    """The field's values as scalars and their dominant kind (``null`` if all are null)."""
    kinds: dict[str, int] = {}
    values = []
    for rec in records:
        kind, v = scalar(get_path(rec, path))
        values.append(v)
        if kind != "null":
            kinds[kind] = kinds.get(kind, 0) + 1
    kind = max(kinds, key=lambda k: kinds[k]) if kinds else "null"
    if kind in NUMERIC_KINDS:
        values = [v if isinstance(v, float) else None for v in values]
    return kind, values
