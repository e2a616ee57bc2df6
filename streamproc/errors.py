"""The whole streamproc exception tree.

Every exception raised on purpose by streamproc derives from :class:`StreamprocError`.
Messages name schema files, field paths, topics and keys -- never a record value or key
material. Code that wraps a third-party error uses ``raise ... from exc`` only when the
underlying message cannot contain a value; otherwise it raises ``from None``.
"""

from __future__ import annotations


class StreamprocError(Exception):
    """Root of every error streamproc raises on purpose."""


# --- configuration -------------------------------------------------------------------------


class ConfigError(StreamprocError):
    """Settings, environment or a command line that cannot work."""


class InsecureTransportError(ConfigError):
    """An unencrypted or unauthenticated connection to a non-loopback broker was refused."""


class TopologyError(ConfigError):
    """A topology file is missing, does not parse, or has an invalid key."""


# --- schemas and policy --------------------------------------------------------------------


class SchemaError(StreamprocError):
    """An Avro schema file cannot be read, parsed or resolved."""


class PolicyError(SchemaError):
    """A privacy annotation is unknown, malformed, or does not fit the field's type."""


class UnannotatedFieldError(PolicyError):
    """Strict mode: a field carries no privacy annotation."""


# --- keys ----------------------------------------------------------------------------------


class KeyringError(StreamprocError):
    """A keyring file is missing, unreadable, too permissive, or lacks a named key/version."""


class KeyNotFoundError(KeyringError):
    """A key name or key version is not in the keyring."""


class RevealError(StreamprocError):
    """A value could not be decrypted (wrong key, tampered ciphertext, not an encrypted value)."""


# --- records in flight ---------------------------------------------------------------------


class RecordError(StreamprocError):
    """One record could not be processed; carries a machine-readable ``reason`` for the DLQ."""

    reason: str = "record_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class DecodeError(RecordError):
    """Bytes that do not decode as Avro with a known writer schema."""

    reason = "decode_error"


class FramingError(DecodeError):
    """Wrong or missing magic byte / header for the configured wire format."""

    reason = "bad_framing"


class UnknownSchemaError(DecodeError):
    """The schema id or fingerprint of a record is not known."""

    reason = "unknown_schema"


class IncompatibleSchemaError(DecodeError):
    """The writer schema cannot be resolved to the topology's reader schema."""

    reason = "incompatible_schema"


class OversizeError(DecodeError):
    """A record, string, bytes, array or map exceeds the configured bound."""

    reason = "oversize"


class TransformError(RecordError):
    """A transform could not be applied to a value (message names the field path only)."""

    reason = "transform_error"


class BudgetKeyError(RecordError):
    """A budgeted record cannot be charged durably: its Kafka key is not its subject, or its
    subject was charged on another source partition (the worker keeps a subject's budget with
    the partition that carries it, so the key must be the subject)."""

    reason = "budget_key_mismatch"


class EncodeError(RecordError):
    """A sanitized record does not encode with the derived schema."""

    reason = "encode_error"


# --- infrastructure ------------------------------------------------------------------------


class KafkaError(StreamprocError):
    """The broker refused or failed an operation streamproc needed."""


class LocalKafkaError(KafkaError):
    """The project's local broker could not be fetched, formatted, started or stopped."""


class LocalObserveError(StreamprocError):
    """The local Prometheus or Alertmanager could not be configured, started or stopped."""


class AclError(KafkaError):
    """ACL planning or application failed."""


# --- detector ------------------------------------------------------------------------------


class OffloadError(StreamprocError):
    """A sanitizer's offload helper process failed or went away."""


class DetectorError(StreamprocError):
    """The access-anomaly detector cannot train, load or score."""


class ModelLoadError(DetectorError):
    """A persisted model is missing, untrusted or of an incompatible version."""


# --- audit ---------------------------------------------------------------------------------


class AuditError(StreamprocError):
    """The audit trail cannot be written or read."""


class AuditVerificationError(AuditError):
    """The audit trail does not verify; the message says what and where."""
