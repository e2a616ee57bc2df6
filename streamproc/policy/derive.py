"""Derive phase: the JSON of the derived (sanitized) schema, piece by piece.

Named types are emitted in full once, then by name, exactly as Avro requires; every transformed
field carries a ``streamproc`` attribute and a doc note saying what was done to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from streamproc.avro.schema import json_digest
from streamproc.policy.resolve import PRIVACY_ATTRIBUTE, NamedTypes

ENGINE_VERSION = 1

#: How a derived field's default follows from the source field's:
#: ``kept`` -- the value passes unchanged, so does its default;
#: ``transformed`` -- only a null default survives (when null leads the output union);
#: ``rebuilt`` -- a container whose records changed: the source default no longer fits.
DefaultRule = Literal["kept", "transformed", "rebuilt"]


def policy_fingerprint(doc: Mapping[str, Any], strict: bool, tag_actions: Mapping[str, Any]) -> str:
    """Digest of everything that decides the plan: engine version, schema, mode, tag map."""
    return json_digest(
        {"engine": ENGINE_VERSION, "schema": doc, "strict": strict, "tag_actions": tag_actions}
    )


class DerivedTypes:
    """Derived JSON of types; remembers which named types were already emitted in full."""

    def __init__(self, named: NamedTypes) -> None:
        self.named = named
        self.emitted: set[str] = set()

    def named_type(self, t: Mapping[str, Any], ns: str | None) -> Any:
        """Derived JSON of an enum/fixed: the full definition once, then its name."""
        full = self.named.full(t, ns)
        if full in self.emitted:
            return full
        self.emitted.add(full)
        out = {k: v for k, v in t.items() if k not in ("namespace", PRIVACY_ATTRIBUTE)}
        out["name"] = full
        return out

    def passthrough(self, t: Any, ns: str | None) -> Any:
        """Derived JSON of a type that is kept as is (no records inside)."""
        t, ns = self.named.resolve(t, ns)
        if isinstance(t, list):
            return [self.passthrough(b, ns) for b in t]
        if isinstance(t, dict):
            kind = t.get("type")
            if kind in ("enum", "fixed"):
                return self.named_type(t, ns)
            if kind == "array":
                return {"type": "array", "items": self.passthrough(t["items"], ns)}
            if kind == "map":
                return {"type": "map", "values": self.passthrough(t["values"], ns)}
            return {k: v for k, v in t.items() if k != PRIVACY_ATTRIBUTE}
        return t

    def record(self, full: str, doc: str | None, fields: list[dict[str, Any]]) -> Any:
        """Derived JSON of record ``full`` with its derived fields (its name if emitted)."""
        derived: dict[str, Any] = {"type": "record", "name": full, "fields": fields}
        if doc:
            derived["doc"] = doc
        if full in self.emitted:
            return full
        self.emitted.add(full)
        return derived


def derived_field(
    f: Mapping[str, Any],
    out_type: Any,
    default: DefaultRule,
    *,
    note: str | None = None,
    action: str | None = None,
    privacy_class: str | None = None,
) -> dict[str, Any]:
    """Derived JSON of field ``f``: its output type, doc (plus ``note``), aliases, default."""
    d: dict[str, Any] = {"name": f["name"], "type": out_type}
    doc = f.get("doc")
    if note:
        doc = f"{doc} [{note}]" if doc else note
    if doc:
        d["doc"] = doc
    if f.get("aliases"):
        d["aliases"] = f["aliases"]
    if action is not None:
        d["streamproc"] = {"action": action, **({"class": privacy_class} if privacy_class else {})}
    if default == "kept" and "default" in f:
        d["default"] = f["default"]
    elif default == "transformed" and _null_first(out_type) and f.get("default", 0) is None:
        d["default"] = None
    return d


def _null_first(out_type: Any) -> bool:
    return isinstance(out_type, list) and out_type[0] == "null"


def stamp(derived: dict[str, Any], fingerprint: str, source: str) -> None:
    """Mark the derived top record with its policy fingerprint and source schema name."""
    derived["streamproc"] = {
        "policy_fingerprint": fingerprint,
        "source_schema": source,
        "engine": ENGINE_VERSION,
    }
    note = f"Sanitized by streamproc (policy {fingerprint[:16]}) from {source}."
    derived["doc"] = f"{derived['doc']} {note}" if derived.get("doc") else note
