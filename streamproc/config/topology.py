"""Topology files: one YAML file declares one flow (paths relative to the file).

```yaml
name: customers
kind: sanitize                 # sanitize (default) | detect
source: {topic: customers.raw, schema: ../schemas/customer_profile.avsc,
         history: [../schemas/customer_profile.v1.avsc], partitions: 6}
sink: {topic: customers.clean}
dead_letter: {topic: customers.dlq}
framing: auto                  # confluent | single-object | auto (read both)
```

Validation happens once at load; every error names the file and the key.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from streamproc.avro.bounds import Limits
from streamproc.errors import PolicyError, StreamprocError, TopologyError
from streamproc.policy.tags import normalize_annotation

Framing = Literal["confluent", "single-object", "auto"]
WriteFraming = Literal["confluent", "single-object"]
Kind = Literal["sanitize", "detect"]

_FRAMINGS = ("confluent", "single-object", "auto")
_GUARANTEES = ("at_least_once", "exactly_once")


@dataclass(frozen=True)
class SourceSpec:
    topic: str
    schema: Path
    history: tuple[Path, ...] = ()
    partitions: int | None = None


@dataclass(frozen=True)
class SinkSpec:
    topic: str
    schema: Path | None = None
    partitions: int | None = None


@dataclass(frozen=True)
class ComplianceSpec:
    """What the topology's compliance status is judged against (``docs/metrics.md``)."""

    approved_policy_fingerprint: str | None = None  # unset: the policy is not approved
    max_key_age_days: int = 90
    dead_letter_budget: float = 0.001  # share of records


@dataclass(frozen=True)
class Topology:
    """One validated flow."""

    path: Path
    name: str
    kind: Kind
    source: SourceSpec
    sink: SinkSpec
    dead_letter: str
    framing: Framing = "auto"
    write_framing: WriteFraming = "single-object"
    strict: bool = False
    processing_guarantee: str = "at_least_once"
    tags: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    registry_url: str | None = None
    lineage_topic: str | None = "streamproc.lineage"
    lineage_file: Path | None = None
    audit_topic: str | None = "streamproc.audit"
    limits: Limits = field(default_factory=Limits)
    detector: Mapping[str, Any] = field(default_factory=dict)
    compliance: ComplianceSpec = field(default_factory=ComplianceSpec)
    anonymity: AnonymityOverrides = field(default_factory=lambda: AnonymityOverrides())


@dataclass(frozen=True)
class AnonymityOverrides:
    """How this deployment runs the schema's record-level k (never weaker than the schema):
    ``max_delay_ms`` may only lower the schema's delay bound; ``max_buffered`` caps the
    records one source partition holds (past it the oldest are released as if due)."""

    max_delay_ms: int | None = None
    # Larger buffers lose less precision and cost a little more: 5,000 releases ~7.3k
    # customer records/s on a backlog (docs/anonymity.md, "In the worker").
    max_buffered: int = 5_000


class _Reader:
    """Typed access to one mapping of a topology file, with errors naming file and key."""

    def __init__(self, path: Path, data: Mapping[str, Any], prefix: str = "") -> None:
        self.path, self.data, self.prefix = path, data, prefix
        self.used: set[str] = set()

    def _err(self, key: str, what: str) -> TopologyError:
        return TopologyError(f"{self.path}: key '{self.prefix}{key}': {what}")

    def get(self, key: str, typ: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise self._err(key, "is required")
            return default
        value = self.data[key]
        if isinstance(value, bool) and typ is int:
            raise self._err(key, "must be an integer")
        if not isinstance(value, typ):
            names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
            raise self._err(key, f"must be of type {names}")
        return value

    def sub(self, key: str, default: Any = ...) -> _Reader | None:
        value = self.get(key, dict, default)
        return None if value is None else _Reader(self.path, value, f"{self.prefix}{key}.")

    def file(self, key: str, default: Any = ..., *, must_exist: bool = True) -> Path | None:
        raw = self.get(key, str, default)
        if raw is None:
            return None
        p = lexical_path(self.path.parent / raw)
        if must_exist and not p.is_file():
            raise self._err(key, f"file {raw!r} not found (relative to the topology file)")
        return p

    def positive(self, key: str, default: Any = ...) -> Any:
        value = self.get(key, int, default)
        if value is not None and value <= 0:
            raise self._err(key, "must be > 0")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = ...) -> Any:
        value = self.get(key, str, default)
        if value not in choices:
            raise self._err(key, f"must be one of {', '.join(choices)}")
        return value

    def check_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self._err(unknown[0], "unknown key")


def _guarantee(r: _Reader, kind: str) -> str:
    """at_least_once or exactly_once (sanitize flows only; see docs/delivery.md)."""
    value = r.choice("processing_guarantee", _GUARANTEES, "at_least_once")
    if value == "exactly_once" and kind != "sanitize":
        raise r._err(
            "processing_guarantee",
            "exactly_once is offered for sanitize topologies (the detector runs at_least_once)",
        )
    return str(value)


def _anonymity(r: _Reader) -> AnonymityOverrides:
    a = r.sub("anonymity", None)
    if a is None:
        return AnonymityOverrides()
    delay = a.get("max_delay_ms", int, None)
    if delay is not None and delay < 0:
        raise a._err("max_delay_ms", "must be >= 0")
    buffered = a.get("max_buffered", int, AnonymityOverrides.max_buffered)
    if buffered < 1:
        raise a._err("max_buffered", "must be >= 1")
    a.check_unknown()
    return AnonymityOverrides(delay, buffered)


def _compliance(r: _Reader) -> ComplianceSpec:
    c = r.sub("compliance", None)
    if c is None:
        return ComplianceSpec()
    default = ComplianceSpec()
    budget = c.get("dead_letter_budget", (int, float), default.dead_letter_budget)
    if isinstance(budget, bool) or not 0.0 <= budget <= 1.0:
        raise c._err("dead_letter_budget", "must be a share between 0 and 1")
    spec = ComplianceSpec(
        approved_policy_fingerprint=c.get("approved_policy_fingerprint", str, None),
        max_key_age_days=c.positive("max_key_age_days", default.max_key_age_days),
        dead_letter_budget=float(budget),
    )
    c.check_unknown()
    return spec


def read_yaml_mapping(p: Path, what: str, error: type[StreamprocError]) -> dict[str, Any]:
    """A YAML file that must hold a mapping; ``error`` names the file (and the line)."""
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise error(f"{p}: cannot read {what} file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{p}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise error(f"{p}: a {what} file must be a YAML mapping")
    return data


def lexical_path(path: str | Path) -> Path:
    """An absolute path with ``..`` folded lexically, without following symlinks, so that
    files named relative to a linked topology folder (the checkout's ``topologies/``) are
    found beside the link, as a user reading the file expects."""
    return Path(os.path.normpath(os.path.abspath(path)))


def _source(r: _Reader) -> SourceSpec:
    src = r.sub("source")
    assert src is not None
    hist_paths = []
    for i, item in enumerate(src.get("history", list, [])):
        if not isinstance(item, str):
            raise TopologyError(f"{r.path}: key 'source.history[{i}]': must be a path")
        hp = lexical_path(r.path.parent / item)
        if not hp.is_file():
            raise TopologyError(f"{r.path}: key 'source.history[{i}]': file {item!r} not found")
        hist_paths.append(hp)
    source = SourceSpec(
        topic=src.get("topic", str),
        schema=src.file("schema"),  # type: ignore[arg-type]
        history=tuple(hist_paths),
        partitions=src.positive("partitions", None),
    )
    src.check_unknown()
    return source


def _sink(r: _Reader, kind: str) -> SinkSpec:
    snk = r.sub("sink")
    assert snk is not None
    sink = SinkSpec(
        topic=snk.get("topic", str),
        schema=snk.file("schema", None),
        partitions=snk.positive("partitions", None),
    )
    snk.check_unknown()
    if sink.partitions is not None:
        raise TopologyError(
            f"{r.path}: key 'sink.partitions': not configurable: outputs keep their source "
            "partition (per-key order), so the sink and dead-letter topics are declared with "
            "the source's partition count (set 'source.partitions')"
        )
    if kind == "sanitize" and sink.schema is not None:
        raise TopologyError(
            f"{r.path}: key 'sink.schema': a sanitize topology's output schema is derived from "
            "the source schema's policy (see `streamproc schema derive`); remove the key"
        )
    return sink


def _tags(r: _Reader) -> dict[str, dict[str, Any]]:
    """The same {tag: annotation} form as ``--tags FILE`` (an action name is short for
    {action: NAME}); the actions themselves are checked when the policy compiles."""
    tags: dict[str, dict[str, Any]] = {}
    for tag, ann in r.get("tags", dict, {}).items():
        try:
            tags[str(tag)] = normalize_annotation(ann, f"{r.path}: key 'tags.{tag}'")
        except PolicyError as exc:
            raise TopologyError(str(exc)) from None
    return tags


def _limits(r: _Reader) -> Limits:
    lim = r.sub("limits", None)
    limits = Limits()
    if lim is None:
        return limits
    limits = Limits(
        max_record_bytes=lim.positive("max_record_bytes", limits.max_record_bytes),
        max_string_bytes=lim.positive("max_string_bytes", limits.max_string_bytes),
        max_items=lim.positive("max_items", limits.max_items),
    )
    lim.check_unknown()
    return limits


def _lineage(r: _Reader) -> tuple[str | None, Path | None]:
    """(lineage topic, lineage file); the topic defaults to ``streamproc.lineage``."""
    lineage = r.sub("lineage", None)
    if lineage is None:
        return "streamproc.lineage", None
    topic = lineage.get("topic", str, None)
    file = lineage.file("file", None, must_exist=False)
    lineage.check_unknown()
    return topic, file


def _registry_url(r: _Reader) -> str | None:
    registry = r.sub("registry", None)
    if registry is None:
        return None
    url = registry.get("url", str)
    registry.check_unknown()
    return str(url)


def load_topology(path: str | Path) -> Topology:
    """Parse and validate one topology file."""
    p = lexical_path(path)
    r = _Reader(p, read_yaml_mapping(p, "topology", TopologyError))
    name = r.get("name", str)
    kind = r.choice("kind", ("sanitize", "detect"), "sanitize")
    source = _source(r)
    sink = _sink(r, kind)
    dlq = r.sub("dead_letter")
    assert dlq is not None
    dead_letter = dlq.get("topic", str)
    dlq.check_unknown()
    framing = r.choice("framing", _FRAMINGS, "auto")
    registry_url = _registry_url(r)
    default_write = "confluent" if framing == "confluent" else "single-object"
    write_framing = r.choice("write_framing", ("confluent", "single-object"), default_write)
    lineage_topic, lineage_file = _lineage(r)
    detector = r.get("detector", dict, {})
    if kind == "detect" and "model" in detector:
        detector = {**detector, "model": str(lexical_path(p.parent / detector["model"]))}

    topo = Topology(
        path=p,
        name=name,
        kind=kind,
        source=source,
        sink=sink,
        dead_letter=dead_letter,
        framing=framing,
        write_framing=write_framing,
        strict=r.get("strict", bool, False),
        processing_guarantee=_guarantee(r, kind),
        tags=_tags(r),
        registry_url=registry_url,
        lineage_topic=lineage_topic,
        lineage_file=lineage_file,
        audit_topic=r.get("audit_topic", str, "streamproc.audit"),
        limits=_limits(r),
        detector=detector,
        compliance=_compliance(r),
        anonymity=_anonymity(r),
    )
    r.check_unknown()
    if len({topo.source.topic, topo.sink.topic, topo.dead_letter}) != 3:
        raise TopologyError(f"{p}: source, sink and dead_letter topics must all differ")
    return topo


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """``text`` with every run of characters not allowed in Kafka ids replaced by ``_``."""
    return _SAFE_NAME.sub("_", text)


def default_app_id(topologies: Sequence[Topology]) -> str:
    """The consumer group a worker joins unless ``--app-id`` is given.

    ``streamproc-<names>-<hash>``: the sorted topology names joined by dots (readable in
    group listings) and 8 hex digits of SHA-256 over the sorted ``name=source topic`` pairs,
    so the same set of topologies always lands in the same group, and two deployments that
    reuse a name on other topics do not. Example: ``streamproc-claims.customers-1f0c9a2e``.
    """
    pairs = sorted(f"{t.name}={t.source.topic}" for t in topologies)
    digest = hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:8]
    names = ".".join(safe_name(t.name) for t in sorted(topologies, key=lambda t: t.name))[:80]
    return f"streamproc-{names}-{digest}"
