"""Event validation: only allow-listed metadata fields of the right type get in."""

from __future__ import annotations

from typing import Any

import pytest

from streamproc.audit.events import SPECS, AuditKind, validate
from streamproc.errors import AuditError

OK: list[tuple[AuditKind, dict[str, Any]]] = [
    (AuditKind.WORKER_START, {"worker": "w-1", "host": "node-3", "pid": 42, "topics": ["a.raw"]}),
    (AuditKind.WORKER_STOP, {"worker": "w-1", "reason": "sigterm", "records": 10}),
    (
        AuditKind.TOPOLOGY_LOAD,
        {
            "topology": "orders",
            "fingerprint": "sha256:" + "a" * 64,
            "path": "topologies/orders.yaml",
        },
    ),
    (
        AuditKind.POLICY_LOAD,
        {"schema": "shop.Order", "fingerprint": "0123456789abcdef", "strict": True},
    ),
    (
        AuditKind.KEY_ROTATE,
        {"key": "orders", "version": 3, "previous_version": 2, "by": "User:ops"},
    ),
    (AuditKind.KEY_VERSIONS, {"key": "orders", "versions": [1, 2, 3], "active": 3}),
    (
        AuditKind.DEAD_LETTER,
        {
            "reason": "oversize",
            "topic": "orders.raw",
            "partition": 2,
            "offset": 99,
            "dlq_topic": "orders.dlq",
            "field": "items[0].sku",
        },
    ),
    (
        AuditKind.REVEAL,
        {
            "who": "User:alice",
            "why": "GDPR request #77, approved by bob",
            "topic": "orders.sanitized",
            "offset": 5,
            "fields": ["email"],
        },
    ),
    (
        AuditKind.CONTAINMENT,
        {
            "principal": "User:trainer",
            "reason": "rate",
            "score": 0.93,
            "threshold": 0.9,
            "enforced": True,
            "incident": "inc-1",
        },
    ),
    (AuditKind.RELEASE, {"principal": "User:trainer", "by": "User:oncall", "incident": "inc-1"}),
    (
        AuditKind.ACL_CHANGE,
        {
            "action": "delete",
            "principal": "User:p",
            "resource_type": "topic",
            "resource": "orders.raw",
            "operation": "read",
            "permission": "deny",
        },
    ),
    (
        AuditKind.MODEL_LOAD,
        {"topology": "access", "model_version": "iforest-3f2a", "states": 80, "threshold": 0.49},
    ),
]


def test_every_kind_has_an_accepted_example() -> None:
    assert {k for k, _ in OK} == set(SPECS) == set(AuditKind)


@pytest.mark.parametrize(("kind", "fields"), OK, ids=[k.value for k, _ in OK])
def test_valid_events_pass_unchanged(kind: AuditKind, fields: dict[str, Any]) -> None:
    got_kind, got = validate(kind.value, fields)
    assert got_kind is kind
    assert got == fields


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no.such.kind", {}, "unknown audit event kind"),
    ("dlq.record", {"reason": "x", "topic": "t", "partition": 0}, "missing field(s) offset"),
    # a record value has no field to go into
    (
        "dlq.record",
        {"reason": "x", "topic": "t", "partition": 0, "offset": 1, "value": "4111 1111 1111 1111"},
        "'value' is not allowed",
    ),
    (
        "dlq.record",
        {"reason": "Jane Doe, 12 Main St", "topic": "t", "partition": 0, "offset": 1},
        "'reason' must be a identifier",
    ),
    (
        "dlq.record",
        {"reason": "x", "topic": "t", "partition": -1, "offset": 1},
        "'partition' must be a non-negative integer",
    ),
    (
        "dlq.record",
        {"reason": "x", "topic": "t", "partition": True, "offset": 1},
        "'partition' must be a non-negative integer",
    ),
    (
        "dlq.record",
        {"reason": "x", "topic": "t", "partition": 0, "offset": b"\x01"},
        "'offset' must be a non-negative integer",
    ),
    ("reveal", {"who": "User:a", "why": "line\nbreak"}, "'why' must be a text"),
    ("reveal", {"who": "User:a", "why": "x" * 513}, "'why' must be a text"),
    (
        "reveal",
        {"who": "User:a", "why": "ok", "fields": ["ok", "not ok"]},
        "'fields' must be a list of identifiers",
    ),
    (
        "containment.apply",
        {"principal": "User:a", "reason": "r", "score": float("inf")},
        "'score' must be a number",
    ),
    ("policy.load", {"schema": "s", "fingerprint": "not-hex"}, "'fingerprint' must be a"),
    ("worker.start", {"worker": "w", "topics": "orders.raw"}, "'topics' must be a list"),
    ("worker.start", {"worker": {"nested": "dict"}}, "'worker' must be a identifier"),
]


@pytest.mark.parametrize(("kind", "fields", "message"), BAD)
def test_invalid_events_are_refused_without_echoing_values(
    kind: str, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(AuditError) as info:
        validate(kind, fields)
    text = str(info.value)
    assert message in text
    for v in fields.values():
        if isinstance(v, str) and len(v) > 3:
            assert v not in text
