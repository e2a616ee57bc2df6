"""Compile an annotated Avro schema into a :class:`Plan`.

The compiler walks the schema JSON once. For every field it decides (fail closed):

- a field whose type contains a record is governed by that record's own fields; the only
  annotation allowed on it is ``drop``;
- otherwise the field's ``privacy`` annotation (or its mapped ``confluent:tags``) names a
  transform, applied to the value, to each element of an array or map, and to the non-null
  branch of a nullable union; no annotation means ``drop`` (or an error under ``strict``).

It then generates one Python function per record (a single dict display, one specialised
callable per transformed field) so that sanitizing a record interprets nothing at run time.
Errors in the fast path are located afterwards by re-running field by field, and name the
field path and exception type only -- never a value.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamproc.avro.schema import (
    NAMED,
    PRIMITIVES,
    fullname,
    json_digest,
    namespace_of,
    parse,
    read_schema_json,
)
from streamproc.errors import PolicyError, SchemaError, TransformError, UnannotatedFieldError
from streamproc.keys import Keyring
from streamproc.policy.plan import FieldLineage, Plan
from streamproc.policy.tags import (
    annotation_from_tags,
    field_tags,
    normalize_annotation,
    normalize_tag_actions,
)
from streamproc.transforms import registry
from streamproc.transforms.base import FieldContext, Params, Resources, Transform, ValueType

ENGINE_VERSION = 1
PRIVACY_ATTRIBUTE = "privacy"
CLASSES = ("direct", "quasi", "sensitive", "public")


def compile_plan(
    schema: str | Path | Mapping[str, Any],
    keyring: Keyring | None,
    *,
    strict: bool = False,
    tag_actions: Mapping[str, Any] | None = None,
    rng: random.Random | None = None,
) -> Plan:
    """Compile the annotated schema at ``schema`` (a path, or a loaded mapping) into a plan.

    ``keyring`` supplies the keys named by pseudonymize/encrypt/date_shift (a missing key is a
    :class:`PolicyError` now, not at the first record). ``strict`` turns unannotated fields
    into :class:`UnannotatedFieldError`. ``tag_actions`` maps Confluent tags to annotations.
    ``rng`` seeds DP noise for tests; by default noise uses the OS CSPRNG.
    """
    doc, label = read_schema_json(schema)
    return _Compiler(doc, label, keyring, strict, tag_actions, rng, bind=True).build()


def derive_schema(
    schema: str | Path | Mapping[str, Any],
    keyring: Keyring | None = None,
    *,
    strict: bool = False,
    tag_actions: Mapping[str, Any] | None = None,
) -> Plan:
    """Like :func:`compile_plan` but without binding transforms: for ``schema derive``.

    Key names are checked only if a keyring is given; the plan's ``sanitize`` refuses to run.
    """
    doc, label = read_schema_json(schema)
    return _Compiler(doc, label, keyring, strict, tag_actions, None, bind=False).build()


@dataclass
class _RecordOut:
    fn_name: str | None  # None: the record passes through unchanged
    derived: Any


@dataclass
class _State:
    globals: dict[str, Any] = field(default_factory=dict)
    code: list[str] = field(default_factory=list)
    counter: int = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"_{prefix}{self.counter}"


class _Compiler:
    def __init__(
        self,
        doc: dict[str, Any],
        label: str,
        keyring: Keyring | None,
        strict: bool,
        tag_actions: Mapping[str, Any] | None,
        rng: random.Random | None,
        *,
        bind: bool,
    ) -> None:
        self.doc = doc
        self.label = label
        self.keyring = keyring
        self.strict = strict
        self.tag_actions = normalize_tag_actions(tag_actions, f"schema {label}: tag_actions")
        self.res = Resources(keyring=keyring, rng=rng)
        self.bind = bind
        self.named: dict[str, dict[str, Any]] = {}
        self.emitted: set[str] = set()
        self.stack: list[str] = []
        self.lineage: list[FieldLineage] = []
        self.key_versions: dict[str, int] = {}
        self.st = _State()
        self.st.globals["TransformError"] = TransformError

    # --- entry ----------------------------------------------------------------------------

    def build(self) -> Plan:
        source_parsed = parse(self.doc, self.label)
        self._collect(self.doc, None)
        top = fullname(self.doc["name"], self.doc.get("namespace"))
        fingerprint = json_digest(
            {
                "engine": ENGINE_VERSION,
                "schema": self.doc,
                "strict": self.strict,
                "tag_actions": self.tag_actions,
            }
        )
        out = self._record(top, "", [], {})
        derived = out.derived
        assert isinstance(derived, dict)
        derived["streamproc"] = {
            "policy_fingerprint": fingerprint,
            "source_schema": top,
            "engine": ENGINE_VERSION,
        }
        note = f"Sanitized by streamproc (policy {fingerprint[:16]}) from {top}."
        derived["doc"] = f"{derived['doc']} {note}" if derived.get("doc") else note
        derived_parsed = parse(derived, f"{self.label} (derived)")

        source = "\n".join(self.st.code)
        if self.bind:
            exec(compile(source, f"<streamproc plan {self.label}>", "exec"), self.st.globals)
            sanitize = self.st.globals[out.fn_name] if out.fn_name is not None else _copy_record
        else:
            sanitize = _unbound(self.label)
        return Plan(
            schema_file=self.label,
            source_schema=source_parsed,
            source_schema_json=self.doc,
            derived_schema=derived_parsed,
            derived_schema_json=derived,
            fingerprint=fingerprint,
            key_versions=dict(sorted(self.key_versions.items())),
            lineage=tuple(self.lineage),
            strict=self.strict,
            sanitize=sanitize,
            source_code=source,
        )

    def _err(self, path: str, message: str) -> PolicyError:
        return PolicyError(f"schema {self.label}: field {path or '<top>'}: {message}")

    # --- named types ----------------------------------------------------------------------

    def _collect(self, t: Any, ns: str | None) -> None:
        """Register every named type (full name -> definition) in document order."""
        if isinstance(t, list):
            for b in t:
                self._collect(b, ns)
            return
        if not isinstance(t, dict):
            return
        kind = t.get("type")
        if kind in NAMED:
            full = fullname(t["name"], t.get("namespace") or ns)
            if full in self.named:
                raise SchemaError(f"schema {self.label}: type {full} is defined twice")
            self.named[full] = t
            inner_ns = namespace_of(full)
            for f in t.get("fields", ()) if kind in ("record", "error") else ():
                self._collect(f.get("type"), inner_ns)
        elif kind in ("array", "map"):
            self._collect(t.get("items" if kind == "array" else "values"), ns)
        elif isinstance(kind, dict | list):
            self._collect(kind, ns)

    def _resolve(self, t: Any, ns: str | None) -> tuple[Any, str | None]:
        """Follow a named-type reference; returns (definition or inline type, namespace)."""
        if isinstance(t, str) and t not in PRIMITIVES:
            for candidate in (fullname(t, ns), t):
                if candidate in self.named:
                    return self.named[candidate], namespace_of(candidate)
            raise SchemaError(f"schema {self.label}: unknown type {t}")
        if isinstance(t, dict) and isinstance(t.get("type"), dict | list):
            return self._resolve(t["type"], ns)
        if isinstance(t, dict) and t.get("type") in NAMED:
            full = fullname(t["name"], t.get("namespace") or ns)
            return t, namespace_of(full)
        return t, ns

    def _full(self, t: dict[str, Any], ns: str | None) -> str:
        return fullname(t["name"], t.get("namespace") or ns)

    def _contains_record(self, t: Any, ns: str | None, seen: frozenset[str] = frozenset()) -> bool:
        t, ns = self._resolve(t, ns)
        if isinstance(t, list):
            return any(self._contains_record(b, ns, seen) for b in t)
        if isinstance(t, dict):
            kind = t.get("type")
            if kind in ("record", "error"):
                return True
            if kind == "array":
                return self._contains_record(t["items"], ns, seen)
            if kind == "map":
                return self._contains_record(t["values"], ns, seen)
        return False

    def _emit_named(self, t: dict[str, Any], ns: str | None) -> Any:
        """Derived JSON of an enum/fixed: the full definition once, then its name."""
        full = self._full(t, ns)
        if full in self.emitted:
            return full
        self.emitted.add(full)
        out = {k: v for k, v in t.items() if k not in ("namespace", PRIVACY_ATTRIBUTE)}
        out["name"] = full
        return out

    def _passthrough_type(self, t: Any, ns: str | None) -> Any:
        """Derived JSON of a type that is kept as is (no records inside)."""
        t, ns = self._resolve(t, ns)
        if isinstance(t, list):
            return [self._passthrough_type(b, ns) for b in t]
        if isinstance(t, dict):
            kind = t.get("type")
            if kind in ("enum", "fixed"):
                return self._emit_named(t, ns)
            if kind == "array":
                return {"type": "array", "items": self._passthrough_type(t["items"], ns)}
            if kind == "map":
                return {"type": "map", "values": self._passthrough_type(t["values"], ns)}
            return {k: v for k, v in t.items() if k != PRIVACY_ATTRIBUTE}
        return t

    def _value_type(self, t: Any, ns: str | None) -> ValueType:
        if isinstance(t, str):
            return ValueType(t, None, t)
        kind = t.get("type")
        if kind in ("enum", "fixed"):
            return ValueType(kind, t.get("logicalType"), {**t, "name": self._full(t, ns)})
        return ValueType(kind, t.get("logicalType"), t)

    # --- records --------------------------------------------------------------------------

    def _record(
        self,
        full: str,
        path: str,
        enclosing: list[set[str]],
        tag_map: dict[str, dict[str, Any]],
    ) -> _RecordOut:
        t = self.named[full]
        if full in self.stack:
            raise self._err(path, f"recursive type {full} is not supported")
        self.stack.append(full)
        ns = namespace_of(full)
        own = t.get(PRIVACY_ATTRIBUTE)
        if own is not None:
            if not isinstance(own, Mapping) or set(own) - {"tags"}:
                raise self._err(path, f"record {full}: 'privacy' on a record only takes 'tags'")
            tag_map = {
                **tag_map,
                **normalize_tag_actions(own.get("tags"), f"schema {self.label}: record {full}"),
            }
        fields = t.get("fields", [])
        names = {f["name"] for f in fields}
        scopes = [*enclosing, names]

        entries: list[tuple[str, str, str]] = []  # (name, code, path)
        derived_fields: list[dict[str, Any]] = []
        uses_u = False
        for f in fields:
            fpath = f"{path}.{f['name']}" if path else f["name"]
            result = self._field(f, fpath, ns, scopes, tag_map)
            if result is None:
                continue
            code, dfield, needs_u = result
            uses_u = uses_u or needs_u
            entries.append((f["name"], code, fpath))
            derived_fields.append(dfield)
        self.stack.pop()

        derived: dict[str, Any] = {"type": "record", "name": full, "fields": derived_fields}
        if t.get("doc"):
            derived["doc"] = t["doc"]
        if full in self.emitted:
            derived_ref: Any = full
        else:
            self.emitted.add(full)
            derived_ref = derived

        identity = len(entries) == len(fields) and all(
            code == f"r[{name!r}]" for name, code, _ in entries
        )
        if identity:
            return _RecordOut(None, derived_ref)
        return _RecordOut(self._gen_record(path, entries, uses_u), derived_ref)

    def _gen_record(self, path: str, entries: list[tuple[str, str, str]], uses_u: bool) -> str:
        st = self.st
        fn = st.name("rec")
        fields_name = st.name("fields")
        fail = st.name("fail")
        lines = [f"def {fn}(r, up=()):"]
        if uses_u:
            lines.append("    _u = up + (r,)")
        lines.append("    try:")
        lines.append("        return {")
        for name, code, _ in entries:
            lines.append(f"            {name!r}: {code},")
        lines.append("        }")
        lines.append("    except TransformError:")
        lines.append("        raise")
        lines.append("    except Exception:")
        lines.append("        pass")
        lines.append(f"    {fail}(r, up)")
        lines.append(f"{fields_name} = [")
        for name, code, fpath in entries:
            lines.append(f"    ({fpath!r}, {name!r}, lambda r, up, _u: {code}),")
        lines.append("]")
        st.code.append("\n".join(lines))
        st.globals[fail] = _make_fail(self.label, path, st.globals, fields_name)
        return fn

    # --- fields ---------------------------------------------------------------------------

    def _field(
        self,
        f: Mapping[str, Any],
        path: str,
        ns: str | None,
        scopes: list[set[str]],
        tag_map: dict[str, dict[str, Any]],
    ) -> tuple[str, dict[str, Any], bool] | None:
        """(code, derived field JSON, uses ancestors) or None when the field is dropped."""
        name = f["name"]
        tags = field_tags(f, f"schema {self.label}: field {path}")
        ann: dict[str, Any] | None = None
        origin = "annotation"
        if f.get(PRIVACY_ATTRIBUTE) is not None:
            ann = normalize_annotation(f[PRIVACY_ATTRIBUTE], f"schema {self.label}: field {path}")
        elif tags:
            found = annotation_from_tags(
                tags, {**self.tag_actions, **tag_map}, f"schema {self.label}: field {path}"
            )
            if found is not None:
                ann, tag = found
                origin = f"tag:{tag}"

        ftype = f["type"]
        src = f"r[{name!r}]"
        pclass = self._class(ann, path)
        action = ann["action"] if ann else None

        if self._contains_record(ftype, ns):
            if action == "drop":
                self._lineage(path, None, "drop", pclass, tags, origin)
                return None
            if ann is not None:
                raise self._err(
                    path,
                    f"action {action!r} is not allowed on a field containing records; "
                    "annotate the record's own fields (only 'drop' is allowed here)",
                )
            code, out_type, uses_u = self._container(ftype, src, path, ns, scopes, tag_map)
            self._lineage(path, path, "keep", None, tags, "container")
            dfield = self._derived_field(f, out_type, None)
            if code == src and "default" in f:
                dfield["default"] = f["default"]
            return code, dfield, uses_u

        if ann is None:
            if self.strict:
                raise UnannotatedFieldError(
                    f"schema {self.label}: field {path}: no privacy annotation (strict mode)"
                )
            self._lineage(path, None, "drop", None, tags, "unannotated")
            return None
        assert action is not None
        cls = registry.get(action)
        if cls is None:
            known = ", ".join(sorted(registry.registered()))
            raise self._err(path, f"unknown action {action!r} (known: {known})")
        if action == "drop":
            self._check_params(ann, path)
            self._lineage(path, None, "drop", pclass, tags, origin)
            return None
        if action == "keep":
            self._check_params(ann, path)
            self._lineage(path, path, "keep", pclass, tags, origin)
            # A kept field keeps its class (when it has one) so risk measures find it.
            dfield = self._derived_field(
                f,
                self._passthrough_type(ftype, ns),
                None,
                action="keep" if pclass else None,
                pclass=pclass,
            )
            if "default" in f:
                dfield["default"] = f["default"]
            return src, dfield, False

        params = {k: v for k, v in ann.items() if k not in ("action", "class")}
        leaf = _Leaf(cls, params, path, scopes)
        code, out_type, uses_u = self._annotated(ftype, src, ns, leaf, nullable=False)
        assert leaf.transform is not None
        tr = leaf.transform
        version = None
        if tr.key_name is not None:
            version = self._key_version(tr.key_name, path)
        self._lineage(path, path, action, pclass, tags, origin, tr.describe(), tr.key_name, version)
        note = f"streamproc: {tr.describe()}"
        dfield = self._derived_field(f, out_type, note, action=action, pclass=pclass)
        if isinstance(out_type, list) and out_type[0] == "null" and f.get("default", 0) is None:
            dfield["default"] = None
        return code, dfield, uses_u

    def _class(self, ann: Mapping[str, Any] | None, path: str) -> str | None:
        if ann is None:
            return None
        pclass = ann.get("class")
        if pclass is not None and pclass not in CLASSES:
            raise self._err(path, f"unknown privacy class {pclass!r} (use {', '.join(CLASSES)})")
        return pclass

    def _check_params(self, ann: Mapping[str, Any], path: str) -> None:
        extra = sorted(set(ann) - {"action", "class"})
        if extra:
            raise self._err(path, f"{ann['action']}: unknown parameter(s) {', '.join(extra)}")

    def _key_version(self, name: str, path: str) -> int:
        if self.keyring is None:
            if self.bind:
                raise self._err(path, f"needs key {name!r} but no keyring was given")
            return 0
        if name not in self.keyring:
            raise self._err(path, f"key {name!r} is not in the keyring")
        v = self.keyring.current_version(name)
        self.key_versions[name] = v
        return v

    def _lineage(
        self,
        source: str,
        output: str | None,
        action: str,
        pclass: str | None,
        tags: tuple[str, ...],
        origin: str,
        transform: str = "",
        key: str | None = None,
        version: int | None = None,
    ) -> None:
        self.lineage.append(
            FieldLineage(source, output, action, pclass, tags, origin, transform, key, version)
        )

    def _derived_field(
        self,
        f: Mapping[str, Any],
        out_type: Any,
        note: str | None,
        *,
        action: str | None = None,
        pclass: str | None = None,
    ) -> dict[str, Any]:
        d: dict[str, Any] = {"name": f["name"], "type": out_type}
        doc = f.get("doc")
        if note:
            doc = f"{doc} [{note}]" if doc else note
        if doc:
            d["doc"] = doc
        if f.get("aliases"):
            d["aliases"] = f["aliases"]
        if action is not None:
            d["streamproc"] = {"action": action, **({"class": pclass} if pclass else {})}
        return d

    # --- types containing records -------------------------------------------------------

    def _container(
        self,
        t: Any,
        src: str,
        path: str,
        ns: str | None,
        scopes: list[set[str]],
        tag_map: dict[str, dict[str, Any]],
    ) -> tuple[str, Any, bool]:
        t, ns = self._resolve(t, ns)
        if isinstance(t, list):
            non_null = [b for b in t if b != "null"]
            if len(non_null) != 1 or len(t) != 2:
                raise self._err(
                    path, "a union of several types containing a record is not supported; drop it"
                )
            var = self.st.name("v")
            code, out, uses_u = self._container(non_null[0], var, path, ns, scopes, tag_map)
            out_union = ["null", out] if t[0] == "null" else [out, "null"]
            if code == var:
                return src, out_union, uses_u
            return f"(None if ({var} := {src}) is None else {code})", out_union, uses_u
        kind = t.get("type") if isinstance(t, dict) else None
        if kind in ("record", "error"):
            assert isinstance(t, dict)
            rec = self._record(self._full(t, ns), path, scopes, tag_map)
            if rec.fn_name is None:
                return src, rec.derived, False
            return f"{rec.fn_name}({src}, _u)", rec.derived, True
        if kind in ("array", "map"):
            assert isinstance(t, dict)
            var = self.st.name("x")
            inner_t = t["items"] if kind == "array" else t["values"]
            inner_path = f"{path}[]" if kind == "array" else f"{path}{{}}"
            code, out, uses_u = self._container(inner_t, var, inner_path, ns, scopes, tag_map)
            out_type = {"type": kind, ("items" if kind == "array" else "values"): out}
            if code == var:
                return src, out_type, uses_u
            if kind == "array":
                return f"[{code} for {var} in {src}]", out_type, uses_u
            key = self.st.name("k")
            return f"{{{key}: {code} for {key}, {var} in {src}.items()}}", out_type, uses_u
        raise AssertionError("not a container")  # _contains_record guarantees a record inside

    # --- annotated (record-free) types ----------------------------------------------------

    def _annotated(
        self, t: Any, src: str, ns: str | None, leaf: _Leaf, *, nullable: bool
    ) -> tuple[str, Any, bool]:
        t, ns = self._resolve(t, ns)
        if isinstance(t, list):
            non_null = [b for b in t if b != "null"]
            if len(non_null) != 1 or len(t) != 2:
                raise self._err(
                    leaf.path,
                    f"action {leaf.cls.name!r} does not fit a union of several types "
                    "(only keep or drop do)",
                )
            var = self.st.name("v")
            code, out, uses_u = self._annotated(non_null[0], var, ns, leaf, nullable=True)
            out_union = ["null", out] if t[0] == "null" else [out, "null"]
            return f"(None if ({var} := {src}) is None else {code})", out_union, uses_u
        if isinstance(t, dict) and t.get("type") in ("array", "map"):
            kind = t["type"]
            var = self.st.name("x")
            inner = t["items"] if kind == "array" else t["values"]
            code, out, uses_u = self._annotated(inner, var, ns, leaf, nullable=False)
            out_type = {"type": kind, ("items" if kind == "array" else "values"): out}
            if kind == "array":
                return f"[{code} for {var} in {src}]", out_type, uses_u
            key = self.st.name("k")
            return f"{{{key}: {code} for {key}, {var} in {src}.items()}}", out_type, uses_u
        if t == "null":
            raise self._err(leaf.path, f"action {leaf.cls.name!r} does not fit type null")
        vtype = self._value_type(t, ns)
        return self._leaf(vtype, src, ns, leaf, nullable)

    def _leaf(
        self, vtype: ValueType, src: str, ns: str | None, leaf: _Leaf, nullable: bool
    ) -> tuple[str, Any, bool]:
        ctx = FieldContext(self.label, leaf.path, nullable)
        params = Params(leaf.params, ctx, leaf.cls.name)
        tr = leaf.cls.from_params(params, vtype, ctx)
        leaf.transform = tr
        if tr.key_name is not None:
            self._key_version(tr.key_name, leaf.path)
        out = tr.output_type(vtype)
        if isinstance(out, dict) and out.get("type") in ("enum", "fixed"):
            out = self._emit_named(out, ns)
        fn_name = self.st.name("f")
        if self.bind:
            self.st.globals[fn_name] = tr.bind(vtype, ctx, self.res)
        if not tr.needs_subject:
            return f"{fn_name}({src})", out, False
        subject = tr.subject or ""
        subject_code = self._subject(subject, leaf)
        return f"{fn_name}({src}, {subject_code})", out, subject_code.startswith("_u")

    def _subject(self, subject: str, leaf: _Leaf) -> str:
        """Code reading the subject field: this record first, then enclosing ones."""
        scopes = leaf.scopes
        for depth, names in enumerate(reversed(scopes)):
            if subject in names:
                if depth == 0:
                    return f"r[{subject!r}]"
                return f"_u[{len(scopes) - 1 - depth}][{subject!r}]"
        raise self._err(
            leaf.path, f"subject field {subject!r} is not in this record or an enclosing one"
        )


@dataclass
class _Leaf:
    cls: type[Transform]
    params: dict[str, Any]
    path: str
    scopes: list[set[str]]
    transform: Transform | None = None


def _copy_record(record: dict[str, Any]) -> dict[str, Any]:
    return dict(record)


def _unbound(label: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def sanitize(record: dict[str, Any]) -> dict[str, Any]:
        raise PolicyError(f"schema {label}: plan was derived without binding; use compile_plan")

    return sanitize


def _make_fail(
    label: str, path: str, namespace: dict[str, Any], fields_name: str
) -> Callable[[Any, tuple[Any, ...]], None]:
    """Locate the failing field of a record, raise a value-free TransformError."""
    where = path or "<top>"

    def fail(r: Any, up: tuple[Any, ...]) -> None:
        if not isinstance(r, dict):
            raise TransformError(f"schema {label}: record {where}: not a record")
        u = (*up, r)
        for fpath, name, fn in namespace[fields_name]:
            problem = None
            if name not in r:
                problem = "missing"
            else:
                try:
                    fn(r, up, u)
                except TransformError:
                    raise
                except Exception as exc:
                    problem = type(exc).__name__
            if problem is not None:
                raise TransformError(f"schema {label}: field {fpath}: {problem}")
        raise TransformError(f"schema {label}: record {where}: cannot be sanitized")

    return fail


def describe_plan(plan: Plan) -> str:
    """A value-free, human-readable summary of a plan (for logs and the CLI)."""
    counts: dict[str, int] = {}
    for item in plan.lineage:
        if item.origin != "container":
            counts[item.action] = counts.get(item.action, 0) + 1
    parts = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    return f"{plan.schema_file}: policy {plan.fingerprint[:16]} ({parts})"


def dumps_schema(schema_json: Mapping[str, Any]) -> str:
    return json.dumps(schema_json, indent=2)
