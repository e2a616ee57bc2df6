"""Compile an annotated Avro schema into a :class:`Plan`: the walk that ties the phases together.

One pass over the schema JSON decides every field (fail closed). A field containing records is
governed by those records' own fields (only a ``drop`` may sit on it); any other field's
annotation names a transform, applied to the value, to each element of an array or map, and to
the non-null branch of a nullable union; no annotation means drop (an error under ``strict``).
:mod:`~streamproc.policy.resolve` reads annotations, :mod:`~streamproc.policy.derive` writes
the derived schema, :mod:`~streamproc.policy.codegen` writes and execs the record functions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamproc.anonymity import Ladder, PrivacySpec, derived_type, is_ladder, parse_ladder
from streamproc.avro.schema import fullname, namespace_of, parse, read_schema_json
from streamproc.budget import BudgetLedger
from streamproc.errors import PolicyError, UnannotatedFieldError
from streamproc.keys import Keyring
from streamproc.policy.anonymity import PENDING, AnonymitySpec, ladder_description
from streamproc.policy.codegen import Entry, Source, unbound
from streamproc.policy.derive import (
    DefaultRule,
    DerivedTypes,
    derived_field,
    policy_fingerprint,
    stamp,
)
from streamproc.policy.plan import FieldLineage, Plan
from streamproc.policy.resolve import (
    FieldAnnotation,
    NamedTypes,
    field_error,
    resolve_field,
    resolve_record,
)
from streamproc.policy.tags import normalize_tag_actions
from streamproc.transforms import registry
from streamproc.transforms.base import FieldContext, Params, Resources, Transform, ValueType

TagMap = dict[str, dict[str, Any]]
#: What compiling one field yields: (value expression, derived field JSON, reads ancestors).
Compiled = tuple[str, Any, bool]


def compile_plan(
    schema: str | Path | Mapping[str, Any],
    keyring: Keyring | None,
    *,
    strict: bool = False,
    tag_actions: Mapping[str, Any] | None = None,
    rng: random.Random | None = None,
    clock: Callable[[], int] | None = None,
) -> Plan:
    """Compile the annotated schema at ``schema`` (a path, or a loaded mapping) into a plan.

    ``keyring`` supplies the keys named by pseudonymize/encrypt/date_shift (a missing key is a
    :class:`PolicyError` now, not at the first record). ``strict`` turns unannotated fields
    into :class:`UnannotatedFieldError`. ``tag_actions`` maps Confluent tags to annotations.
    ``rng`` seeds DP noise for tests; by default noise uses the OS CSPRNG. ``clock``
    (milliseconds) is the budget ledger's time when no event time is set (default: wall clock).
    """
    doc, label = read_schema_json(schema)
    ledger = BudgetLedger(clock=clock)
    return _Compiler(
        doc, label, keyring, strict, tag_actions, rng, bind=True, budget=ledger
    ).build()


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


def describe_plan(plan: Plan) -> str:
    """A value-free, human-readable summary of a plan (for logs and the CLI)."""
    counts: dict[str, int] = {}
    for item in plan.lineage:
        if item.origin != "container":
            counts[item.action] = counts.get(item.action, 0) + 1
    parts = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    return f"{plan.schema_file}: policy {plan.fingerprint[:16]} ({parts})"


@dataclass
class _RecordOut:
    fn_name: str | None  # None: the record passes through unchanged
    derived: Any


@dataclass
class _Leaf:
    """One annotated value field being compiled: its transform class, parameters, scope."""

    cls: type[Transform]
    params: Mapping[str, Any]
    path: str
    scopes: list[set[str]]
    transform: Transform | None = None


@dataclass
class _Ledger:
    """Lineage of every source field and the current version of every key the plan uses."""

    label: str
    keyring: Keyring | None
    bind: bool
    lineage: list[FieldLineage] = field(default_factory=list)
    key_versions: dict[str, int] = field(default_factory=dict)

    def record(self, fa: FieldAnnotation, path: str, output: str | None, action: str) -> None:
        """Lineage of a field kept or dropped as a whole."""
        self.lineage.append(
            FieldLineage(path, output, action, fa.privacy_class, fa.tags, fa.origin)
        )

    def key_version(self, name: str, path: str) -> int:
        """The current version of key ``name``; 0 when deriving without a keyring."""
        if self.keyring is None:
            if self.bind:
                raise field_error(self.label, path, f"needs key {name!r} but no keyring was given")
            return 0
        if name not in self.keyring:
            raise field_error(self.label, path, f"key {name!r} is not in the keyring")
        v = self.keyring.current_version(name)
        self.key_versions[name] = v
        return v


class _Compiler:
    """The walk over one schema: records, containers of records, annotated leaves."""

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
        budget: BudgetLedger | None = None,
    ) -> None:
        self.doc = doc
        self.label = label
        self.strict = strict
        self.tag_actions = normalize_tag_actions(tag_actions, f"schema {label}: tag_actions")
        self.res = Resources(keyring=keyring, rng=rng, budget=budget)
        self.bind = bind
        self.source_parsed = parse(doc, label)
        self.types = NamedTypes(doc, label)
        self.derive = DerivedTypes(self.types)
        self.stack: list[str] = []
        self.ledger = _Ledger(label, keyring, bind)
        self.src = Source()
        self.src.globals["_pending"] = PENDING
        self.privacy: PrivacySpec | None = None  # the top record's k-anonymity bound
        self.ladders: list[tuple[str, Ladder]] = []  # (field path, ladder), schema order

    def build(self) -> Plan:
        """Walk the schema from its top record and assemble the plan."""
        top = fullname(self.doc["name"], self.doc.get("namespace"))
        fingerprint = policy_fingerprint(self.doc, self.strict, self.tag_actions)
        out = self._record(top, "", [], {})
        derived = out.derived
        assert isinstance(derived, dict)
        stamp(derived, fingerprint, top)
        derived_parsed = parse(derived, f"{self.label} (derived)")
        sanitize = self.src.build(self.label, out.fn_name) if self.bind else unbound(self.label)
        budget = self.res.budget
        anonymity = self._anonymity(top)
        return Plan(
            schema_file=self.label,
            source_schema=self.source_parsed,
            source_schema_json=self.doc,
            derived_schema=derived_parsed,
            derived_schema_json=derived,
            fingerprint=fingerprint,
            key_versions=dict(sorted(self.ledger.key_versions.items())),
            lineage=tuple(self.ledger.lineage),
            strict=self.strict,
            sanitize=sanitize,
            source_code=self.src.text(),
            budget=budget if budget is not None and budget.accounts else None,
            anonymity=anonymity,
        )

    def _anonymity(self, top: str) -> AnonymitySpec | None:
        """The plan's k-anonymity spec, once the walk found the bound and the ladders.

        Fails closed: a ladder without a bound, a bound without a ladder, a quasi field that
        reaches the output without a ladder (it would split the k-groups), or a sensitive field
        that is not a top-level output field is a PolicyError naming the path.
        """
        if self.privacy is None:
            if self.ladders:
                raise self._err(
                    self.ladders[0][0],
                    "a generalize ladder needs a record-level bound on the top record "
                    "('privacy': {'k': ...})",
                )
            return None
        if not self.ladders:
            raise PolicyError(
                f"schema {self.label}: record {top}: privacy 'k' needs at least one quasi field "
                "with a generalize ladder (a list of levels)"
            )
        laddered = {path for path, _ in self.ladders}
        outputs = {f.source_path for f in self.ledger.lineage if f.output_path is not None}
        for f in self.ledger.lineage:
            kept = f.privacy_class == "quasi" and f.output_path is not None
            if kept and f.source_path not in laddered:
                raise self._err(
                    f.source_path,
                    "under a record-level k every quasi field that is kept needs a "
                    "generalize ladder (one level fixes it, e.g. 'to': ['year']) or a drop",
                )
        for name in self.privacy.sensitive:
            if name in laddered:
                raise self._err(name, "a privacy 'sensitive' field cannot be a quasi ladder field")
            if name not in outputs or any(c in name for c in ".[{"):
                raise self._err(
                    name,
                    "privacy 'sensitive' must name a top-level field that reaches the output",
                )
        return AnonymitySpec(
            privacy=self.privacy,
            fields=tuple(path for path, _ in self.ladders),
            ladders=tuple(lad for _, lad in self.ladders),
            sensitive=self.privacy.sensitive,
        )

    def _err(self, path: str, message: str) -> PolicyError:
        return field_error(self.label, path, message)

    # --- records --------------------------------------------------------------------------

    def _record(
        self, full: str, path: str, enclosing: list[set[str]], tag_map: TagMap
    ) -> _RecordOut:
        """Compile record ``full`` at ``path``; ``enclosing`` holds its ancestors' field names."""
        t = self.types[full]
        if full in self.stack:
            raise self._err(path, f"recursive type {full} is not supported")
        self.stack.append(full)
        ns = namespace_of(full)
        # The record's own policy: tag mappings, and the k-anonymity bound (top record only:
        # the engine groups whole records, so a bound on a nested record has no meaning).
        policy = resolve_record(t, full, path, self.label)
        if policy.anonymity is not None:
            if self.stack != [full] or path:
                raise PolicyError(
                    f"schema {self.label}: record {full}: a k-anonymity bound ('k') is only "
                    "allowed on the top record"
                )
            self.privacy = policy.anonymity
        tag_map = {**tag_map, **policy.tags}
        fields = t.get("fields", [])
        scopes = [*enclosing, {f["name"] for f in fields}]
        entries: list[Entry] = []
        derived_fields: list[dict[str, Any]] = []
        uses_u = False
        for f in fields:
            fpath = f"{path}.{f['name']}" if path else f["name"]
            result = self._field(f, fpath, ns, scopes, tag_map)
            if result is None:
                continue
            code, dfield, needs_u = result
            uses_u = uses_u or needs_u
            entries.append(Entry(f["name"], code, fpath))
            derived_fields.append(dfield)
        self.stack.pop()
        derived = self.derive.record(full, t.get("doc"), derived_fields)
        identity = len(entries) == len(fields) and all(e.code == f"r[{e.name!r}]" for e in entries)
        if identity:
            return _RecordOut(None, derived)
        return _RecordOut(self.src.record_function(self.label, path, entries, uses_u), derived)

    # --- fields ---------------------------------------------------------------------------

    def _field(
        self,
        f: Mapping[str, Any],
        path: str,
        ns: str | None,
        scopes: list[set[str]],
        tag_map: TagMap,
    ) -> Compiled | None:
        """(code, derived field JSON, uses ancestors) or None when the field is dropped."""
        fa = resolve_field(f, path, self.label, {**self.tag_actions, **tag_map})
        if self.types.contains_record(f["type"], ns):
            return self._record_field(f, fa, path, ns, scopes, tag_map)
        if fa.action is None:
            if self.strict:
                raise UnannotatedFieldError(
                    f"schema {self.label}: field {path}: no privacy annotation (strict mode)"
                )
            self.ledger.lineage.append(
                FieldLineage(path, None, "drop", None, fa.tags, "unannotated")
            )
            return None
        if is_ladder({"action": fa.action, **fa.params}):
            return self._ladder_field(f, fa, path, ns)
        cls = registry.get(fa.action)
        if cls is None:
            known = ", ".join(sorted(registry.registered()))
            raise self._err(path, f"unknown action {fa.action!r} (known: {known})")
        if cls.whole_field is not None:
            return self._whole_field(cls, f, fa, path, ns)
        return self._value_field(cls, f, fa, path, ns, scopes)

    def _record_field(
        self,
        f: Mapping[str, Any],
        fa: FieldAnnotation,
        path: str,
        ns: str | None,
        scopes: list[set[str]],
        tag_map: TagMap,
    ) -> Compiled | None:
        """A field whose type contains records: dropped whole, or walked into."""
        cls = registry.get(fa.action) if fa.action is not None else None
        if cls is not None and cls.whole_field == "drop":
            self.ledger.record(fa, path, None, cls.name)
            return None
        if fa.action is not None:
            raise self._err(
                path,
                f"action {fa.action!r} is not allowed on a field containing records; "
                "annotate the record's own fields (only 'drop' is allowed here)",
            )
        src = f"r[{f['name']!r}]"
        code, out_type, uses_u = self._container(f["type"], src, path, ns, scopes, tag_map)
        self.ledger.lineage.append(FieldLineage(path, path, "keep", None, fa.tags, "container"))
        rule: DefaultRule = "kept" if code == src else "rebuilt"
        return code, derived_field(f, out_type, rule), uses_u

    def _ladder_field(
        self, f: Mapping[str, Any], fa: FieldAnnotation, path: str, ns: str | None
    ) -> Compiled:
        """A quasi field generalized by the anonymity engine: PENDING until ``fill``."""
        if len(self.stack) != 1:
            raise self._err(
                path,
                "a generalize ladder is only supported on a top-level field of the top record "
                "(nested quasi fields: use a fixed generalize, or move the field up)",
            )
        if fa.privacy_class != "quasi":
            raise self._err(path, 'a generalize ladder needs "class": "quasi"')
        avro_type = self._resolved(f["type"], ns)
        ladder = parse_ladder(fa.params, avro_type, schema_file=self.label, field_path=path)
        self.ladders.append((path, ladder))
        desc = ladder_description(fa.params)
        self.ledger.lineage.append(
            FieldLineage(path, path, "generalize", fa.privacy_class, fa.tags, fa.origin, desc)
        )
        dfield = derived_field(
            f,
            derived_type(avro_type, f["name"], ladder),
            "transformed",
            note=f"streamproc: {desc}, k-anonymous",
            action="generalize",
            privacy_class=fa.privacy_class,
        )
        return "_pending", dfield, False

    def _resolved(self, t: Any, ns: str | None) -> Any:
        """``t`` with named-type references followed (in each branch of a union)."""
        if isinstance(t, list):
            return [self.types.resolve(b, ns)[0] for b in t]
        return self.types.resolve(t, ns)[0]

    def _whole_field(
        self,
        cls: type[Transform],
        f: Mapping[str, Any],
        fa: FieldAnnotation,
        path: str,
        ns: str | None,
    ) -> Compiled | None:
        """A field the transform keeps or drops as a whole (its parameters checked first)."""
        ctx = FieldContext(self.label, path)
        cls.from_params(Params(fa.params, ctx, cls.name), ValueType.of_field(f["type"]), ctx)
        if cls.whole_field == "drop":
            self.ledger.record(fa, path, None, cls.name)
            return None
        self.ledger.record(fa, path, path, cls.name)
        out_type = self.derive.passthrough(f["type"], ns)
        # A kept field keeps its class (when it has one), so that risk measures on the
        # sanitized topic find its quasi-identifiers.
        pclass = fa.privacy_class
        dfield = derived_field(
            f, out_type, "kept", action=cls.name if pclass else None, privacy_class=pclass
        )
        return f"r[{f['name']!r}]", dfield, False

    def _value_field(
        self,
        cls: type[Transform],
        f: Mapping[str, Any],
        fa: FieldAnnotation,
        path: str,
        ns: str | None,
        scopes: list[set[str]],
    ) -> Compiled:
        """A field whose values ``cls`` maps one by one (inside arrays, maps, nullable unions)."""
        leaf = _Leaf(cls, fa.params, path, scopes)
        code, out_type, uses_u = self._annotated(
            f["type"], f"r[{f['name']!r}]", ns, leaf, nullable=False
        )
        assert leaf.transform is not None
        tr = leaf.transform
        version = None if tr.key_name is None else self.ledger.key_version(tr.key_name, path)
        self.ledger.lineage.append(
            FieldLineage(
                path,
                path,
                cls.name,
                fa.privacy_class,
                fa.tags,
                fa.origin,
                tr.describe(),
                tr.key_name,
                version,
            )
        )
        dfield = derived_field(
            f,
            out_type,
            "transformed",
            note=f"streamproc: {tr.describe()}",
            action=cls.name,
            privacy_class=fa.privacy_class,
        )
        return code, dfield, uses_u

    # --- types containing records -------------------------------------------------------

    def _container(
        self,
        t: Any,
        src: str,
        path: str,
        ns: str | None,
        scopes: list[set[str]],
        tag_map: TagMap,
    ) -> Compiled:
        """Code and derived type of ``src`` of type ``t``, which contains a record."""
        t, ns = self.types.resolve(t, ns)
        if isinstance(t, list):
            non_null = [b for b in t if b != "null"]
            if len(non_null) != 1 or len(t) != 2:
                raise self._err(
                    path, "a union of several types containing a record is not supported; drop it"
                )
            var = self.src.name("v")
            code, out, uses_u = self._container(non_null[0], var, path, ns, scopes, tag_map)
            out_union = ["null", out] if t[0] == "null" else [out, "null"]
            if code == var:
                return src, out_union, uses_u
            return self.src.unless_null(var, src, code), out_union, uses_u
        kind = t.get("type") if isinstance(t, dict) else None
        if kind in ("record", "error"):
            assert isinstance(t, dict)
            rec = self._record(self.types.full(t, ns), path, scopes, tag_map)
            if rec.fn_name is None:
                return src, rec.derived, False
            return f"{rec.fn_name}({src}, _u)", rec.derived, True
        if kind in ("array", "map"):
            assert isinstance(t, dict)
            var = self.src.name("x")
            inner_t = t["items"] if kind == "array" else t["values"]
            inner_path = f"{path}[]" if kind == "array" else f"{path}{{}}"
            code, out, uses_u = self._container(inner_t, var, inner_path, ns, scopes, tag_map)
            out_type = {"type": kind, ("items" if kind == "array" else "values"): out}
            if code == var:
                return src, out_type, uses_u
            return self.src.each(kind, var, src, code), out_type, uses_u
        raise AssertionError("not a container")  # contains_record guarantees a record inside

    # --- annotated (record-free) types ----------------------------------------------------

    def _annotated(
        self, t: Any, src: str, ns: str | None, leaf: _Leaf, *, nullable: bool
    ) -> Compiled:
        """Code and derived type of ``src`` of record-free type ``t`` under ``leaf``'s transform."""
        t, ns = self.types.resolve(t, ns)
        if isinstance(t, list):
            non_null = [b for b in t if b != "null"]
            if len(non_null) != 1 or len(t) != 2:
                raise self._err(
                    leaf.path,
                    f"action {leaf.cls.name!r} does not fit a union of several types "
                    "(only keep or drop do)",
                )
            var = self.src.name("v")
            code, out, uses_u = self._annotated(non_null[0], var, ns, leaf, nullable=True)
            out_union = ["null", out] if t[0] == "null" else [out, "null"]
            return self.src.unless_null(var, src, code), out_union, uses_u
        if isinstance(t, dict) and t.get("type") in ("array", "map"):
            kind = t["type"]
            var = self.src.name("x")
            inner = t["items"] if kind == "array" else t["values"]
            code, out, uses_u = self._annotated(inner, var, ns, leaf, nullable=False)
            out_type = {"type": kind, ("items" if kind == "array" else "values"): out}
            return self.src.each(kind, var, src, code), out_type, uses_u
        if t == "null":
            raise self._err(leaf.path, f"action {leaf.cls.name!r} does not fit type null")
        return self._leaf(self.types.value_type(t, ns), src, ns, leaf, nullable)

    def _leaf(
        self, vtype: ValueType, src: str, ns: str | None, leaf: _Leaf, nullable: bool
    ) -> Compiled:
        """Build and bind the transform for one value; its call expression and output type."""
        ctx = FieldContext(self.label, leaf.path, nullable)
        params = Params(leaf.params, ctx, leaf.cls.name)
        tr = leaf.cls.from_params(params, vtype, ctx)
        leaf.transform = tr
        if tr.key_name is not None:
            self.ledger.key_version(tr.key_name, leaf.path)
        out = tr.output_type(vtype)
        if isinstance(out, dict) and out.get("type") in ("enum", "fixed"):
            out = self.derive.named_type(out, ns)
        fn_name = self.src.name("f")
        if self.bind:
            self.src.globals[fn_name] = tr.bind(vtype, ctx, self.res)
        if tr.subject is None:
            return f"{fn_name}({src})", out, False
        subject_code = self._subject(tr.subject, leaf)
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
