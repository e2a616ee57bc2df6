"""What a flow makes of one message: a sanitized record or a dead letter, and header names.

The ``H_*`` header names are a contract: consumers deduplicate by the source headers, and
``streamproc dlq`` reads the dead-letter ones.
"""

from __future__ import annotations

from dataclasses import dataclass

Headers = list[tuple[str, bytes]]
"""Kafka record headers as the producers take them."""

# Header names (the contract consumers, dlq tools and dedup rely on).
H_SOURCE_TOPIC = "streamproc.source.topic"
H_SOURCE_PARTITION = "streamproc.source.partition"
H_SOURCE_OFFSET = "streamproc.source.offset"
H_WRITER_FP = "streamproc.writer.fingerprint"
H_POLICY_FP = "streamproc.policy.fingerprint"
H_KEY_VERSIONS = "streamproc.key.versions"
H_DLQ_REASON = "streamproc.dlq.reason"
H_DLQ_ERROR = "streamproc.dlq.error"
H_DLQ_TIME = "streamproc.dlq.time"
H_DLQ_TOPOLOGY = "streamproc.dlq.topology"
H_DLQ_KEY = "streamproc.dlq.key"
H_SOURCE_TIMESTAMP = "streamproc.source.timestamp"


@dataclass(frozen=True, slots=True)
class Sanitized:
    """A record ready for the sanitized topic (pseudonymized key, derived-schema value)."""

    key: bytes | None
    value: bytes
    headers: Headers
    fingerprint: int = 0  # of the writer schema the source record was decoded with


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record for the dead-letter topic: payload sealed, reason and coordinates in headers."""

    key: None
    value: bytes
    headers: Headers
    reason: str


Outcome = Sanitized | DeadLetter
