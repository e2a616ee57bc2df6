"""Fixtures for the audit tests: keys, an in-memory sink, and trail builders."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from streamproc.audit import AuditKind, AuditLog, CheckpointSigner, TrustedKeys


class MemorySink:
    """A sink that keeps records in a list (the file and topic sinks are tested separately)."""

    name = "memory"

    def __init__(self, records: list[bytes] | None = None) -> None:
        self.records: list[bytes] = records if records is not None else []
        self.synced: list[bool] = []
        self.closed = False

    def write(self, record: bytes, *, checkpoint: bool) -> None:
        self.records.append(record)
        self.synced.append(checkpoint)

    def tail(self) -> list[bytes]:
        for i in range(len(self.records) - 1, -1, -1):
            if b'"type":"checkpoint"' in self.records[i]:
                return self.records[i:]
        return list(self.records)

    def recent(self, limit: int) -> list[bytes]:
        return self.records[-limit:] if limit > 0 else []

    def close(self) -> None:
        self.closed = True


class FakeClock:
    """Deterministic time: starts at a fixed instant, advances ``step`` per call."""

    def __init__(self, start: float = 1_767_225_600.0, step: float = 0.001) -> None:
        self.t = start
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


EVENTS: list[tuple[AuditKind, dict[str, object]]] = [
    (AuditKind.DEAD_LETTER, {"reason": "decode_error", "topic": "orders.raw", "partition": 0}),
    (AuditKind.REVEAL, {"who": "User:alice", "why": "chargeback case 1234", "field": "card.pan"}),
    (AuditKind.KEY_VERSIONS, {"key": "orders", "versions": [1, 2], "active": 2}),
    (AuditKind.POLICY_LOAD, {"schema": "shop.Order", "fingerprint": "ab" * 32, "fields": 9}),
    (AuditKind.CONTAINMENT, {"principal": "User:trainer", "reason": "burst", "score": 0.97}),
    (
        AuditKind.ACL_CHANGE,
        {
            "action": "create",
            "principal": "User:trainer",
            "resource_type": "topic",
            "resource": "orders.sanitized",
            "operation": "read",
            "permission": "allow",
        },
    ),
]


def write_trail(log: AuditLog, n: int) -> None:
    """Append ``n`` entries cycling through every event kind above; offsets make each unique."""
    for i, (kind, fields) in zip(range(n), itertools.cycle(EVENTS), strict=False):
        extra = {"offset": i} if kind in (AuditKind.DEAD_LETTER, AuditKind.REVEAL) else {}
        log.append(kind, **fields, **extra)


@pytest.fixture(scope="session")
def signer() -> CheckpointSigner:
    return CheckpointSigner.generate()


@pytest.fixture(scope="session")
def trusted(signer: CheckpointSigner) -> TrustedKeys:
    return TrustedKeys.of([signer.public_key])


TrailFactory = Callable[..., list[bytes]]


@pytest.fixture
def make_trail(signer: CheckpointSigner) -> TrailFactory:
    """Records of a closed trail of ``n`` entries, checkpoint every ``every``."""

    def make(n: int, every: int = 10) -> list[bytes]:
        sink = MemorySink()
        log = AuditLog(sink, signer, checkpoint_every=every, clock=FakeClock())
        write_trail(log, n)
        log.close()
        return sink.records

    return make
