"""Resolve phase: the schema's named types, and what each field's annotation asks for.

Everything here reads the source schema JSON only; nothing is generated or derived.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamproc.anonymity.spec import PrivacySpec, parse_privacy
from streamproc.avro.schema import NAMED, PRIMITIVES, fullname, namespace_of
from streamproc.errors import PolicyError, SchemaError
from streamproc.policy.tags import (
    annotation_from_tags,
    field_tags,
    normalize_annotation,
    normalize_tag_actions,
)
from streamproc.transforms.base import ValueType

PRIVACY_ATTRIBUTE = "privacy"
CLASSES = ("direct", "quasi", "sensitive", "public")
#: Keys a record's own ``privacy`` attribute may carry: tag mappings, and the k-anonymity bound
#: (read by :func:`~streamproc.anonymity.parse_privacy`).
ANONYMITY_KEYS = ("k", "l", "sensitive", "max_delay_ms", "max_suppressed")
RECORD_KEYS = ("tags", *ANONYMITY_KEYS)


def field_error(label: str, path: str, message: str) -> PolicyError:
    """The policy error for a field (or the top record when ``path`` is empty)."""
    return PolicyError(f"schema {label}: field {path or '<top>'}: {message}")


class NamedTypes:
    """Every named type of one schema (full name -> definition), and lookups through them."""

    def __init__(self, doc: Mapping[str, Any], label: str) -> None:
        self.label = label
        self._named: dict[str, dict[str, Any]] = {}
        self._collect(doc, None)

    def __getitem__(self, full: str) -> dict[str, Any]:
        return self._named[full]

    def _collect(self, t: Any, ns: str | None) -> None:
        """Register every named type in document order; a name defined twice is an error."""
        if isinstance(t, list):
            for b in t:
                self._collect(b, ns)
            return
        if not isinstance(t, dict):
            return
        kind = t.get("type")
        if kind in NAMED:
            full = fullname(t["name"], t.get("namespace") or ns)
            if full in self._named:
                raise SchemaError(f"schema {self.label}: type {full} is defined twice")
            self._named[full] = t
            inner_ns = namespace_of(full)
            for f in t.get("fields", ()) if kind in ("record", "error") else ():
                self._collect(f.get("type"), inner_ns)
        elif kind in ("array", "map"):
            self._collect(t.get("items" if kind == "array" else "values"), ns)
        elif isinstance(kind, dict | list):
            self._collect(kind, ns)

    def resolve(self, t: Any, ns: str | None) -> tuple[Any, str | None]:
        """Follow a named-type reference; returns (definition or inline type, namespace)."""
        if isinstance(t, str) and t not in PRIMITIVES:
            for candidate in (fullname(t, ns), t):
                if candidate in self._named:
                    return self._named[candidate], namespace_of(candidate)
            raise SchemaError(f"schema {self.label}: unknown type {t}")
        if isinstance(t, dict) and isinstance(t.get("type"), dict | list):
            return self.resolve(t["type"], ns)
        if isinstance(t, dict) and t.get("type") in NAMED:
            return t, namespace_of(self.full(t, ns))
        return t, ns

    @staticmethod
    def full(t: Mapping[str, Any], ns: str | None) -> str:
        """Full name of the named type ``t`` defined in namespace ``ns``."""
        return fullname(t["name"], t.get("namespace") or ns)

    def contains_record(self, t: Any, ns: str | None) -> bool:
        """Whether a record appears in ``t`` (through unions, arrays, maps, references)."""
        t, ns = self.resolve(t, ns)
        if isinstance(t, list):
            return any(self.contains_record(b, ns) for b in t)
        if isinstance(t, dict):
            kind = t.get("type")
            if kind in ("record", "error"):
                return True
            if kind == "array":
                return self.contains_record(t["items"], ns)
            if kind == "map":
                return self.contains_record(t["values"], ns)
        return False

    def value_type(self, t: Any, ns: str | None) -> ValueType:
        """A resolved non-null, non-container type as a transform sees it."""
        if isinstance(t, str):
            return ValueType(t, None, t)
        kind = t.get("type")
        if kind in ("enum", "fixed"):
            return ValueType(kind, t.get("logicalType"), {**t, "name": self.full(t, ns)})
        return ValueType(kind, t.get("logicalType"), t)


@dataclass(frozen=True)
class FieldAnnotation:
    """What a field's annotation (or its mapped tags) asks for; ``action`` None if none."""

    action: str | None
    params: Mapping[str, Any]  # the annotation without ``action`` and ``class``
    privacy_class: str | None
    tags: tuple[str, ...]
    origin: str  # annotation | tag:<TAG>


def resolve_field(
    f: Mapping[str, Any], path: str, label: str, tag_actions: Mapping[str, dict[str, Any]]
) -> FieldAnnotation:
    """Read field ``f``'s ``privacy`` attribute, else the annotation its tags map to.

    The attribute wins over tags; an unknown privacy class is a :class:`PolicyError`.
    """
    where = f"schema {label}: field {path}"
    tags = field_tags(f, where)
    ann: dict[str, Any] | None = None
    origin = "annotation"
    if f.get(PRIVACY_ATTRIBUTE) is not None:
        ann = normalize_annotation(f[PRIVACY_ATTRIBUTE], where)
    elif tags:
        found = annotation_from_tags(tags, tag_actions, where)
        if found is not None:
            ann, tag = found
            origin = f"tag:{tag}"
    if ann is None:
        return FieldAnnotation(None, {}, None, tags, origin)
    pclass = ann.get("class")
    if pclass is not None and pclass not in CLASSES:
        raise field_error(
            label, path, f"unknown privacy class {pclass!r} (use {', '.join(CLASSES)})"
        )
    params = {k: v for k, v in ann.items() if k not in ("action", "class")}
    return FieldAnnotation(ann["action"], params, pclass, tags, origin)


@dataclass(frozen=True)
class RecordPolicy:
    """A record's own ``privacy`` attribute: tag mappings that apply to it and nested records,
    and the k-anonymity bound (``None`` without ``k`` and its companions)."""

    tags: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    anonymity: PrivacySpec | None = None


def resolve_record(t: Mapping[str, Any], full: str, path: str, label: str) -> RecordPolicy:
    """Read record ``full``'s own ``privacy`` attribute; keys outside RECORD_KEYS fail."""
    own = t.get(PRIVACY_ATTRIBUTE)
    if own is None:
        return RecordPolicy()
    if not isinstance(own, Mapping) or set(own) - set(RECORD_KEYS):
        allowed = ", ".join(repr(k) for k in RECORD_KEYS)
        raise field_error(label, path, f"record {full}: 'privacy' on a record only takes {allowed}")
    bound = {k: v for k, v in own.items() if k in ANONYMITY_KEYS}
    return RecordPolicy(
        tags=normalize_tag_actions(own.get("tags"), f"schema {label}: record {full}"),
        anonymity=parse_privacy(bound, schema_file=label, path=full) if bound else None,
    )
