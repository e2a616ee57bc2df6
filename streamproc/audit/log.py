"""The audit log the rest of streamproc writes to.

``AuditLog.append(kind, **fields)`` validates the event against its allow-list, refuses
anything that contains registered secret bytes, chains it to the previous entry and writes it;
every ``checkpoint_every`` entries (or ``checkpoint_seconds``) it writes a signed checkpoint.
One trail has exactly one writer. A new ``AuditLog`` on an existing trail resumes its chain
after checking the tail against its last checkpoint.

``append_once`` is the idempotent form for events about one source record (a dead letter):
it writes nothing if an entry of the same kind for the same source coordinate is among the
last ``dedup_window`` entries of the trail, restarts included. A worker can then write such
entries *before* it commits the records they describe, and a crash that makes it process
those records again does not write them twice.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from streamproc.audit.encoding import (
    FORMAT_VERSION,
    GENESIS,
    Checkpoint,
    Entry,
    MalformedRecord,
    canonical,
    leaf_hash,
    merkle_root,
    parse_record,
    signing_message,
)
from streamproc.audit.events import AuditKind, validate
from streamproc.audit.signing import CheckpointSigner, TrustedKeys
from streamproc.audit.sinks import AuditSink
from streamproc.errors import AuditError


def utc_timestamp(t: float) -> str:
    """RFC 3339 UTC with microseconds: ``2025-01-31T12:00:00.123456Z``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def secret_encodings(secret: bytes) -> list[bytes]:
    """The spellings of ``secret`` an entry is checked for: raw, hex, base64 (std, url)."""
    b64 = base64.b64encode(secret)
    url = base64.urlsafe_b64encode(secret)
    forms = {secret, secret.hex().encode(), secret.hex().upper().encode(), b64, url}
    forms |= {b64.rstrip(b"="), url.rstrip(b"=")}
    return sorted(forms)


class AuditLog:
    """Hash-chained, checkpoint-signed audit log over one sink. Thread-safe."""

    def __init__(
        self,
        sink: AuditSink,
        signer: CheckpointSigner | None,
        *,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        trusted: TrustedKeys | None = None,
        secrets: Iterable[bytes] = (),
        clock: Callable[[], float] = time.time,
        dedup_window: int = 10_000,
    ) -> None:
        if checkpoint_every < 1:
            raise AuditError("checkpoint_every must be at least 1")
        self._sink = sink
        self._signer = signer
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        self._clock = clock
        self._lock = threading.RLock()  # append_once holds it around append
        self._forbidden: list[bytes] = []
        self._broken = False
        if signer is not None:
            self.forbid(signer.secret_bytes())
        self.forbid(*secrets)
        if trusted is None:
            trusted = TrustedKeys.of([signer.public_key]) if signer is not None else TrustedKeys({})
        self._trusted = trusted
        # chain state
        self._seq = -1
        self._head = GENESIS
        self._pending: list[bytes] = []  # leaf hashes since the last checkpoint
        self._last_ckpt: Checkpoint | None = None
        self._last_ckpt_time = clock()
        self._resume(sink.tail())
        # append_once: source coordinates of the newest entries (read from the sink lazily).
        self._window = dedup_window
        self._seen: OrderedDict[tuple[str, ...], None] | None = None

    # --- public API ------------------------------------------------------------------------

    def forbid(self, *secrets: bytes) -> None:
        """Refuse, from now on, any entry containing one of ``secrets`` in any spelling."""
        for s in secrets:
            if len(s) >= 8:
                self._forbidden.extend(secret_encodings(s))

    def append(self, kind: AuditKind | str, /, **fields: Any) -> Entry:
        """Validate, chain and write one event; returns the entry as written."""
        akind, clean = validate(kind, fields)
        with self._lock:
            if self._broken:
                raise AuditError(f"audit log {self._sink.name} failed earlier; restart to resume")
            seq = self._seq + 1
            ts = utc_timestamp(self._clock())
            prev = self._head
            body: dict[str, Any] = {
                "v": FORMAT_VERSION,
                "type": "entry",
                "seq": seq,
                "ts": ts,
                "kind": akind.value,
                "fields": clean,
                "prev": prev,
            }
            record = canonical(body)
            self._refuse_secrets(akind, clean, record)
            self._write(record, checkpoint=False)
            h = leaf_hash(record)
            self._seq, self._head = seq, h.hex()
            self._pending.append(h)
            entry = Entry(seq, ts, akind.value, clean, prev, h.hex())
            if len(self._pending) >= self._every or (
                self._clock() - self._last_ckpt_time >= self._seconds
            ):
                self._checkpoint_locked()
            return entry

    def append_once(self, kind: AuditKind | str, /, **fields: Any) -> Entry | None:
        """:meth:`append`, unless an entry of ``kind`` about the same source coordinate
        (``topic``, ``partition``, ``offset``) is among the trail's last ``dedup_window``
        entries: then nothing is written and None is returned."""
        akind, clean = validate(kind, fields)
        key = _coordinate(akind.value, clean)
        if key is None:
            raise AuditError(
                f"audit event {akind.value}: append_once needs topic, partition, offset"
            )
        with self._lock:
            seen = self._seen
            if seen is None:
                seen = self._seen = self._recent_coordinates()
            if key in seen:
                return None
            entry = self.append(akind, **clean)
            seen[key] = None
            while len(seen) > self._window:
                seen.popitem(last=False)
            return entry

    def _recent_coordinates(self) -> OrderedDict[tuple[str, ...], None]:
        """The coordinates of the newest entries in the sink (oldest first)."""
        out: OrderedDict[tuple[str, ...], None] = OrderedDict()
        recent = getattr(self._sink, "recent", None)
        records = recent(self._window) if recent is not None else self._sink.tail()
        for raw in records:
            try:
                doc = json.loads(raw)
            except ValueError:
                continue  # the chain check on resume already vouched for the tail
            if isinstance(doc, dict) and doc.get("type") == "entry":
                key = _coordinate(str(doc.get("kind")), doc.get("fields") or {})
                if key is not None:
                    out[key] = None
        return out

    def checkpoint(self) -> Checkpoint | None:
        """Sign the entries since the last checkpoint now (None if there are none)."""
        with self._lock:
            return self._checkpoint_locked()

    def maybe_checkpoint(self) -> Checkpoint | None:
        """Checkpoint if ``checkpoint_seconds`` passed; call from a timer in idle workers."""
        with self._lock:
            if self._pending and self._clock() - self._last_ckpt_time >= self._seconds:
                return self._checkpoint_locked()
            return None

    def close(self) -> None:
        """Checkpoint what is pending, then close the sink."""
        with self._lock:
            if not self._broken:
                self._checkpoint_locked()
            self._sink.close()

    @property
    def head(self) -> tuple[int, str]:
        """Sequence number and hash of the last entry (``-1`` and GENESIS when empty)."""
        return self._seq, self._head

    @property
    def last_checkpoint(self) -> Checkpoint | None:
        return self._last_ckpt

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------

    def _refuse_secrets(self, kind: AuditKind, fields: dict[str, Any], record: bytes) -> None:
        texts = [record]
        texts += [v.encode("latin-1", "ignore") for v in fields.values() if isinstance(v, str)]
        for form in self._forbidden:
            for text in texts:
                if form in text:
                    names = [
                        k
                        for k, v in fields.items()
                        if isinstance(v, str | list) and form in canonical({"x": v})
                    ] or ["?"]
                    raise AuditError(
                        f"audit event {kind.value}: field {names[0]!r} contains key material; "
                        "refused"
                    )

    def _write(self, record: bytes, *, checkpoint: bool) -> None:
        try:
            self._sink.write(record, checkpoint=checkpoint)
        except Exception:
            # Whether the record reached the sink is unknown; only a restart (which reads
            # the tail back) can continue the chain correctly.
            self._broken = True
            raise

    def _checkpoint_locked(self) -> Checkpoint | None:
        if not self._pending:
            return None
        if self._signer is None:
            self._last_ckpt_time = self._clock()
            return None
        last = self._last_ckpt
        first = self._seq - len(self._pending) + 1
        body: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "type": "checkpoint",
            "n": last.n + 1 if last is not None else 0,
            "first": first,
            "seq": self._seq,
            "size": self._seq + 1,
            "head": self._head,
            "root": merkle_root(self._pending).hex(),
            "ts": utc_timestamp(self._clock()),
            "key_id": self._signer.key_id,
            "prev_ckpt": last.hash if last is not None else GENESIS,
            "prev_sig": last.sig if last is not None else "",
        }
        body["sig"] = self._signer.sign(signing_message(body)).hex()
        record = canonical(body)
        self._write(record, checkpoint=True)
        ckpt = parse_record(record)
        assert isinstance(ckpt, Checkpoint)
        self._last_ckpt = ckpt
        self._pending = []
        self._last_ckpt_time = self._clock()
        return ckpt

    def _resume(self, tail: list[bytes]) -> None:
        """Continue the chain after ``tail``, which must verify against its checkpoint."""
        if not tail:
            return
        name = self._sink.name
        try:
            recs = [parse_record(r) for r in tail]
        except MalformedRecord as exc:
            raise AuditError(f"audit trail {name}: tail is not valid ({exc}); verify it") from None
        start = 0
        first = recs[0]
        if isinstance(first, Checkpoint):
            sig = bytes.fromhex(first.sig) if len(first.sig) == 128 else b""
            if not self._trusted.verify(first.key_id, sig, signing_message(first.body)):
                raise AuditError(
                    f"audit trail {name}: last checkpoint #{first.n} does not verify with a "
                    f"trusted key (key id {first.key_id[:16]}...); run `streamproc audit verify`"
                )
            self._last_ckpt = first
            self._seq, self._head = first.seq, first.head
            start = 1
        for rec in recs[start:]:
            if not isinstance(rec, Entry) or rec.seq != self._seq + 1 or rec.prev != self._head:
                raise AuditError(
                    f"audit trail {name}: tail does not chain after seq {self._seq}; "
                    "run `streamproc audit verify`"
                )
            self._seq, self._head = rec.seq, rec.hash
            self._pending.append(bytes.fromhex(rec.hash))


def _coordinate(kind: str, fields: dict[str, Any]) -> tuple[str, ...] | None:
    """``(kind, topic, partition, offset)`` of an event about one source record, else None."""
    try:
        return (
            kind,
            str(fields["topic"]),
            str(int(fields["partition"])),
            str(int(fields["offset"])),
        )
    except (KeyError, TypeError, ValueError):
        return None
