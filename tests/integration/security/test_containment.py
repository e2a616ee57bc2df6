"""Containment that bites: DENY ACLs refuse a live consumer; release restores access."""

from __future__ import annotations

import json

import pytest

from streamproc.acl import Enforcer, apply_plan, contained, data_topics, load_principals, plan_acls
from streamproc.audit import AuditLog, FileSink, read_file
from streamproc.cli.main import main
from streamproc.config.topology import load_topology
from streamproc.errors import AclError
from tests.integration.security.conftest import (
    ADMIN,
    Deployment,
    SecureCluster,
    consumer_of,
    make_deployment,
    poll_until,
    produce_one,
    read_one,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dep(secure_cluster: SecureCluster, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    d = make_deployment(secure_cluster, tmp_path_factory.mktemp("containment"))
    plan = plan_acls([load_topology(p) for p in d.topologies], load_principals(d.principals))
    apply_plan(secure_cluster.admin(), plan)
    return d


def test_enforce_refuses_a_live_consumer_and_release_restores_it(
    secure_cluster: SecureCluster,
    dep: Deployment,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    internal = {"bootstrap.servers": secure_cluster.internal}
    assert produce_one(internal, dep.clean, b"before") is None
    topologies = [load_topology(p) for p in dep.topologies]
    audit_path = tmp_path / "audit.jsonl"
    audit = AuditLog(FileSink(audit_path), None)
    enforcer = Enforcer(
        secure_cluster.admin(),
        data_topics(topologies),
        protected=[f"User:{dep.worker}"],
        audit=audit,
    )
    conf = secure_cluster.config(dep.trainer)
    with consumer_of(conf, dep.clean, dep.trainer_group + "live") as live:
        first = poll_until(live, timeout=20)
        assert first is not None and first.error() is None and first.value() == b"before"

        # The injected incident: the detector flags the training consumer.
        res = enforcer.enforce(dep.trainer, reason="exfiltration", incident="inc-1", score=0.9)
        assert res.principal == f"User:{dep.trainer}"
        assert dep.clean in res.topics and dep.raw in res.topics
        assert enforcer.enforce(dep.trainer, reason="exfiltration").changes == 0  # idempotent

        assert produce_one(internal, dep.clean, b"after") is None
        refused = poll_until(live, timeout=20, want=lambda m: m.error() is not None)
        assert refused is not None, "the live consumer kept reading after containment"
        assert refused.error().name() == "TOPIC_AUTHORIZATION_FAILED"
    assert read_one(conf, dep.clean, dep.trainer_group + "new") == (
        "error",
        "TOPIC_AUTHORIZATION_FAILED",
    )
    assert contained(secure_cluster.admin(), dep.trainer)[f"User:{dep.trainer}"] == res.topics

    # `acl apply` does not lift a containment.
    plan = plan_acls(topologies, load_principals(dep.principals))
    assert apply_plan(secure_cluster.admin(), plan).changes == 0
    assert read_one(conf, dep.clean, dep.trainer_group + "new2")[0] == "error"

    # On-call releases by hand; the principal reads again.
    for k, v in secure_cluster.env(ADMIN).items():
        monkeypatch.setenv(k, v)
    argv = ["containment", "release", dep.trainer, "--why", "false positive", "--incident"]
    assert main([*argv, "inc-1", "--audit-file", str(audit_path)]) == 0
    assert "released" in capsys.readouterr().out
    assert read_one(conf, dep.clean, dep.trainer_group + "again")[0] == "message"
    assert contained(secure_cluster.admin(), dep.trainer) == {}
    audit.close()

    kinds = [json.loads(r)["kind"] for _, r in read_file(audit_path)]
    assert "containment.apply" in kinds and "containment.release" in kinds
    assert kinds.count("acl.change") == 2 * 2 * len(res.topics)  # created, then deleted


def test_enforcer_never_contains_a_protected_principal(
    secure_cluster: SecureCluster, dep: Deployment
) -> None:
    enforcer = Enforcer(secure_cluster.admin(), [dep.clean], protected=[dep.worker])
    with pytest.raises(AclError, match="protected"):
        enforcer.enforce(f"User:{dep.worker}")
    assert contained(secure_cluster.admin(), dep.worker) == {}


def test_cli_enforce_blocks_a_producer_until_release(
    secure_cluster: SecureCluster,
    dep: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in secure_cluster.env(ADMIN).items():
        monkeypatch.setenv(k, v)
    topo_args = [a for p in dep.topologies for a in ("--topology", str(p))]
    conf = secure_cluster.config(dep.producer)
    assert produce_one(conf, dep.raw) is None
    assert main(["containment", "enforce", f"User:{dep.producer}", *topo_args]) == 0
    assert "contained" in capsys.readouterr().out
    assert main(["containment", "status"]) == 0
    assert f"User:{dep.producer}: " in capsys.readouterr().out
    assert produce_one(conf, dep.raw, idempotent=False) == "TOPIC_AUTHORIZATION_FAILED"
    # Denied WRITE on its only topic, an idempotent producer cannot even get a producer id
    # (fatal CLUSTER_AUTHORIZATION_FAILED; librdkafka then purges the record).
    assert produce_one(conf, dep.raw) is not None
    assert main(["containment", "release", dep.producer]) == 0
    assert produce_one(conf, dep.raw) is None
