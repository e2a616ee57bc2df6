"""Prometheus metrics of a worker. The registry is an argument (a fresh one in tests).

Labels hold topology names, transform actions, dead-letter reasons, key names, partitions
and containment actions: never a value from a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from streamproc.metrics.health import AuditHealth, PrivacyHealth

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    """Every metric a streamproc worker exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_in = Counter(
            "streamproc_records_in",
            "records consumed from a source topic",
            ["topology"],
            registry=r,
        )
        self.records_out = Counter(
            "streamproc_records_out", "sanitized records produced", ["topology"], registry=r
        )
        self.dead_letters = Counter(
            "streamproc_dead_letters", "records sent to the DLQ", ["topology", "reason"], registry=r
        )
        self.transforms = Counter(
            "streamproc_transforms", "field transforms applied", ["topology", "action"], registry=r
        )
        self.processing = Histogram(
            "streamproc_processing_seconds",
            "time from the source record's timestamp to its outcome being sent",
            ["topology"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # The hot path's commits, part by part (streamproc.runtime.committimes): under
        # exactly_once a record is visible only after its transaction's commit.
        self.commit = Histogram(
            "streamproc_commit_seconds",
            "time of one part of a hot-path commit (send_offsets, flush, commit_txn, "
            "commit_offsets, total) or of one fetched batch's processing (batch)",
            ["part"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "streamproc_consumer_lag",
            "records behind the source end",
            ["topology", "partition"],
            registry=r,
        )
        self.key_version = Gauge(
            "streamproc_key_version",
            "key version in use by a policy",
            ["topology", "key"],
            registry=r,
        )
        self.access_events = Counter(
            "streamproc_access_events", "access events scored", ["topology"], registry=r
        )
        self.anomalies = Counter(
            "streamproc_anomalies", "access events over the threshold", ["topology"], registry=r
        )
        self.containments = Counter(
            "streamproc_containments",
            "containment messages emitted",
            ["topology", "action"],
            registry=r,
        )

        self._add_privacy_gauges(r)
        # Data age, key age, compliance (streamproc.metrics.health).
        self.health = PrivacyHealth(r, self.consumer_lag)

    def _add_privacy_gauges(self, r: CollectorRegistry) -> None:
        """Exposure of the output (k-anonymity) and per-subject DP budgets, per topology."""
        # Re-identification risk of the worker's own output over a rolling window
        # (streamproc.risk.RollingRisk); labels hold the topology name only.
        self.output_k_min = Gauge(
            "streamproc_output_k_min",
            "smallest equivalence class on the quasi-identifiers of the last N sanitized records",
            ["topology"],
            registry=r,
        )
        self.output_unique_share = Gauge(
            "streamproc_output_unique_share",
            "share of the last N sanitized records unique on their quasi-identifiers",
            ["topology"],
            registry=r,
        )
        self.output_below_k_share = Gauge(
            "streamproc_output_below_k_share",
            "share of the last N sanitized records in classes smaller than the policy's k",
            ["topology"],
            registry=r,
        )

        # Delay-bounded k-anonymity in the worker (streamproc.runtime.grouped).
        self.anonymity_buffered = Gauge(
            "streamproc_anonymity_buffered",
            "records waiting for their k-anonymous group",
            ["topology"],
            registry=r,
        )
        self.anonymity_released = Counter(
            "streamproc_anonymity_released",
            "records released by the k-anonymity buffer",
            ["topology"],
            registry=r,
        )
        self.anonymity_suppressed = Counter(
            "streamproc_anonymity_suppressed",
            "records released with every quasi-identifier suppressed (no group in time)",
            ["topology"],
            registry=r,
        )
        self.anonymity_delay = Histogram(
            "streamproc_anonymity_delay_seconds",
            "time a record waited in the k-anonymity buffer (bounded by max_delay_ms)",
            ["topology"],
            buckets=(0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.information_loss = Gauge(
            "streamproc_information_loss",
            "mean normalized certainty penalty of a generalized field (0 exact, 1 suppressed)",
            ["topology", "field"],
            registry=r,
        )

        # Per-subject DP budgets of the worker's flows (streamproc.budget).
        self.dp_budget_spent = Gauge(
            "streamproc_dp_budget_spent",
            "epsilon granted so far, summed over the flow's subjects and budgeted fields",
            ["topology"],
            registry=r,
        )
        self.dp_budget_exhausted = Gauge(
            "streamproc_dp_budget_exhausted_subjects",
            "subjects whose DP budget ran out at least once (later values repeated or nulled)",
            ["topology"],
            registry=r,
        )
        self.dp_budget_future_refused = Gauge(
            "streamproc_dp_budget_future_refused",
            "budgeted records stamped more than an hour after the worker's clock, so given no "
            "fresh noise (repeated or nulled): a producer's clock is wrong",
            ["topology"],
            registry=r,
        )

    def flow_state(self, topology: str, state: Mapping[str, Any]) -> None:
        """Export a flow's combined state (``SanitizeFlow.combined_state``): exposure of its
        output and its DP budgets. Names and numbers only."""
        exposure = state.get("exposure")
        if exposure is not None and exposure["k_min"] is not None:
            self.output_k_min.labels(topology).set(exposure["k_min"])
            self.output_unique_share.labels(topology).set(exposure["unique_share"])
            self.output_below_k_share.labels(topology).set(exposure["below_k_share"])
        budget = state.get("budget")
        if budget is not None:
            self.dp_budget_spent.labels(topology).set(budget["epsilon_spent"])
            self.dp_budget_exhausted.labels(topology).set(budget["exhausted_subjects"])
            self.dp_budget_future_refused.labels(topology).set(budget.get("future_refused", 0))

    def watch_audit(self, audit: object, worker: str) -> None:
        """Export the worker's audit trail (entries, checkpoints, checkpoint age)."""
        AuditHealth(self.registry, audit, worker)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``addr:port`` (0 = do not serve)."""
        if port:
            start_http_server(port, addr=addr, registry=self.registry)
