"""Secrets hygiene: audit entries, errors and reprs never carry key material or record values."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from streamproc.audit import AuditKind, AuditLog, CheckpointSigner, FileSink
from streamproc.audit.log import secret_encodings
from streamproc.errors import AuditError

from .conftest import FakeClock, MemorySink, write_trail

DATA_KEY = os.urandom(32)  # stands in for a keyring data key registered with the log


def spellings(secret: bytes) -> list[bytes]:
    """Every encoding streamproc code uses for key bytes (independent of the code under test)."""
    b64, url = base64.b64encode(secret), base64.urlsafe_b64encode(secret)
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        b64,
        url,
        b64.rstrip(b"="),
        url.rstrip(b"="),
    ]


def test_secret_encodings_cover_every_spelling() -> None:
    assert set(spellings(DATA_KEY)) <= set(secret_encodings(DATA_KEY))


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (AuditKind.KEY_ROTATE, {"key": "orders", "version": 2, "key_fingerprint": DATA_KEY.hex()}),
        (AuditKind.REVEAL, {"who": "User:a", "why": "see " + base64.b64encode(DATA_KEY).decode()}),
        (
            AuditKind.REVEAL,
            {"who": "User:a", "why": base64.urlsafe_b64encode(DATA_KEY).decode().rstrip("=")},
        ),
        (AuditKind.POLICY_LOAD, {"schema": "s", "fingerprint": "sha256:" + DATA_KEY.hex()}),
        (AuditKind.REVEAL, {"who": "User:a", "why": DATA_KEY.hex().upper()}),
    ],
)
def test_entries_holding_key_material_are_refused(kind: AuditKind, fields: dict) -> None:
    sink = MemorySink()
    log = AuditLog(sink, CheckpointSigner.generate(), secrets=[DATA_KEY])
    with pytest.raises(AuditError, match="contains key material") as info:
        log.append(kind, **fields)
    assert not any(s.decode("latin-1") in str(info.value) for s in spellings(DATA_KEY))
    assert sink.records == []  # nothing written, chain unchanged
    assert log.head[0] == -1


def test_the_signing_key_itself_is_refused() -> None:
    signer = CheckpointSigner.generate()
    log = AuditLog(MemorySink(), signer)
    with pytest.raises(AuditError, match="key material"):
        log.append(AuditKind.REVEAL, who="User:a", why=signer.secret_bytes().hex())


def test_written_trail_holds_no_key_bytes(tmp_path: Path) -> None:
    signer = CheckpointSigner.generate()
    path = tmp_path / "audit.jsonl"
    with AuditLog(
        FileSink(path), signer, secrets=[DATA_KEY], checkpoint_every=7, clock=FakeClock()
    ) as log:
        write_trail(log, 60)
        log.append(
            AuditKind.KEY_ROTATE,
            key="orders",
            version=3,
            previous_version=2,
            key_fingerprint="sha256:" + "c" * 64,
        )
    data = path.read_bytes()
    for secret in (signer.secret_bytes(), DATA_KEY):
        for form in spellings(secret):
            assert form not in data
    assert signer.secret_bytes().hex() not in repr(signer)


@pytest.mark.parametrize(
    "value",
    [
        "4111 1111 1111 1111",
        "jane.doe@example.com, 12 Main Street",
        {"nested": "record"},
        b"\x00\x01raw-bytes",
        ["a list", "of values"],
        "x" * 10_000,
    ],
)
def test_record_values_have_no_way_in(value: object) -> None:
    """A DLQ caller passing the record (or a value) in any field name or slot is refused."""
    log = AuditLog(MemorySink(), None)
    base = {"reason": "decode_error", "topic": "orders.raw", "partition": 0, "offset": 7}
    for attempt in (
        {**base, "value": value},
        {**base, "payload": value},
        {**base, "reason": value},
        {**base, "schema": value},
    ):
        with pytest.raises(AuditError) as info:
            log.append(AuditKind.DEAD_LETTER, **attempt)
        if isinstance(value, str) and len(value) > 3:
            assert value not in str(info.value)
    assert log.head[0] == -1
