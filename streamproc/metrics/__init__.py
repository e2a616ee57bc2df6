"""Prometheus metrics of a worker (a registry per instance, so tests get a fresh one)."""

from __future__ import annotations

from streamproc.metrics.health import (
    AuditHealth,
    ComplianceInputs,
    PrivacyHealth,
    compliance_inputs,
)
from streamproc.metrics.worker import LATENCY_BUCKETS, WorkerMetrics

__all__ = [
    "LATENCY_BUCKETS",
    "AuditHealth",
    "ComplianceInputs",
    "PrivacyHealth",
    "WorkerMetrics",
    "compliance_inputs",
]
