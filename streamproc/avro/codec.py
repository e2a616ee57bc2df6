"""Bounded Avro decoding with writer-schema lookup, and framed encoding.

bytes -> (size bound) -> frame -> writer schema (fingerprint table or registry, cached)
      -> (compiled bounds scan) -> fastavro decode resolved to the reader schema -> dict

Every failure is a :class:`~streamproc.errors.DecodeError` subclass with a ``reason`` for the
dead-letter topic; no message contains payload bytes or decoded values.
"""

from __future__ import annotations

import decimal
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from struct import error as struct_error
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from streamproc.avro.bounds import Limits, compile_bounds
from streamproc.avro.framing import (
    SINGLE_OBJECT_MAGIC,
    Frame,
    crc64_fingerprint,
    frame_confluent,
    frame_single_object,
    parse_frame,
)
from streamproc.errors import (
    DecodeError,
    EncodeError,
    IncompatibleSchemaError,
    OversizeError,
    UnknownSchemaError,
)


@dataclass(frozen=True)
class WriterSchema:
    """A writer schema as the decoder uses it: parsed once, with its bounds checker."""

    parsed: Any
    fingerprint: int
    check: Callable[[bytes], None] | None
    resolve: bool  # False when writer == reader (no resolution step needed)


class WriterSchemas:
    """Finds the writer schema of a frame: by fingerprint among local schemas (single-object
    encoding) or by id through a Confluent Schema Registry client (cached)."""

    def __init__(
        self,
        reader: Any,
        local: Iterable[Any] = (),
        *,
        registry: Any | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.reader = reader
        self.reader_fingerprint = crc64_fingerprint(reader)
        self.limits = limits or Limits()
        self.registry = registry
        self._by_fp: dict[int, WriterSchema] = {}
        self._by_id: dict[int, WriterSchema] = {}
        for parsed in (reader, *local):
            ws = self._entry(parsed)
            self._by_fp.setdefault(ws.fingerprint, ws)

    def _entry(self, parsed: Any) -> WriterSchema:
        fp = crc64_fingerprint(parsed)
        return WriterSchema(
            parsed=parsed,
            fingerprint=fp,
            check=compile_bounds(parsed, self.limits),
            resolve=fp != self.reader_fingerprint,
        )

    def lookup(self, frame: Frame) -> WriterSchema:
        if frame.kind == "single-object":
            ws = self._by_fp.get(frame.schema_ref)
            if ws is None:
                raise UnknownSchemaError(
                    f"no known writer schema has fingerprint {frame.schema_ref:016x}"
                )
            return ws
        ws = self._by_id.get(frame.schema_ref)
        if ws is not None:
            return ws
        if self.registry is None:
            raise UnknownSchemaError(
                f"Confluent-framed record (schema id {frame.schema_ref}) but no registry is set"
            )
        try:
            schema = self.registry.get_schema(frame.schema_ref)
        except Exception:
            raise UnknownSchemaError(
                f"schema id {frame.schema_ref} is not in the registry"
            ) from None
        if getattr(schema, "schema_type", "AVRO") not in (None, "AVRO"):
            raise UnknownSchemaError(f"schema id {frame.schema_ref} is not an Avro schema")
        try:
            parsed = parse_schema(json.loads(schema.schema_str))
        except Exception:
            raise UnknownSchemaError(
                f"schema id {frame.schema_ref} does not parse as Avro"
            ) from None
        ws = self._by_fp.get(crc64_fingerprint(parsed)) or self._entry(parsed)
        self._by_id[frame.schema_ref] = ws
        return ws


class Decoder:
    """Decodes framed payloads into records of the reader schema, within bounds."""

    # Framing headers already resolved to a writer schema (a header's bytes decide its frame
    # and schema for good: lookups are cached); at most this many, the rest looked up anew.
    KNOWN_HEADERS = 64

    def __init__(self, schemas: WriterSchemas, framing: str = "auto") -> None:
        self.schemas = schemas
        self.framing = framing
        self.max_bytes = schemas.limits.max_record_bytes
        self._known: dict[bytes, tuple[WriterSchema, int]] = {}

    def decode(self, payload: bytes) -> tuple[dict[str, Any], WriterSchema]:
        if payload is not None and len(payload) > self.max_bytes:
            raise OversizeError(
                f"record of {len(payload)} bytes over the {self.max_bytes} limit",
                reason="oversize_record",
            )
        # The header: 10 bytes of single-object framing, else the 5 of Confluent's.
        head = payload[:10] if payload and payload[:2] == SINGLE_OBJECT_MAGIC else payload[:5]
        known = self._known.get(head) if payload else None
        if known is None:
            frame = parse_frame(payload, self.framing)
            known = (self.schemas.lookup(frame), frame.body_offset)
            if len(self._known) < self.KNOWN_HEADERS and len(head) == frame.body_offset:
                self._known[head] = known
        ws, offset = known
        body = payload[offset:]
        if ws.check is not None:
            ws.check(body)
        buf = io.BytesIO(body)
        try:
            if ws.resolve:
                record = schemaless_reader(buf, ws.parsed, self.schemas.reader)
            else:
                record = schemaless_reader(buf, ws.parsed, None)
        except SchemaResolutionError:
            raise IncompatibleSchemaError(
                f"writer schema {ws.fingerprint:016x} does not resolve to the reader schema"
            ) from None
        except (EOFError, IndexError, struct_error):
            raise DecodeError("payload ends inside a value", reason="truncated") from None
        except (UnicodeDecodeError, ValueError, TypeError, KeyError, OverflowError):
            raise DecodeError("payload is not valid Avro for its writer schema") from None
        except MemoryError:
            raise OversizeError("payload claims more memory than allowed") from None
        if buf.tell() != len(body):
            raise DecodeError("trailing bytes after the record", reason="trailing_bytes")
        if not isinstance(record, dict):
            raise DecodeError("payload is not an Avro record", reason="not_a_record")
        return record, ws


class Encoder:
    """Encodes records with one (derived) schema, framed for the sink."""

    def __init__(self, schema: Any, framing: str = "single-object", schema_id: int | None = None):
        self.schema = schema
        self.framing = framing
        self.fingerprint = crc64_fingerprint(schema)
        if framing == "confluent" and schema_id is None:
            raise ValueError("Confluent framing needs the registered schema id")
        self.schema_id = schema_id

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        try:
            schemaless_writer(buf, self.schema, record)
        except Exception:
            # The slow path, for dead letters only: say which field, never its value.
            path = decimal_overflow_path(self.schema, record)
            if path is not None:
                raise EncodeError(
                    f"field {path}: decimal value has more digits than the schema's precision "
                    "or scale allows",
                    reason="decimal_overflow",
                ) from None
            raise EncodeError("sanitized record does not encode with the derived schema") from None
        body = buf.getvalue()
        if self.framing == "confluent":
            assert self.schema_id is not None
            return frame_confluent(self.schema_id, body)
        return frame_single_object(self.fingerprint, body)


def decimal_overflow_path(schema: Any, value: Any) -> str | None:
    """The path of the first decimal in ``value`` that its (parsed) ``schema`` cannot hold:
    more digits than ``precision``, or more decimal places than ``scale``. Avro readers do
    not check precision, so such a value decodes and only fails when written again."""
    named: dict[str, Any] = {}

    def walk(s: Any, v: Any, path: str) -> str | None:
        if isinstance(s, str):
            s = named.get(s, s)
            if isinstance(s, str):
                return None
        if isinstance(s, list):
            for branch in s:
                if branch != "null" and v is not None:
                    found = walk(branch, v, path)
                    if found is not None:
                        return found
            return None
        t = s.get("type")
        if t in ("record", "error"):
            named[s["name"]] = s
            if not isinstance(v, dict):
                return None
            for f in s["fields"]:
                child = f"{path}.{f['name']}" if path else f["name"]
                found = walk(f["type"], v.get(f["name"]), child)
                if found is not None:
                    return found
            return None
        if t in ("enum", "fixed") and "name" in s:
            named[s["name"]] = s
        if t == "array" and isinstance(v, list):
            for item in v:
                found = walk(s["items"], item, path + "[]")
                if found is not None:
                    return found
            return None
        if t == "map" and isinstance(v, dict):
            for item in v.values():
                found = walk(s["values"], item, path + "{}")
                if found is not None:
                    return found
            return None
        if s.get("logicalType") == "decimal" and isinstance(v, decimal.Decimal):
            unscaled = v.scaleb(int(s.get("scale", 0)))
            if not unscaled.is_finite() or unscaled != unscaled.to_integral_value():
                return path
            if len(str(abs(int(unscaled)))) > int(s["precision"]):
                return path
        return None

    return walk(schema, value, "")
