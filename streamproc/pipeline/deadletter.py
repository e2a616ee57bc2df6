"""Dead letters: the payload sealed under the keyring's quarantine key, the reason in headers.

One mechanism for every flow (sanitize and detect): nothing is lost (the sealed payload
opens with ``streamproc dlq replay``) and nothing is exposed (headers carry the reason,
field paths and coordinates, never a value).
"""

from __future__ import annotations

import struct
import time

from streamproc.keys import Keyring
from streamproc.pipeline.outcome import (
    H_DLQ_ERROR,
    H_DLQ_KEY,
    H_DLQ_REASON,
    H_DLQ_TIME,
    H_DLQ_TOPOLOGY,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TOPIC,
    DeadLetter,
    Headers,
)


def dlq_aad(topic: str, partition: int, offset: int) -> bytes:
    """Associated data binding a quarantined payload to its source coordinates."""
    return f"{topic}/{partition}/{offset}".encode()


def seal_envelope(key: bytes | None, value: bytes | None) -> bytes:
    """Key and value of a quarantined record in one plaintext (length-prefixed; -1 = null)."""
    head = struct.pack(">ii", -1 if key is None else len(key), -1 if value is None else 0)
    return head + (key or b"") + (value or b"")


def open_envelope(plain: bytes) -> tuple[bytes | None, bytes | None]:
    klen, vflag = struct.unpack_from(">ii", plain, 0)
    rest = plain[8:]
    key = None if klen < 0 else rest[:klen]
    value = None if vflag < 0 else rest[max(klen, 0) :]
    return key, value


def source_headers(topic: str, partition: int, offset: int) -> Headers:
    """The ``streamproc.source.*`` headers of one source coordinate."""
    return [
        (H_SOURCE_TOPIC, topic.encode()),
        (H_SOURCE_PARTITION, str(partition).encode()),
        (H_SOURCE_OFFSET, str(offset).encode()),
    ]


class DeadLetterSealer:
    """Seals failed records of one topology into :class:`DeadLetter` outcomes."""

    def __init__(self, keyring: Keyring, topology_name: str) -> None:
        self.keyring = keyring
        self._topology = topology_name.encode()

    def seal(
        self,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        message: str,
        topic: str,
        partition: int,
        offset: int,
        coords: Headers | None = None,
    ) -> DeadLetter:
        """The dead letter of one record; ``message`` must name paths and types, never values."""
        sealed = self.keyring.seal(seal_envelope(key, value), dlq_aad(topic, partition, offset))
        quarantine = self.keyring.current_version("quarantine")
        headers = [
            *(coords if coords is not None else source_headers(topic, partition, offset)),
            (H_DLQ_TOPOLOGY, self._topology),
            (H_DLQ_REASON, reason.encode()),
            (H_DLQ_ERROR, message.encode()),
            (H_DLQ_TIME, str(int(time.time() * 1000)).encode()),
            (H_DLQ_KEY, f"quarantine={quarantine}".encode()),
        ]
        return DeadLetter(None, sealed, headers, reason)
