"""Tamper-evident audit trail: hash-chained entries, Ed25519-signed checkpoints, verifier.

Typical use in a process::

    log = AuditLog(FileSink(path), CheckpointSigner.from_file(key_path))
    log.append(AuditKind.WORKER_START, worker="w-1", host="node-3", pid=4242)
    ...
    log.close()   # writes a final checkpoint
"""

from __future__ import annotations

from streamproc.audit.encoding import Checkpoint, Entry
from streamproc.audit.events import SPECS, AuditKind
from streamproc.audit.log import AuditLog
from streamproc.audit.signing import CheckpointSigner, TrustedKeys, key_id, write_keypair
from streamproc.audit.sinks import (
    AuditSink,
    FileSink,
    KafkaSink,
    create_audit_topic,
    read_file,
    read_topic,
    trail_topic,
)
from streamproc.audit.verify import Finding, FindingKind, Report, verify_records

__all__ = [
    "SPECS",
    "AuditKind",
    "AuditLog",
    "AuditSink",
    "Checkpoint",
    "CheckpointSigner",
    "Entry",
    "FileSink",
    "Finding",
    "FindingKind",
    "KafkaSink",
    "Report",
    "TrustedKeys",
    "create_audit_topic",
    "key_id",
    "read_file",
    "read_topic",
    "trail_topic",
    "verify_records",
    "write_keypair",
]
