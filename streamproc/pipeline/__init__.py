"""Pure flows: bytes in, an outcome out (no Faust, no consumer).

``SanitizeFlow`` and ``DetectFlow`` (``pipeline.detect``) are what the Faust agents,
``dlq replay`` and the tests call; ``pipeline.build`` makes them from topologies and
``pipeline.batch`` runs a sanitize plan over files in parallel.
"""

from __future__ import annotations

from streamproc.pipeline.deadletter import (
    DeadLetterSealer,
    dlq_aad,
    open_envelope,
    seal_envelope,
    source_headers,
)
from streamproc.pipeline.outcome import (
    H_DLQ_ERROR,
    H_DLQ_KEY,
    H_DLQ_REASON,
    H_DLQ_TIME,
    H_DLQ_TOPOLOGY,
    H_KEY_VERSIONS,
    H_POLICY_FP,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TIMESTAMP,
    H_SOURCE_TOPIC,
    H_WRITER_FP,
    DeadLetter,
    Headers,
    Outcome,
    Sanitized,
)
from streamproc.pipeline.sanitize import KEY_PSEUDONYM_KEY, FlowStats, SanitizeFlow

__all__ = [
    "H_DLQ_ERROR",
    "H_DLQ_KEY",
    "H_DLQ_REASON",
    "H_DLQ_TIME",
    "H_DLQ_TOPOLOGY",
    "H_KEY_VERSIONS",
    "H_POLICY_FP",
    "H_SOURCE_OFFSET",
    "H_SOURCE_PARTITION",
    "H_SOURCE_TIMESTAMP",
    "H_SOURCE_TOPIC",
    "H_WRITER_FP",
    "KEY_PSEUDONYM_KEY",
    "DeadLetter",
    "DeadLetterSealer",
    "FlowStats",
    "Headers",
    "Outcome",
    "SanitizeFlow",
    "Sanitized",
    "dlq_aad",
    "open_envelope",
    "seal_envelope",
    "source_headers",
]
