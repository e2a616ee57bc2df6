"""Least-privilege ACLs from the topologies, applied and checked on the secured broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from streamproc.acl import apply_plan, load_principals, plan_acls
from streamproc.acl.bindings import Binding
from streamproc.cli.main import main
from streamproc.config.topology import load_topology
from tests.integration.security.conftest import (
    ADMIN,
    Deployment,
    SecureCluster,
    make_deployment,
    produce_one,
    read_one,
)
from tests.integration.workers import WorkerProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dep(secure_cluster: SecureCluster, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    d = make_deployment(secure_cluster, tmp_path_factory.mktemp("acl"))
    plan = plan_acls([load_topology(p) for p in d.topologies], load_principals(d.principals))
    diff = apply_plan(secure_cluster.admin(), plan)
    assert len(diff.create) == len(plan.bindings) and not diff.delete
    # One record on the sanitized topic, written as the broker's own super user.
    assert produce_one({"bootstrap.servers": secure_cluster.internal}, d.clean, b"clean") is None
    return d


def planned(d: Deployment) -> int:
    plan = plan_acls([load_topology(p) for p in d.topologies], load_principals(d.principals))
    return len(plan.bindings)


def cli(d: Deployment, *args: str) -> list[str]:
    return [
        *args,
        "--principals",
        str(d.principals),
        *(a for p in d.topologies for a in ("--topology", str(p))),
    ]


def test_training_consumer_reads_sanitized_but_not_raw(
    secure_cluster: SecureCluster, dep: Deployment
) -> None:
    conf = secure_cluster.config(dep.trainer)
    assert read_one(conf, dep.clean, dep.trainer_group + "a") == ("message", b"clean")
    assert read_one(conf, dep.raw, dep.trainer_group + "b") == (
        "error",
        "TOPIC_AUTHORIZATION_FAILED",
    )
    # A group outside its prefix is refused too.
    kind, err = read_one(conf, dep.clean, "someone-elses-group")
    assert (kind, err) == ("error", "GROUP_AUTHORIZATION_FAILED")


def test_producer_writes_raw_only(secure_cluster: SecureCluster, dep: Deployment) -> None:
    conf = secure_cluster.config(dep.producer)
    assert produce_one(conf, dep.raw) is None  # idempotent producer: topic WRITE suffices
    assert produce_one(conf, dep.clean) == "TOPIC_AUTHORIZATION_FAILED"
    kind, err = read_one(conf, dep.clean, "crm-reader")
    assert kind == "error" and err in ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED")


def test_worker_cannot_write_raw(secure_cluster: SecureCluster, dep: Deployment) -> None:
    conf = secure_cluster.config(dep.worker)
    assert produce_one(conf, dep.raw) == "TOPIC_AUTHORIZATION_FAILED"
    assert produce_one(conf, dep.lineage) is None


def test_on_call_reads_audit_not_sanitized(secure_cluster: SecureCluster, dep: Deployment) -> None:
    assert produce_one({"bootstrap.servers": secure_cluster.internal}, dep.audit, b"a") is None
    conf = secure_cluster.config(dep.oncall)
    assert read_one(conf, dep.audit, f"{dep.oncall}-x")[0] == "message"
    assert read_one(conf, dep.clean, f"{dep.oncall}-y") == ("error", "TOPIC_AUTHORIZATION_FAILED")


def test_apply_is_idempotent_and_removes_stale_managed_bindings(
    secure_cluster: SecureCluster,
    dep: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in secure_cluster.env(ADMIN).items():
        monkeypatch.setenv(k, v)
    n = planned(dep)
    assert main(cli(dep, "acl", "apply")) == 0
    assert capsys.readouterr().out.strip().endswith(f"create 0, delete 0, unchanged {n}")

    admin = secure_cluster.admin()
    stale = Binding(f"User:{dep.trainer}", "TOPIC", dep.raw, "LITERAL", "READ")
    foreign = Binding("User:not-managed", "TOPIC", dep.clean, "LITERAL", "READ")
    deny = Binding(f"User:{dep.producer}", "TOPIC", dep.clean, "LITERAL", "READ", "DENY")
    from streamproc.acl.admin import create, delete, describe

    create(admin, [stale, foreign, deny])
    assert main(cli(dep, "acl", "apply", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert f"would delete  {stale}" in out
    assert str(foreign) not in out and str(deny) not in out
    assert stale in describe(admin, stale.principal)  # dry run changed nothing

    assert main(cli(dep, "acl", "apply")) == 0
    assert f"create 0, delete 1, unchanged {n}" in capsys.readouterr().out
    assert main(cli(dep, "acl", "apply")) == 0
    assert f"create 0, delete 0, unchanged {n}" in capsys.readouterr().out
    held = describe(admin)
    assert stale not in held
    assert foreign in held and deny in held  # not ours: left alone
    delete(admin, [foreign, deny])


def test_plan_cli_prints_every_binding(dep: Deployment, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli(dep, "acl", "plan", "--json")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == planned(dep)
    assert any(f'"name": "{dep.app_id}-"' in line and '"PREFIXED"' in line for line in lines)


def test_worker_sanitizes_as_scram_user_over_tls(
    secure_cluster: SecureCluster,
    secure_worker: Callable[..., WorkerProcess],
    dep: Deployment,
    tmp_path: Path,
) -> None:
    """A real ``streamproc worker`` (Faust/aiokafka) with only the planned ACLs, over
    SASL_SSL + SCRAM-SHA-512 with hostname verification."""
    from streamproc.keys import Keyring
    from streamproc.policy import compile_plan
    from streamproc.testing.customers import customer_records, single_object
    from tests.integration.security.conftest import ROOT, consumer_of, poll_until

    keyring_path = tmp_path / "keyring.json"
    keyring = Keyring.generate()
    keyring.save(keyring_path)
    schema = compile_plan(ROOT / "schemas" / "customer_profile.avsc", keyring).source_schema
    worker = secure_worker(dep.worker, dep.topologies[0], keyring_path, dep.app_id)
    try:
        from confluent_kafka import Producer

        p = Producer({**secure_cluster.config(dep.producer), "enable.idempotence": True})
        for rec, _ in customer_records(10, seed=7):
            p.produce(dep.raw, value=single_object(schema, rec))
        assert p.flush(20) == 0
        got = 0
        with consumer_of(
            secure_cluster.config(dep.trainer), dep.clean, dep.trainer_group + "w"
        ) as c:
            while got < 11:  # 10 sanitized + the record the module fixture wrote
                msg = poll_until(c, timeout=30)
                assert msg is not None, worker.log_text()[-3000:]
                assert msg.error() is None, msg.error()
                got += 1
    finally:
        worker.stop()
    log = worker.log_text()
    assert "AuthorizationFailed" not in log, log[-3000:]
    assert secure_cluster.password(dep.worker) not in log
