"""Audit event kinds and the metadata each may carry.

Every kind has an allow-list of field names, each with a type that only admits metadata:
identifiers, topic names, principals, field paths, fingerprints, numbers, flags, and one
bounded free-text justification (``why``). A record value has no field to go into, and a
caller that tries gets an :class:`~streamproc.errors.AuditError` naming the field, never
the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streamproc.errors import AuditError


class AuditKind(StrEnum):
    """What happened. The value is what an entry's ``kind`` holds."""

    WORKER_START = "worker.start"
    WORKER_STOP = "worker.stop"
    TOPOLOGY_LOAD = "topology.load"
    POLICY_LOAD = "policy.load"
    KEY_ROTATE = "key.rotate"
    KEY_VERSIONS = "key.versions"
    DEAD_LETTER = "dlq.record"
    REVEAL = "reveal"
    CONTAINMENT = "containment.apply"
    RELEASE = "containment.release"
    ACL_CHANGE = "acl.change"
    MODEL_LOAD = "detector.model"


@dataclass(frozen=True, slots=True)
class FieldType:
    """A metadata type: a name for messages and a check for one value."""

    name: str
    pattern: re.Pattern[str] | None = None
    max_len: int = 0
    kind: type | tuple[type, ...] = str
    is_list: bool = False

    def accepts(self, value: Any) -> bool:
        if self.is_list:
            return (
                isinstance(value, list | tuple)
                and len(value) <= 256
                and all(self._accepts_one(v) for v in value)
            )
        return self._accepts_one(value)

    def _accepts_one(self, value: Any) -> bool:
        if isinstance(value, bool):
            return self.kind is bool
        if self.kind is bool:
            return False
        if not isinstance(value, self.kind):
            return False
        if isinstance(value, float):
            return math.isfinite(value)
        if isinstance(value, int):
            return value >= 0
        assert isinstance(value, str)
        if self.max_len and len(value) > self.max_len:
            return False
        return self.pattern is None or self.pattern.fullmatch(value) is not None


IDENT = FieldType("identifier", re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*"), 128)
"""Names, codes, versions, reasons: ``decode_error``, ``orders-v3``, ``1.4.2``."""
TOPIC = FieldType("topic", re.compile(r"[A-Za-z0-9._\-]+"), 249)
PRINCIPAL = FieldType("principal", re.compile(r"[A-Za-z0-9_.:@/=+\-]+"), 256)
"""``User:alice``, ``CN=worker-1``, service names."""
FIELD_PATH = FieldType("field path", re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]*]*"), 256)
PATH = FieldType("file path", re.compile(r"[A-Za-z0-9_./\-]+"), 512)
FINGERPRINT = FieldType("fingerprint", re.compile(r"(sha256:)?[0-9a-f]{16,64}"), 71)
TEXT = FieldType("text", re.compile(r"[^\x00-\x1f\x7f]*"), 512)
"""Free text, only where a human justification is the point (``why``)."""
COUNT = FieldType("non-negative integer", kind=int)
NUMBER = FieldType("number", kind=(int, float))
FLAG = FieldType("boolean", kind=bool)
IDENTS = FieldType("list of identifiers", IDENT.pattern, IDENT.max_len, is_list=True)
TOPICS = FieldType("list of topics", TOPIC.pattern, TOPIC.max_len, is_list=True)
COUNTS = FieldType("list of non-negative integers", kind=int, is_list=True)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Fields one kind requires and may carry."""

    required: Mapping[str, FieldType]
    optional: Mapping[str, FieldType]


_WORKER = {"worker": IDENT}
SPECS: Mapping[AuditKind, EventSpec] = {
    AuditKind.WORKER_START: EventSpec(
        _WORKER,
        {"host": IDENT, "pid": COUNT, "version": IDENT, "topologies": IDENTS, "topics": TOPICS},
    ),
    AuditKind.WORKER_STOP: EventSpec(
        _WORKER, {"reason": IDENT, "records": COUNT, "dead_letters": COUNT}
    ),
    AuditKind.TOPOLOGY_LOAD: EventSpec(
        {"topology": IDENT, "fingerprint": FINGERPRINT},
        {"path": PATH, "source_topic": TOPIC, "sink_topic": TOPIC, "worker": IDENT},
    ),
    AuditKind.POLICY_LOAD: EventSpec(
        {"schema": IDENT, "fingerprint": FINGERPRINT},
        {
            "topology": IDENT,
            "derived_fingerprint": FINGERPRINT,
            "fields": COUNT,
            "strict": FLAG,
            "worker": IDENT,
        },
    ),
    AuditKind.MODEL_LOAD: EventSpec(
        {"topology": IDENT, "model_version": IDENT},
        {"worker": IDENT, "states": COUNT, "threshold": NUMBER},
    ),
    AuditKind.KEY_ROTATE: EventSpec(
        {"key": IDENT, "version": COUNT},
        {"previous_version": COUNT, "by": PRINCIPAL, "key_fingerprint": FINGERPRINT},
    ),
    AuditKind.KEY_VERSIONS: EventSpec(
        {"key": IDENT, "versions": COUNTS},
        {"active": COUNT, "worker": IDENT, "topology": IDENT},
    ),
    AuditKind.DEAD_LETTER: EventSpec(
        {"reason": IDENT, "topic": TOPIC, "partition": COUNT, "offset": COUNT},
        {"dlq_topic": TOPIC, "schema": IDENT, "field": FIELD_PATH, "worker": IDENT},
    ),
    AuditKind.REVEAL: EventSpec(
        {"who": PRINCIPAL, "why": TEXT},
        {
            "topic": TOPIC,
            "partition": COUNT,
            "offset": COUNT,
            "fields": IDENTS,
            "field": FIELD_PATH,
            "key": IDENT,
            "key_version": COUNT,
            "count": COUNT,
            "ok": FLAG,
        },
    ),
    AuditKind.CONTAINMENT: EventSpec(
        {"principal": PRINCIPAL, "reason": IDENT},
        {
            "incident": IDENT,
            "score": NUMBER,
            "threshold": NUMBER,
            "enforced": FLAG,
            "topics": TOPICS,
            "by": PRINCIPAL,
        },
    ),
    AuditKind.RELEASE: EventSpec(
        {"principal": PRINCIPAL, "by": PRINCIPAL},
        {"incident": IDENT, "why": TEXT},
    ),
    AuditKind.ACL_CHANGE: EventSpec(
        {
            "action": IDENT,
            "principal": PRINCIPAL,
            "resource_type": IDENT,
            "resource": TOPIC,
            "operation": IDENT,
            "permission": IDENT,
        },
        {"pattern_type": IDENT, "host": IDENT, "by": PRINCIPAL, "reason": IDENT},
    ),
}


def validate(kind: AuditKind | str, fields: Mapping[str, Any]) -> tuple[AuditKind, dict[str, Any]]:
    """Check ``fields`` against the spec of ``kind``; return the kind and a JSON-ready copy.

    Errors name the kind and the field, and describe the expected type, never the value.
    """
    try:
        akind = AuditKind(kind)
    except ValueError:
        raise AuditError(f"unknown audit event kind {str(kind)[:64]!r}") from None
    spec = SPECS[akind]
    missing = sorted(set(spec.required) - set(fields))
    if missing:
        raise AuditError(f"audit event {akind.value}: missing field(s) {', '.join(missing)}")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        ftype = spec.required.get(name) or spec.optional.get(name)
        if ftype is None:
            raise AuditError(
                f"audit event {akind.value}: field {name[:64]!r} is not allowed; allowed: "
                f"{', '.join(sorted([*spec.required, *spec.optional]))}"
            )
        if value is None and name in spec.optional:
            continue
        if not ftype.accepts(value):
            raise AuditError(
                f"audit event {akind.value}: field {name!r} must be a {ftype.name}"
                + (f" of at most {ftype.max_len} characters" if ftype.max_len else "")
            )
        out[name] = list(value) if ftype.is_list else value
    return akind, out
