"""From an annotated record schema to what the engines need: the bound, the QIs, their ladders.

The hook for the policy compiler, ``streamproc sanitize`` and the worker: ``plan_for_schema``
reads the record-level ``privacy`` bound (k, l, sensitive, max_delay_ms, max_suppressed) and
every ``class: quasi`` field, nested records included (dotted paths). A quasi field whose
``generalize`` parameter is a list (or ``levels``) gets its ladder; any other quasi field takes
part as a :class:`KeepLadder` over its transformed value, because k must hold over every
quasi-identifier the output carries.

>>> schema = {"type": "record", "name": "P", "privacy": {"k": 2}, "fields": [
...     {"name": "age", "type": "int",
...      "privacy": {"class": "quasi", "action": "generalize", "bucket": [10]}}]}
>>> plan = plan_for_schema(schema, schema_file="p.avsc")
>>> plan.paths, plan.qi({"age": 37})
(('age',), (37,))
>>> plan.apply({"age": 37}, ({"lo": 30, "hi": 40},))
{'age': {'lo': 30, 'hi': 40}}
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamproc.anonymity.ladder import LADDER_KEYS, KeepLadder, Ladder, parse_ladder
from streamproc.anonymity.spec import PrivacySpec, parse_privacy
from streamproc.errors import PolicyError

BOUND_KEYS = ("k", "l", "sensitive", "max_delay_ms", "max_suppressed")


@dataclass(frozen=True)
class QuasiField:
    """One quasi-identifier: its dotted path, Avro type JSON and ladder."""

    path: str
    avro_type: Any
    ladder: Ladder
    laddered: bool  # False: a KeepLadder over the field's transformed value


@dataclass(frozen=True)
class AnonymityPlan:
    """The bound and the QIs of one record schema, in field order."""

    spec: PrivacySpec
    quasi: tuple[QuasiField, ...]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(q.path for q in self.quasi)

    @property
    def ladders(self) -> tuple[Ladder, ...]:
        return tuple(q.ladder for q in self.quasi)

    def qi(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        """The record's QI values in plan order (None where a path is absent)."""
        return tuple(_get(record, q.path) for q in self.quasi)

    def sensitive(self, record: Mapping[str, Any]) -> tuple[Hashable, ...]:
        """One value per sensitive field (unhashable values as their repr-free type name)."""
        out: list[Hashable] = []
        for path in self.spec.sensitive:
            v = _get(record, path)
            out.append(v if isinstance(v, Hashable) else type(v).__name__)
        return tuple(out)

    def apply(self, record: Mapping[str, Any], values: Sequence[Any]) -> dict[str, Any]:
        """A copy of ``record`` with the generalized QI values written at their paths."""
        out = dict(record)
        for q, v in zip(self.quasi, values, strict=True):
            _set(out, q.path.split("."), v)
        return out


def _get(record: Mapping[str, Any], path: str) -> Any:
    cur: Any = record
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _set(record: dict[str, Any], parts: list[str], value: Any) -> None:
    head = parts[0]
    if len(parts) == 1:
        record[head] = value
        return
    inner = record.get(head)
    if isinstance(inner, Mapping):  # a null parent record stays null
        copy = dict(inner)
        record[head] = copy
        _set(copy, parts[1:], value)


def is_ladder(annotation: Mapping[str, Any]) -> bool:
    """Whether a field annotation asks for a ladder (a list-valued generalize parameter)."""
    if annotation.get("action") != "generalize":
        return False
    return "levels" in annotation or any(isinstance(annotation.get(k), list) for k in LADDER_KEYS)


def _record_of(t: Any) -> Mapping[str, Any] | None:
    branches = t if isinstance(t, list) else [t]
    for b in branches:
        if isinstance(b, Mapping) and b.get("type") == "record":
            return b
    return None


def _nested(t: Any) -> Iterator[Mapping[str, Any]]:
    """Records reachable through arrays and maps (where a QI cannot be grouped per record)."""
    branches = t if isinstance(t, list) else [t]
    for b in branches:
        if isinstance(b, Mapping) and b.get("type") in ("array", "map"):
            inner = b.get("items") if b["type"] == "array" else b.get("values")
            rec = _record_of(inner)
            if rec is not None:
                yield rec
            yield from _nested(inner)


def _fields(
    rec: Mapping[str, Any], prefix: str, schema_file: str, inside: bool
) -> Iterator[QuasiField]:
    for f in rec.get("fields", []):
        path = f"{prefix}{f['name']}"
        ann = f.get("privacy")
        if isinstance(ann, Mapping) and ann.get("class") == "quasi":
            if inside:
                raise PolicyError(
                    f"schema {schema_file}: field {path}: a quasi field inside an array or map "
                    "cannot be grouped per record (privacy k/l)"
                )
            if is_ladder(ann):
                lad = parse_ladder(ann, f["type"], schema_file=schema_file, field_path=path)
                yield QuasiField(path, f["type"], lad, True)
            else:
                yield QuasiField(path, f["type"], KeepLadder(path=path), False)
        sub = _record_of(f["type"])
        if sub is not None:
            yield from _fields(sub, f"{path}.", schema_file, inside)
        for nested in _nested(f["type"]):
            yield from _fields(nested, f"{path}[].", schema_file, True)


def plan_for_schema(schema: Mapping[str, Any], *, schema_file: str) -> AnonymityPlan | None:
    """The plan of a record schema whose ``privacy`` attribute sets a bound, else None.

    Other keys of the record's ``privacy`` attribute (``tags``) are left to the compiler.
    """
    ann = schema.get("privacy")
    if not isinstance(ann, Mapping) or not any(k in ann for k in BOUND_KEYS):
        return None
    name = str(schema.get("name", ""))
    spec = parse_privacy(
        {k: ann[k] for k in BOUND_KEYS if k in ann}, schema_file=schema_file, path=name
    )
    quasi = tuple(_fields(schema, "", schema_file, False))
    if not quasi:
        raise PolicyError(f"schema {schema_file}: record {name}: privacy k needs quasi fields")
    known = _all_paths(schema, "")
    for path in spec.sensitive:
        if path not in known:
            raise PolicyError(
                f"schema {schema_file}: record {name}: sensitive field {path} is not a field"
            )
        if path in {q.path for q in quasi}:
            raise PolicyError(
                f"schema {schema_file}: record {name}: field {path} is both quasi and sensitive"
            )
    return AnonymityPlan(spec=spec, quasi=quasi)


def _all_paths(rec: Mapping[str, Any], prefix: str) -> set[str]:
    out: set[str] = set()
    for f in rec.get("fields", []):
        path = f"{prefix}{f['name']}"
        out.add(path)
        sub = _record_of(f["type"])
        if sub is not None:
            out |= _all_paths(sub, f"{path}.")
    return out
