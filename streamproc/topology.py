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

from collections.abc import Mapping
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
        p = (self.path.parent / raw).resolve()
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


def load_topology(path: str | Path) -> Topology:
    """Parse and validate one topology file."""
    p = Path(path).resolve()
    r = _Reader(p, read_yaml_mapping(p, "topology", TopologyError))
    name = r.get("name", str)
    kind = r.choice("kind", ("sanitize", "detect"), "sanitize")

    src = r.sub("source")
    assert src is not None
    history = src.get("history", list, [])
    hist_paths = []
    for i, item in enumerate(history):
        if not isinstance(item, str):
            raise TopologyError(f"{p}: key 'source.history[{i}]': must be a path")
        hp = (p.parent / item).resolve()
        if not hp.is_file():
            raise TopologyError(f"{p}: key 'source.history[{i}]': file {item!r} not found")
        hist_paths.append(hp)
    source = SourceSpec(
        topic=src.get("topic", str),
        schema=src.file("schema"),  # type: ignore[arg-type]
        history=tuple(hist_paths),
        partitions=src.positive("partitions", None),
    )
    src.check_unknown()

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
            f"{p}: key 'sink.partitions': not configurable: outputs keep their source "
            "partition (per-key order), so the sink and dead-letter topics are declared with "
            "the source's partition count (set 'source.partitions')"
        )
    if kind == "sanitize" and sink.schema is not None:
        raise TopologyError(
            f"{p}: key 'sink.schema': a sanitize topology's output schema is derived from the "
            "source schema's policy (see `streamproc schema derive`); remove the key"
        )

    dlq = r.sub("dead_letter")
    assert dlq is not None
    dead_letter = dlq.get("topic", str)
    dlq.check_unknown()

    framing = r.choice("framing", _FRAMINGS, "auto")
    registry = r.sub("registry", None)
    registry_url = None
    if registry is not None:
        registry_url = registry.get("url", str)
        registry.check_unknown()
    default_write = "confluent" if framing == "confluent" else "single-object"
    write_framing = r.choice("write_framing", ("confluent", "single-object"), default_write)

    # The same {tag: annotation} form as ``--tags FILE`` (an action name is short for
    # {action: NAME}); the actions themselves are checked when the policy compiles.
    tags: dict[str, dict[str, Any]] = {}
    for tag, ann in r.get("tags", dict, {}).items():
        try:
            tags[str(tag)] = normalize_annotation(ann, f"{p}: key 'tags.{tag}'")
        except PolicyError as exc:
            raise TopologyError(str(exc)) from None

    lim = r.sub("limits", None)
    limits = Limits()
    if lim is not None:
        limits = Limits(
            max_record_bytes=lim.positive("max_record_bytes", limits.max_record_bytes),
            max_string_bytes=lim.positive("max_string_bytes", limits.max_string_bytes),
            max_items=lim.positive("max_items", limits.max_items),
        )
        lim.check_unknown()

    lineage = r.sub("lineage", None)
    lineage_topic: str | None = "streamproc.lineage"
    lineage_file = None
    if lineage is not None:
        lineage_topic = lineage.get("topic", str, None)
        lineage_file = lineage.file("file", None, must_exist=False)
        lineage.check_unknown()

    detector = r.get("detector", dict, {})
    if kind == "detect" and "model" in detector:
        detector = {**detector, "model": str((p.parent / detector["model"]).resolve())}

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
        tags=tags,
        registry_url=registry_url,
        lineage_topic=lineage_topic,
        lineage_file=lineage_file,
        audit_topic=r.get("audit_topic", str, "streamproc.audit"),
        limits=limits,
        detector=detector,
    )
    r.check_unknown()
    if len({topo.source.topic, topo.sink.topic, topo.dead_letter}) != 3:
        raise TopologyError(f"{p}: source, sink and dead_letter topics must all differ")
    return topo
