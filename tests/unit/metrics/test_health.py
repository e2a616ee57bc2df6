"""Privacy-health metrics: data age, waiting age, key age, compliance checks, read back from
a fresh registry's exposition (what Prometheus scrapes), with an injected clock."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamproc.audit import AuditKind, AuditLog, CheckpointSigner, FileSink
from streamproc.config import Settings
from streamproc.config.topology import load_topology
from streamproc.errors import KeyNotFoundError, TopologyError
from streamproc.keys import Keyring
from streamproc.metrics import WorkerMetrics, compliance_inputs
from streamproc.metrics.health import CHECKS, DAY_S, AuditHealth, ComplianceInputs
from streamproc.pipeline.build import build_flow

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = str(ROOT / "schemas" / "customer_profile.avsc")
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def good_inputs(**kw: Any) -> ComplianceInputs:
    base = ComplianceInputs(
        fingerprint="fp1",
        approved_fingerprint="fp1",
        strict=True,
        unannotated_fields=0,
        key_created={"default": T0 - 10 * DAY_S},
        max_key_age_s=90 * DAY_S,
        dead_letter_budget=0.01,
    )
    return dataclasses.replace(base, **kw)


def scrape(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def worker(inputs: ComplianceInputs | None = None) -> tuple[WorkerMetrics, Clock]:
    m = WorkerMetrics()
    clock = Clock()
    m.health._clock = clock
    m.health.watch("t", inputs or good_inputs())
    return m, clock


def test_data_age_follows_the_newest_source_timestamp() -> None:
    m, clock = worker()
    assert ("streamproc_data_age_seconds", (("topology", "t"),)) not in scrape(m)
    m.health.sanitized("t", 10, 0, T0 - 4.0)
    m.health.sanitized("t", 10, 0, T0 - 9.0)  # an older straggler does not make data younger
    clock.now = T0 + 6.0
    got = scrape(m)
    assert got[("streamproc_data_age_seconds", (("topology", "t"),))] == pytest.approx(10.0)
    assert got[("streamproc_waiting_data_age_seconds", (("topology", "t"),))] == 0.0


def test_waiting_age_is_the_bound_while_records_wait() -> None:
    m, clock = worker()
    m.health.sanitized("t", 10, 0, T0 - 2.0)
    m.consumer_lag.labels("t", "0").set(0)
    m.consumer_lag.labels("t", "1").set(40)
    m.consumer_lag.labels("other", "0").set(7)
    clock.now = T0 + 3.0
    got = scrape(m)
    assert got[("streamproc_waiting_data_age_seconds", (("topology", "t"),))] == 5.0


def test_key_age_per_key() -> None:
    m, _clock = worker(good_inputs(key_created={"default": T0 - 5.0, "ids": T0 - DAY_S}))
    got = scrape(m)
    assert got[("streamproc_key_age_seconds", (("key", "default"), ("topology", "t")))] == 5.0
    assert got[("streamproc_key_age_seconds", (("key", "ids"), ("topology", "t")))] == DAY_S


def checks(m: WorkerMetrics) -> dict[str, float]:
    return {
        dict(labels)["check"]: v
        for (name, labels), v in scrape(m).items()
        if name == "streamproc_compliance_check"
    }


def test_a_compliant_topology_passes_every_check() -> None:
    m, _clock = worker()
    assert checks(m) == dict.fromkeys(CHECKS, 1.0)
    assert scrape(m)[("streamproc_compliant", (("topology", "t"),))] == 1.0


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"approved_fingerprint": None}, "policy_approved"),
        ({"approved_fingerprint": "fp0"}, "policy_approved"),
        ({"strict": False}, "strict"),
        ({"unannotated_fields": 1}, "no_unannotated_drops"),
        ({"key_created": {"default": T0, "old": T0 - 91 * DAY_S}}, "key_age"),
    ],
)
def test_each_check_fails_alone(change: dict[str, Any], failing: str) -> None:
    m, _clock = worker(good_inputs(**change))
    assert checks(m) == {c: (0.0 if c == failing else 1.0) for c in CHECKS}
    assert scrape(m)[("streamproc_compliant", (("topology", "t"),))] == 0.0


def test_dead_letter_budget_over_a_five_minute_window() -> None:
    m, clock = worker(good_inputs(dead_letter_budget=0.01))
    m.health.sanitized("t", 100, 5, None)  # 5 %: over budget
    assert checks(m)["dead_letter_budget"] == 0.0
    assert scrape(m)[("streamproc_dead_letter_share", (("topology", "t"),))] == 0.05
    clock.now = T0 + 301.0  # the bad batch left the window
    m.health.sanitized("t", 1000, 1, None)
    assert checks(m)["dead_letter_budget"] == 1.0
    assert scrape(m)[("streamproc_dead_letter_share", (("topology", "t"),))] == 0.001


def write(tmp: Path, compliance: dict[str, Any] | None) -> Path:
    doc: dict[str, Any] = {
        "name": "t",
        "source": {"topic": "a.raw", "schema": SCHEMA},
        "sink": {"topic": "a.clean"},
        "dead_letter": {"topic": "a.dlq"},
    }
    if compliance is not None:
        doc["compliance"] = compliance
    f = tmp / "t.yaml"
    f.write_text(yaml.safe_dump(doc))
    return f


def test_inputs_come_from_the_compiled_flow(tmp_path: Path) -> None:
    keyring = Keyring.generate()
    flow = build_flow(load_topology(write(tmp_path, None)), Settings(), keyring)
    pinned = {"approved_policy_fingerprint": flow.plan.fingerprint, "max_key_age_days": 30}
    flow = build_flow(load_topology(write(tmp_path, pinned)), Settings(), keyring)
    inputs = compliance_inputs(flow)
    assert inputs.fingerprint == inputs.approved_fingerprint == flow.plan.fingerprint
    assert inputs.strict is False
    # Some customer fields (credit_score, ...) carry no annotation: dropped, not strict.
    unannotated = [f for f in flow.plan.lineage if f.origin == "unannotated"]
    assert inputs.unannotated_fields == len(unannotated) > 0
    assert set(inputs.key_created) == set(flow.plan.key_versions)
    now = datetime.now(UTC).timestamp()
    assert all(now - 60 < c <= now for c in inputs.key_created.values())
    assert inputs.max_key_age_s == 30 * DAY_S
    assert inputs.dead_letter_budget == 0.001


@pytest.mark.parametrize(
    ("compliance", "key"),
    [
        ({"dead_letter_budget": 1.5}, "compliance.dead_letter_budget"),
        ({"dead_letter_budget": True}, "compliance.dead_letter_budget"),
        ({"max_key_age_days": 0}, "compliance.max_key_age_days"),
        ({"approved_policy_fingerprint": 7}, "compliance.approved_policy_fingerprint"),
        ({"approved": "x"}, "compliance.approved"),
    ],
)
def test_bad_compliance_keys_name_file_and_key(
    tmp_path: Path, compliance: dict[str, Any], key: str
) -> None:
    with pytest.raises(TopologyError, match=f"t.yaml: key '{key}'"):
        load_topology(write(tmp_path, compliance))


def test_keyring_reports_when_a_version_was_created() -> None:
    ring = Keyring.generate()
    first = ring.created("default")
    ring.rotate("default")
    assert ring.created("default", 1) == first
    assert ring.created("default") >= first
    assert datetime.now(UTC) - first < timedelta(minutes=1)
    with pytest.raises(KeyNotFoundError):
        ring.created("default", 9)


def test_audit_trail_metrics_follow_the_log(tmp_path: Path) -> None:
    clock = Clock()
    log = AuditLog(
        FileSink(tmp_path / "audit.log"),
        CheckpointSigner.generate(),
        checkpoint_every=2,
        clock=clock,
    )
    m = WorkerMetrics()
    m.health._clock = clock
    AuditHealth(m.registry, log, "w1", clock=clock)
    got = scrape(m)
    assert got[("streamproc_audit_entries", (("worker", "w1"),))] == 0.0
    assert got[("streamproc_audit_checkpoints", (("worker", "w1"),))] == 0.0
    assert ("streamproc_audit_checkpoint_age_seconds", (("worker", "w1"),)) not in got
    for i in range(5):
        log.append(AuditKind.WORKER_START, worker="w1", host="h", pid=i, topologies=[], topics=[])
    clock.now = T0 + 30.0
    got = scrape(m)
    assert got[("streamproc_audit_entries", (("worker", "w1"),))] == float(log.head[0] + 1)
    assert log.last_checkpoint is not None
    signed = log.last_checkpoint.n + 1
    assert got[("streamproc_audit_checkpoints", (("worker", "w1"),))] == signed >= 2
    assert got[("streamproc_audit_checkpoint_age_seconds", (("worker", "w1"),))] == (
        pytest.approx(30.0, abs=1e-3)
    )
    log.close()


def test_the_worker_metrics_export_the_audit_trail(tmp_path: Path) -> None:
    log = AuditLog(FileSink(tmp_path / "audit.log"), CheckpointSigner.generate())
    m = WorkerMetrics()
    m.watch_audit(log, "w2")
    assert scrape(m)[("streamproc_audit_checkpoints", (("worker", "w2"),))] == 0.0
    log.close()
