"""The principals file: who produces, processes, trains on and watches which topics.

```yaml
worker:                              # the streamproc worker (Faust)
  principal: User:streamproc
  app_ids: [streamproc]              # Faust app id = consumer group; internal topics "<id>-..."
detect_worker:                       # optional: runs the detect topologies under its own name
  principal: User:streamproc-detect
  app_ids: [detector]                # not "<worker app id>-...": the worker holds that prefix
producers:                           # write their raw topics only
  - principal: User:crm-export
    topics: [customers.raw]
training_consumers:                  # read sanitized topics only
  - principal: User:ml-training
    group_prefix: ml-training-
    topics: [customers.clean]        # optional; default: every sanitized topic
on_call:                             # read containment and audit topics
  - principal: User:oncall
    group_prefix: oncall-
retired: [User:old-job]              # `acl apply` removes their ALLOW bindings
```

Validated once at load; every error names the file and the key. Whether a topic is a raw or
a sanitized one is checked against the topologies when the plan is made
(:func:`streamproc.acl.plan.plan_acls`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamproc.acl.bindings import kafka_principal
from streamproc.config.topology import read_yaml_mapping
from streamproc.errors import AclError

_PRINCIPAL = re.compile(r"User:[A-Za-z0-9_.@=+/\-]{1,200}")
_TOPIC = re.compile(r"[A-Za-z0-9._\-]{1,249}")
_GROUP_PREFIX = re.compile(r"[A-Za-z0-9._\-]{1,200}")
_KEYS = {"worker", "detect_worker", "producers", "training_consumers", "on_call", "retired"}


@dataclass(frozen=True)
class Producer:
    principal: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Reader:
    """A training consumer or an on-call reader: topics (None = the role's default) + groups."""

    principal: str
    group_prefix: str
    topics: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Worker:
    principal: str
    app_ids: tuple[str, ...] = ("streamproc",)


@dataclass(frozen=True)
class Principals:
    """One validated principals file."""

    path: Path
    worker: Worker
    producers: tuple[Producer, ...] = ()
    training_consumers: tuple[Reader, ...] = ()
    on_call: tuple[Reader, ...] = ()
    retired: tuple[str, ...] = ()
    detect_worker: Worker | None = None  # None: the worker runs the detect topologies too

    def declared(self) -> frozenset[str]:
        """Every principal with a role (the ones whose ALLOW bindings ``acl apply`` manages)."""
        return frozenset(
            [
                self.worker.principal,
                *([self.detect_worker.principal] if self.detect_worker else []),
                *(p.principal for p in self.producers),
                *(c.principal for c in self.training_consumers),
                *(o.principal for o in self.on_call),
            ]
        )

    def managed(self) -> frozenset[str]:
        """Declared and retired principals: ``acl apply`` owns their ALLOW bindings."""
        return self.declared() | frozenset(self.retired)


class _Doc:
    """Typed access with errors naming the file and the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def err(self, key: str, what: str) -> AclError:
        return AclError(f"{self.path}: key '{key}': {what}")

    def mapping(self, value: Any, key: str, allowed: set[str], required: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.err(key, "must be a mapping")
        for k in value:
            if k not in allowed:
                raise self.err(f"{key}.{k}" if key else str(k), "unknown key")
        for k in sorted(required):
            if value.get(k) is None:
                raise self.err(f"{key}.{k}" if key else k, "is required")
        return value

    def principal(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.err(key, "must be a principal such as User:alice")
        p = kafka_principal(value)
        if not _PRINCIPAL.fullmatch(p):
            raise self.err(key, "must be a principal such as User:alice (type User only)")
        return p

    def names(self, value: Any, key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.err(key, f"must be a non-empty list of {what}s")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not pattern.fullmatch(item):
                raise self.err(f"{key}[{i}]", f"must be a {what} name")
        return tuple(value)

    def name(self, value: Any, key: str, pattern: re.Pattern[str], what: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.err(key, f"must be a {what}")
        return value

    def items(self, value: Any, key: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.err(key, "must be a list")
        return value


def load_principals(path: str | Path) -> Principals:
    """Parse and validate a principals file."""
    p = Path(path).resolve()
    d = _Doc(p)
    data = read_yaml_mapping(p, "principals", AclError)
    d.mapping(data, "", _KEYS, {"worker"})

    def worker_of(role: str, default_app_id: str) -> Worker:
        w = d.mapping(data[role], role, {"principal", "app_ids"}, {"principal"})
        return Worker(
            principal=d.principal(w["principal"], f"{role}.principal"),
            app_ids=d.names(
                w.get("app_ids", [default_app_id]), f"{role}.app_ids", _TOPIC, "app id"
            ),
        )

    worker = worker_of("worker", "streamproc")
    detect_worker = (
        worker_of("detect_worker", "detector") if data.get("detect_worker") is not None else None
    )
    for i, app_id in enumerate(detect_worker.app_ids if detect_worker else ()):
        # The worker holds "<app id>-" prefixed topics: it would reach the detector's state.
        if any(app_id == a or app_id.startswith(f"{a}-") for a in worker.app_ids):
            raise d.err(
                f"detect_worker.app_ids[{i}]",
                "must differ from the worker's app ids and not start with '<worker app id>-'",
            )

    producers = []
    for i, item in enumerate(d.items(data.get("producers"), "producers")):
        key = f"producers[{i}]"
        m = d.mapping(item, key, {"principal", "topics"}, {"principal", "topics"})
        producers.append(
            Producer(
                principal=d.principal(m["principal"], f"{key}.principal"),
                topics=d.names(m["topics"], f"{key}.topics", _TOPIC, "topic"),
            )
        )

    def readers(role: str, with_topics: bool) -> tuple[Reader, ...]:
        out = []
        allowed = {"principal", "group_prefix", *(["topics"] if with_topics else [])}
        for i, item in enumerate(d.items(data.get(role), role)):
            key = f"{role}[{i}]"
            m = d.mapping(item, key, allowed, {"principal", "group_prefix"})
            topics = m.get("topics")
            out.append(
                Reader(
                    principal=d.principal(m["principal"], f"{key}.principal"),
                    group_prefix=d.name(
                        m["group_prefix"], f"{key}.group_prefix", _GROUP_PREFIX, "group prefix"
                    ),
                    topics=None
                    if topics is None
                    else d.names(topics, f"{key}.topics", _TOPIC, "topic"),
                )
            )
        return tuple(out)

    training = readers("training_consumers", True)
    on_call = readers("on_call", False)
    retired = tuple(
        d.principal(v, f"retired[{i}]")
        for i, v in enumerate(d.items(data.get("retired"), "retired"))
    )

    # One role per principal: least privilege is only legible if roles do not add up.
    seen: dict[str, str] = {worker.principal: "worker.principal"}
    roles = [
        *([("detect_worker.principal", detect_worker.principal)] if detect_worker else []),
        *((f"producers[{i}].principal", x.principal) for i, x in enumerate(producers)),
        *((f"training_consumers[{i}].principal", x.principal) for i, x in enumerate(training)),
        *((f"on_call[{i}].principal", x.principal) for i, x in enumerate(on_call)),
        *((f"retired[{i}]", x) for i, x in enumerate(retired)),
    ]
    for key, principal in roles:
        if principal in seen:
            raise d.err(key, f"{principal} is already declared at '{seen[principal]}'")
        seen[principal] = key
    return Principals(p, worker, tuple(producers), training, on_call, retired, detect_worker)
