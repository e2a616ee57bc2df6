"""The detect worker as its own least-privilege principal on the secured broker.

A ``detect_worker`` in the principals file, the plan's bindings applied and nothing else:
the worker (without ``--enforce``, audit trail on) consumes the access topic over SASL_SSL +
SCRAM, keeps its state topic and writes a containment message for a staged exfiltration
and its audit entries; with the same credentials, a raw topic of a sanitize topology and
any topic outside its plan are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from streamproc.acl import apply_plan, load_principals, plan_acls
from streamproc.audit import trail_topic
from streamproc.audit.signing import write_keypair
from streamproc.config.topology import load_topology
from streamproc.testing.access import with_events
from tests.integration.security.conftest import (
    ADMIN,
    SecureCluster,
    make_detect_deployment,
    produce_one,
    read_one,
)
from tests.integration.security.test_enforce_from_detector import (
    _produce_trace,
    containments_secure,
)
from tests.integration.test_detector_agent import PARTITIONS, Scenario
from tests.integration.test_detector_agent import scenario as scenario
from tests.integration.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _committed(conf: dict, group: str, topic: str) -> int:
    c = Consumer({**conf, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum(max(0, tp.offset) for tp in c.committed(tps, timeout=10))
    finally:
        c.close()


@pytest.mark.parametrize("engine", ["hotpath", "agent"])
def test_detect_worker_runs_with_only_its_planned_acls(
    secure_cluster: SecureCluster,
    secure_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    scenario: Scenario,
    unique: str,
    engine: str,
) -> None:
    c = secure_cluster
    u = f"{unique}{engine[0]}"
    audit, other = f"audit-{u}", f"other-{u}"
    d = make_detect_deployment(
        c, tmp_path / "topologies", scenario, u, audit, other, audit_topic=audit
    )
    raw, clean, events, sink, access = d.raw, d.clean, d.events, d.sink, d.access
    assert produce_one({"bootstrap.servers": c.internal}, raw, b"raw-row") is None
    doc = yaml.safe_load(access.read_text())
    access.write_text(yaml.safe_dump({**doc, "audit_topic": audit}))
    detect, app_id = f"detect-{u}", f"det-{u}"
    principals = d.folder / "principals.yaml"
    principals.write_text(
        yaml.safe_dump(
            {
                "worker": {"principal": f"User:worker-{u}", "app_ids": [f"app-{u}"]},
                "detect_worker": {"principal": f"User:{detect}", "app_ids": [app_id]},
            }
        )
    )
    plan = plan_acls(
        [load_topology(d.customers), load_topology(access)],
        load_principals(principals),
    )
    apply_plan(c.admin(), plan)
    c.add_user(detect)

    # The audit trail on, to the worker's default trail (streamproc.audit.<app id>, absent
    # until the worker creates it: the plan grants CREATE and WRITE on it).
    write_keypair(tmp_path / "audit.pem", tmp_path / "audit.pub")
    signing = {"STREAMPROC_AUDIT_SIGNING_KEY": str(tmp_path / "audit.pem")}
    worker = secure_worker(
        detect, access, scenario.keyring, app_id, "--engine", engine, env=signing, wait_ready=90
    )
    admin_conf = c.config(ADMIN)
    trace = with_events(scenario.normal, scenario.exfil)
    try:
        _produce_trace(admin_conf, events, trace)
        got = containments_secure(admin_conf, sink)
        assert [m["principal"] for m in got] == [scenario.victim], worker.log_text()[-3000:]
    finally:
        assert worker.stop() == 0, worker.log_text()[-3000:]
    log = worker.log_text()
    assert "AuthorizationFailed" not in log and "AUTHORIZATION_FAILED" not in log, log[-3000:]
    assert c.password(detect) not in log
    assert _committed(admin_conf, app_id, events) == len(trace)
    assert read_one(admin_conf, trail_topic(app_id), f"audit-reader-{u}")[0] == "message"

    # The same credentials outside the plan: refused. (The worker has left its group, so
    # these consumers can use it without joining a live one.)
    conf = c.config(detect, tls=True)
    assert read_one(conf, raw, app_id) == ("error", "TOPIC_AUTHORIZATION_FAILED")
    assert read_one(conf, events, f"not-{app_id}") == ("error", "GROUP_AUTHORIZATION_FAILED")
    for topic in (clean, raw, events, other):
        assert produce_one(conf, topic) == "TOPIC_AUTHORIZATION_FAILED", topic
    assert produce_one(conf, sink) is None
