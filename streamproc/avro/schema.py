"""Avro schema loading: read ``.avsc`` JSON, parse it with fastavro, resolve names.

The policy compiler walks the *JSON* form (it keeps every attribute, including ``privacy``
and ``confluent:tags``); fastavro's parsed form is what codecs use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from streamproc.errors import SchemaError

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
INLINE_LABEL = "<inline schema>"


def read_schema_json(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """``(schema JSON, label)`` from a path or an already-loaded mapping.

    The label (the file path, or ``<inline schema>``) is what errors name.
    """
    if isinstance(source, Mapping):
        return json.loads(json.dumps(source)), INLINE_LABEL
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"schema {path}: cannot be read ({exc.strerror})") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SchemaError(
            f"schema {path}: not valid JSON (line {getattr(exc, 'lineno', '?')})"
        ) from None
    if not isinstance(doc, dict) or doc.get("type") not in ("record", "error"):
        raise SchemaError(f"schema {path}: the top-level type must be a record")
    return doc, str(path)


def parse(schema_json: Mapping[str, Any], label: str = INLINE_LABEL) -> Any:
    """fastavro's parsed form of a schema; :class:`SchemaError` naming ``label`` if invalid."""
    try:
        return fastavro.parse_schema(json.loads(json.dumps(schema_json)))
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
        # Schema parse messages quote schema text only, never record values.
        raise SchemaError(f"schema {label}: invalid Avro schema: {exc}") from None


def fullname(name: str, namespace: str | None) -> str:
    """The Avro full name of ``name`` declared in ``namespace``."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def namespace_of(full: str) -> str | None:
    return full.rsplit(".", 1)[0] if "." in full else None


def json_digest(doc: Any) -> str:
    """SHA-256 (hex) of a JSON document in a canonical serialisation (sorted keys)."""
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


_NOT_DECODING = frozenset({"doc", "aliases", "default", "order", "privacy", "confluent:tags"})


def decoding_shape(schema: Any) -> Any:
    """A schema with every attribute that does not change how bytes decode removed.

    Unlike the Parsing Canonical Form this keeps logical types (they change the decoded
    value). Two schemas with equal shapes decode identically, so a reader can skip fastavro's
    (slower) schema-resolution path.
    """
    if isinstance(schema, list):
        return [decoding_shape(s) for s in schema]
    if isinstance(schema, dict):
        return {
            k: decoding_shape(v)
            for k, v in schema.items()
            if k not in _NOT_DECODING and not k.startswith("__") and k != "streamproc"
        }
    return schema


def same_decoding(a: Any, b: Any) -> bool:
    """True when writer schema ``a`` decodes exactly like reader schema ``b``."""
    return bool(decoding_shape(a) == decoding_shape(b))
