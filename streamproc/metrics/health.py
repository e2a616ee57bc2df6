"""Privacy-health metrics of sanitize topologies: data age, key age, compliance status.

Computed when Prometheus scrapes (a custom collector), from what the sanitizer agent reports
per batch (:meth:`PrivacyHealth.sanitized`) and what was fixed at start-up
(:class:`ComplianceInputs`). Labels are topology, key and check names only. Meanings:
``docs/metrics.md``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

DAY_S = 86_400.0
WINDOW_S = 300.0  # dead-letter share window


@dataclass(frozen=True)
class ComplianceInputs:
    """What one topology's compliance is judged on, fixed when its policy compiles."""

    fingerprint: str
    approved_fingerprint: str | None
    strict: bool
    unannotated_fields: int  # source fields dropped because they had no annotation
    key_created: Mapping[str, float]  # key name -> creation time (epoch s) of the version used
    max_key_age_s: float
    dead_letter_budget: float  # highest acceptable share of dead-lettered records


@dataclass
class _State:
    inputs: ComplianceInputs
    last_source_ts: float | None = None
    batches: deque[tuple[float, int, int]] = field(default_factory=deque)  # (t, in, dead)

    def dead_share(self, now: float) -> float:
        while self.batches and self.batches[0][0] < now - WINDOW_S:
            self.batches.popleft()
        n_in = sum(b[1] for b in self.batches)
        return sum(b[2] for b in self.batches) / n_in if n_in else 0.0


# check name -> (meaning, predicate): the table docs/metrics.md and the runbook follow.
CHECKS: Mapping[str, tuple[str, Callable[[_State, float], bool]]] = {
    "policy_approved": (
        "the policy fingerprint equals compliance.approved_policy_fingerprint",
        lambda s, now: s.inputs.fingerprint == s.inputs.approved_fingerprint,
    ),
    "strict": (
        "the topology compiles its policy with strict: true",
        lambda s, now: s.inputs.strict,
    ),
    "no_unannotated_drops": (
        "no source field is dropped only because it has no annotation",
        lambda s, now: s.inputs.unannotated_fields == 0,
    ),
    "key_age": (
        "every key version in use is younger than compliance.max_key_age_days",
        lambda s, now: all(now - c < s.inputs.max_key_age_s for c in s.inputs.key_created.values()),
    ),
    "dead_letter_budget": (
        "dead-lettered share over the last 5 minutes within compliance.dead_letter_budget",
        lambda s, now: s.dead_share(now) <= s.inputs.dead_letter_budget,
    ),
}


class PrivacyHealth(Collector):
    """Per-topology privacy health, exported at scrape time into ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        lag: Gauge | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lag = lag
        self._clock = clock
        self._states: dict[str, _State] = {}
        registry.register(self)

    def watch(self, topology: str, inputs: ComplianceInputs) -> None:
        self._states[topology] = _State(inputs)

    def sanitized(
        self, topology: str, n_in: int, n_dead: int, newest_source_ts: float | None
    ) -> None:
        """One batch done: its size, dead letters, newest source timestamp (epoch s)."""
        state = self._states[topology]
        now = self._clock()
        state.batches.append((now, n_in, n_dead))
        if newest_source_ts is not None:
            state.last_source_ts = max(newest_source_ts, state.last_source_ts or 0.0)
        state.dead_share(now)  # prune

    def _lag_by_topology(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self._lag is None:
            return out
        for metric in self._lag.collect():
            for s in metric.samples:
                t = s.labels.get("topology", "")
                out[t] = out.get(t, 0.0) + s.value
        return out

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._clock()
        lag = self._lag_by_topology()
        fams = _families()
        for name, st in sorted(self._states.items()):
            if st.last_source_ts is not None:
                age = max(0.0, now - st.last_source_ts)
                fams["data_age"].add_metric([name], age)
                # The oldest waiting record was written after the last one sanitized: its age
                # is at most that one's (an upper bound; 0 when nothing waits).
                fams["waiting_age"].add_metric([name], age if lag.get(name, 0.0) > 0 else 0.0)
            for key, created in sorted(st.inputs.key_created.items()):
                fams["key_age"].add_metric([name, key], max(0.0, now - created))
            fams["dead_share"].add_metric([name], st.dead_share(now))
            results = {check: pred(st, now) for check, (_m, pred) in CHECKS.items()}
            for check, ok in results.items():
                fams["check"].add_metric([name, check], 1.0 if ok else 0.0)
            fams["compliant"].add_metric([name], 1.0 if all(results.values()) else 0.0)
        yield from fams.values()


def _families() -> dict[str, GaugeMetricFamily]:
    g = GaugeMetricFamily
    return {
        "data_age": g(
            "streamproc_data_age_seconds",
            "now minus the source timestamp of the newest record sanitized",
            labels=["topology"],
        ),
        "waiting_age": g(
            "streamproc_waiting_data_age_seconds",
            "upper bound of the age of the oldest record still waiting (0 when no lag)",
            labels=["topology"],
        ),
        "key_age": g(
            "streamproc_key_age_seconds",
            "age of the key version a topology's policy uses",
            labels=["topology", "key"],
        ),
        "dead_share": g(
            "streamproc_dead_letter_share",
            "share of records dead-lettered over the last 5 minutes",
            labels=["topology"],
        ),
        "check": g(
            "streamproc_compliance_check",
            "1 when the topology passes the compliance check, else 0",
            labels=["topology", "check"],
        ),
        "compliant": g(
            "streamproc_compliant",
            "1 when the topology passes every compliance check, else 0",
            labels=["topology"],
        ),
    }


def compliance_inputs(flow: Any) -> ComplianceInputs:
    """The inputs of one :class:`~streamproc.pipeline.SanitizeFlow` (plan, topology, keyring)."""
    plan, topo, keyring = flow.plan, flow.topology, flow.keyring
    spec = topo.compliance
    created = {
        key: keyring.created(key, version).timestamp() for key, version in plan.key_versions.items()
    }
    return ComplianceInputs(
        fingerprint=plan.fingerprint,
        approved_fingerprint=spec.approved_policy_fingerprint,
        strict=plan.strict,
        unannotated_fields=sum(1 for f in plan.lineage if f.origin == "unannotated"),
        key_created=created,
        max_key_age_s=spec.max_key_age_days * DAY_S,
        dead_letter_budget=spec.dead_letter_budget,
    )


class AuditHealth(Collector):
    """The worker's audit trail as metrics: entries written, checkpoints signed, and the age
    of the last checkpoint (read from the :class:`~streamproc.audit.AuditLog` at scrape)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        audit: Any,
        worker: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._audit, self._worker, self._clock = audit, worker, clock
        registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        seq, _head = self._audit.head
        ckpt = self._audit.last_checkpoint
        entries = GaugeMetricFamily(
            "streamproc_audit_entries", "audit entries written", labels=["worker"]
        )
        entries.add_metric([self._worker], float(seq + 1))
        signed = GaugeMetricFamily(
            "streamproc_audit_checkpoints",
            "signed audit checkpoints in the trail (last checkpoint number + 1)",
            labels=["worker"],
        )
        signed.add_metric([self._worker], float(ckpt.n + 1) if ckpt is not None else 0.0)
        yield entries
        yield signed
        if ckpt is not None:
            age = GaugeMetricFamily(
                "streamproc_audit_checkpoint_age_seconds",
                "seconds since the last signed audit checkpoint",
                labels=["worker"],
            )
            when = datetime.strptime(ckpt.ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            age.add_metric([self._worker], max(0.0, self._clock() - when.timestamp()))
            yield age
