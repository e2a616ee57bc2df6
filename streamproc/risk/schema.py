"""Which fields of a schema are quasi-identifiers (or sensitive), as dotted paths.

A raw annotated schema says it in the field's ``"privacy": {"class": ...}`` (or through a
``confluent:tags`` tag mapped to an annotation with a class, by the record's own
``"privacy": {"tags": {...}}`` or by ``tag_actions``); a derived (sanitized) schema keeps it
in the field's ``"streamproc": {"class": ...}`` attribute. Paths follow the compiler's
notation (``a.b``, ``a[].b``, ``a{}.b``) so that they name the same values in both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from streamproc.avro.schema import NAMED, PRIMITIVES, fullname, namespace_of
from streamproc.policy.tags import (
    TAGS_ATTRIBUTE,
    annotation_from_tags,
    field_tags,
    normalize_tag_actions,
)
from streamproc.risk.exceptions import RiskError

PRIVACY_ATTRIBUTE = "privacy"
DERIVED_ATTRIBUTE = "streamproc"


def quasi_fields(
    schema_json: Mapping[str, Any], *, tag_actions: Mapping[str, Any] | None = None
) -> list[str]:
    """Paths of the fields of class ``quasi``, in schema order."""
    return fields_of_class(schema_json, "quasi", tag_actions=tag_actions)


def sensitive_fields(
    schema_json: Mapping[str, Any], *, tag_actions: Mapping[str, Any] | None = None
) -> list[str]:
    """Paths of the fields of class ``sensitive``, in schema order."""
    return fields_of_class(schema_json, "sensitive", tag_actions=tag_actions)


def fields_of_class(
    schema_json: Mapping[str, Any], pclass: str, *, tag_actions: Mapping[str, Any] | None = None
) -> list[str]:
    """Paths of the leaf fields whose privacy class is ``pclass``."""
    return [
        path for path, cls in field_classes(schema_json, tag_actions=tag_actions) if cls == pclass
    ]


def field_paths(schema_json: Mapping[str, Any]) -> list[str]:
    """Every field path of the schema (records descended into), in schema order."""
    return [path for path, _ in field_classes(schema_json)]


def field_classes(
    schema_json: Mapping[str, Any], *, tag_actions: Mapping[str, Any] | None = None
) -> list[tuple[str, str | None]]:
    """``(path, privacy class or None)`` of every field, records descended into."""
    walker = _Walker(normalize_tag_actions(tag_actions, "tag_actions"))
    return list(walker.record(schema_json, "", None, {}))


class _Walker:
    def __init__(self, tag_actions: dict[str, dict[str, Any]]) -> None:
        self.tag_actions = tag_actions
        self.named: dict[str, Any] = {}
        self.stack: list[str] = []

    def record(
        self, t: Mapping[str, Any], path: str, ns: str | None, tag_map: dict[str, Any]
    ) -> Iterator[tuple[str, str | None]]:
        full = fullname(t["name"], t.get("namespace") or ns)
        self.named[full] = t
        if full in self.stack:
            return  # a recursive type: its fields were listed at the outer level
        self.stack.append(full)
        ns = namespace_of(full)
        own = t.get(PRIVACY_ATTRIBUTE)
        if isinstance(own, Mapping) and own.get("tags") is not None:
            tag_map = {**tag_map, **normalize_tag_actions(own["tags"], f"record {full}")}
        for f in t.get("fields", []):
            fpath = f"{path}.{f['name']}" if path else f["name"]
            # A derived field with a class is one value even when it is a record: the
            # {lo, hi} of a k-anonymity ladder groups by both bounds (risk.paths.normalise).
            leaf = isinstance(f.get(DERIVED_ATTRIBUTE), Mapping) and "class" in f[DERIVED_ATTRIBUTE]
            inner = [] if leaf else list(self.container(f["type"], fpath, ns, tag_map))
            if inner:
                yield from inner
            else:
                yield fpath, self.field_class(f, fpath, tag_map)
        self.stack.pop()

    def container(
        self, t: Any, path: str, ns: str | None, tag_map: dict[str, Any]
    ) -> Iterator[tuple[str, str | None]]:
        """The fields below ``path`` when its type holds a record; nothing for a leaf."""
        if isinstance(t, str):
            if t in PRIMITIVES:
                return
            for candidate in (fullname(t, ns), t):
                if candidate in self.named:
                    t, ns = self.named[candidate], namespace_of(candidate)
                    break
            else:
                raise RiskError(f"field {path}: unknown type {t}")
        if isinstance(t, list):
            for branch in t:
                yield from self.container(branch, path, ns, tag_map)
            return
        kind = t.get("type")
        if isinstance(kind, dict | list):
            yield from self.container(kind, path, ns, tag_map)
        elif kind in ("record", "error"):
            yield from self.record(t, path, ns, tag_map)
        elif kind == "array":
            yield from self.container(t["items"], f"{path}[]", ns, tag_map)
        elif kind == "map":
            yield from self.container(t["values"], f"{path}{{}}", ns, tag_map)
        elif kind in NAMED:
            self.named[fullname(t["name"], t.get("namespace") or ns)] = t

    def field_class(self, f: Mapping[str, Any], path: str, tag_map: dict[str, Any]) -> str | None:
        for attribute in (PRIVACY_ATTRIBUTE, DERIVED_ATTRIBUTE):
            ann = f.get(attribute)
            if isinstance(ann, Mapping) and isinstance(ann.get("class"), str):
                return str(ann["class"])
        if f.get(TAGS_ATTRIBUTE) is not None and f.get(PRIVACY_ATTRIBUTE) is None:
            tags = field_tags(f, f"field {path}")
            found = annotation_from_tags(tags, {**self.tag_actions, **tag_map}, f"field {path}")
            if found is not None and isinstance(found[0].get("class"), str):
                return str(found[0]["class"])
        return None
