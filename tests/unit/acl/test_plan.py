"""Principals file validation and the pure ACL plan."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from streamproc.acl import (
    Binding,
    data_topics,
    deny_bindings,
    diff,
    kafka_principal,
    load_principals,
    plan_acls,
)
from streamproc.config.topology import load_topology
from streamproc.errors import AclError

ROOT = Path(__file__).resolve().parents[3]
TOPOLOGIES = [load_topology(ROOT / "topologies" / n) for n in ("customers.yaml", "access.yaml")]
GOOD = {
    "worker": {"principal": "User:streamproc", "app_ids": ["streamproc"]},
    "producers": [{"principal": "crm", "topics": ["customers.raw"]}],
    "training_consumers": [{"principal": "User:ml", "group_prefix": "ml-"}],
    "on_call": [{"principal": "User:oncall", "group_prefix": "oncall-"}],
    "retired": ["User:old"],
}


def write(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "principals.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def plan_for(tmp_path: Path, doc: dict):  # type: ignore[no-untyped-def]
    return plan_acls(TOPOLOGIES, load_principals(write(tmp_path, doc)))


def ops(plan, principal: str) -> set[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    return {
        (b.operation, b.resource_type, b.name, b.pattern)
        for b in plan.bindings
        if b.principal == principal
    }


def test_repository_principals_file_plans() -> None:
    plan = plan_acls(TOPOLOGIES, load_principals(ROOT / "topologies" / "principals.yaml"))
    assert all(b.permission == "ALLOW" and b.host == "*" for b in plan.bindings)
    assert "User:streamproc" in plan.managed


def test_least_privilege_per_role(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, GOOD)
    assert ops(plan, "User:crm") == {("WRITE", "TOPIC", "customers.raw", "LITERAL")}
    assert ops(plan, "User:ml") == {
        ("READ", "TOPIC", "customers.clean", "LITERAL"),
        ("READ", "GROUP", "ml-", "PREFIXED"),
    }
    assert ops(plan, "User:oncall") == {
        ("READ", "TOPIC", "access.containment", "LITERAL"),
        ("READ", "TOPIC", "streamproc.audit", "LITERAL"),
        # the worker's default trail (streamproc.audit.trail_topic of its app id)
        ("READ", "TOPIC", "streamproc.audit.streamproc", "LITERAL"),
        ("READ", "GROUP", "oncall-", "PREFIXED"),
    }
    worker = ops(plan, "User:streamproc")
    assert ("READ", "TOPIC", "customers.raw", "LITERAL") in worker
    assert ("READ", "TOPIC", "access.events", "LITERAL") in worker
    assert ("READ", "GROUP", "streamproc", "LITERAL") in worker
    for op in ("CREATE", "READ", "WRITE"):
        assert (op, "TOPIC", "streamproc-", "PREFIXED") in worker
    for t in ("customers.clean", "customers.dlq", "access.containment", "access.dlq"):
        assert ("WRITE", "TOPIC", t, "LITERAL") in worker
    for t in ("streamproc.lineage", "streamproc.audit"):
        assert ("WRITE", "TOPIC", t, "LITERAL") in worker
    # The audit log creates its topic at start (CREATE is checked before "already exists").
    assert ("CREATE", "TOPIC", "streamproc.audit", "LITERAL") in worker
    assert ("CREATE", "TOPIC", "streamproc.lineage", "LITERAL") not in worker
    # ... and writes its trail to streamproc.audit.<app id> unless told otherwise
    for op in ("WRITE", "CREATE"):
        assert (op, "TOPIC", "streamproc.audit.streamproc", "LITERAL") in worker
    # Never: the worker writing raw, or reading what it writes; nobody but it reads raw.
    assert ("WRITE", "TOPIC", "customers.raw", "LITERAL") not in worker
    assert ("READ", "TOPIC", "customers.clean", "LITERAL") not in worker
    raw_readers = {
        b.principal for b in plan.bindings if b.name.endswith(".raw") and b.operation == "READ"
    }
    assert raw_readers == {"User:streamproc"}
    # The shipped customers topology is exactly_once: the worker's transactional ids only.
    txn = {(b.principal, b.name) for b in plan.bindings if b.resource_type == "TRANSACTIONAL_ID"}
    assert txn == {("User:streamproc", "streamproc-")}
    assert plan.managed == {"User:streamproc", "User:crm", "User:ml", "User:oncall", "User:old"}


def test_exactly_once_adds_transactional_ids(tmp_path: Path) -> None:
    import dataclasses

    principals = load_principals(write(tmp_path, GOOD))
    eo = [dataclasses.replace(TOPOLOGIES[0], processing_guarantee="exactly_once")]
    alo = [dataclasses.replace(TOPOLOGIES[0], processing_guarantee="at_least_once")]
    binding = ("WRITE", "TRANSACTIONAL_ID", "streamproc-", "PREFIXED")
    assert binding in ops(plan_acls(eo, principals), "User:streamproc")
    assert binding not in ops(plan_acls(alo, principals), "User:streamproc")


@pytest.mark.parametrize(
    ("doc", "key", "message"),
    [
        (
            {**GOOD, "producers": [{"principal": "crm", "topics": ["customers.clean"]}]},
            "producers[0].topics[0]",
            "not the source topic",
        ),
        (
            {
                **GOOD,
                "training_consumers": [
                    {"principal": "ml", "group_prefix": "ml-", "topics": ["customers.raw"]}
                ],
            },
            "training_consumers[0].topics[0]",
            "sanitized topics only",
        ),
    ],
)
def test_plan_refuses_topics_outside_the_role(tmp_path: Path, doc, key, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AclError, match=rf"principals.yaml: key '{re.escape(key)}'.*{message}"):
        plan_for(tmp_path, doc)


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({k: v for k, v in GOOD.items() if k != "worker"}, "worker"),
        ({**GOOD, "extra": 1}, "extra"),
        ({**GOOD, "worker": {"principal": "Group:x"}}, "worker.principal"),
        ({**GOOD, "worker": {"principal": "w", "app_ids": []}}, "worker.app_ids"),
        ({**GOOD, "producers": [{"principal": "p"}]}, "producers[0].topics"),
        ({**GOOD, "producers": [{"principal": "p", "topics": ["a b"]}]}, "producers[0].topics[0]"),
        (
            {**GOOD, "training_consumers": [{"principal": "ml"}]},
            "training_consumers[0].group_prefix",
        ),
        (
            {**GOOD, "on_call": [{"principal": "o", "group_prefix": "o-", "topics": ["x"]}]},
            "on_call[0].topics",
        ),
        ({**GOOD, "retired": ["User:crm"]}, "retired[0]"),
        (
            {**GOOD, "on_call": [{"principal": "User:streamproc", "group_prefix": "o-"}]},
            "on_call[0].principal",
        ),
    ],
)
def test_principals_errors_name_file_and_key(tmp_path: Path, doc, key) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AclError, match=rf"principals.yaml: key '{re.escape(key)}'"):
        load_principals(write(tmp_path, doc))


def test_principals_file_not_yaml(tmp_path: Path) -> None:
    p = tmp_path / "principals.yaml"
    p.write_text("worker: [unclosed\n")
    with pytest.raises(AclError, match="not valid YAML at line"):
        load_principals(p)


def test_diff_manages_only_allow_bindings_of_managed_principals(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, GOOD)
    keep = next(iter(plan.bindings))
    stale = Binding("User:old", "TOPIC", "customers.clean", "LITERAL", "READ")
    foreign = Binding("User:someone", "TOPIC", "customers.clean", "LITERAL", "READ")
    deny = Binding("User:ml", "TOPIC", "customers.clean", "LITERAL", "READ", "DENY")
    d = diff(plan, {keep, stale, foreign, deny})
    assert d.delete == (stale,)
    assert set(d.create) == plan.bindings - {keep}
    assert d.unchanged == 1
    assert diff(plan, set(plan.bindings)).changes == 0


def test_containment_denies_read_and_write_on_data_topics() -> None:
    topics = data_topics(TOPOLOGIES)
    assert set(topics) == {
        "customers.raw",
        "customers.clean",
        "customers.dlq",
        "access.events",
        "access.dlq",
    }
    denied = deny_bindings("alice", topics)
    assert {(b.operation, b.permission, b.principal) for b in denied} == {
        ("READ", "DENY", "User:alice"),
        ("WRITE", "DENY", "User:alice"),
    }
    assert len(denied) == 2 * len(topics)
    assert kafka_principal("User:alice") == "User:alice"


def test_detect_worker_gets_the_detect_topologies_only(tmp_path: Path) -> None:
    doc = {**GOOD, "detect_worker": {"principal": "User:detect", "app_ids": ["det"]}}
    plan = plan_for(tmp_path, doc)
    name = TOPOLOGIES[1].name
    assert ops(plan, "User:detect") == {
        ("READ", "TOPIC", "access.events", "LITERAL"),
        ("WRITE", "TOPIC", "access.containment", "LITERAL"),
        ("CREATE", "TOPIC", "access.containment", "LITERAL"),
        ("WRITE", "TOPIC", "access.dlq", "LITERAL"),
        ("CREATE", "TOPIC", "access.dlq", "LITERAL"),
        ("WRITE", "TOPIC", "streamproc.audit", "LITERAL"),
        ("CREATE", "TOPIC", "streamproc.audit", "LITERAL"),
        # its own default trail (streamproc.audit.trail_topic), which on-call reads
        ("WRITE", "TOPIC", "streamproc.audit.det", "LITERAL"),
        ("CREATE", "TOPIC", "streamproc.audit.det", "LITERAL"),
        ("READ", "GROUP", "det", "LITERAL"),
        # Its state topic by name (the hot path's and the agent table's changelog), no prefix.
        *(
            (op, "TOPIC", f"det-{name}-principals-changelog", "LITERAL")
            for op in ("CREATE", "READ", "WRITE")
        ),
    }
    # The worker keeps the sanitize topologies and loses the detect ones.
    worker = ops(plan, "User:streamproc")
    assert ("READ", "TOPIC", "customers.raw", "LITERAL") in worker
    assert not {b for b in worker if b[2].startswith("access.")}
    assert plan.managed >= {"User:detect", "User:streamproc"}
    assert ("READ", "TOPIC", "streamproc.audit.det", "LITERAL") in ops(plan, "User:oncall")
    # Without one, the worker holds the detect bindings as before.
    assert ("READ", "TOPIC", "access.events", "LITERAL") in ops(
        plan_for(tmp_path, GOOD), "User:streamproc"
    )


@pytest.mark.parametrize(
    ("detect_worker", "key"),
    [
        ({"principal": "User:streamproc"}, "detect_worker.principal"),
        ({"principal": "Group:x"}, "detect_worker.principal"),
        ({"principal": "d", "app_ids": []}, "detect_worker.app_ids"),
        ({"principal": "d", "group": "x"}, "detect_worker.group"),
        ({"principal": "d", "app_ids": ["streamproc"]}, "detect_worker.app_ids[0]"),
        ({"principal": "d", "app_ids": ["x", "streamproc-det"]}, "detect_worker.app_ids[1]"),
    ],
)
def test_detect_worker_errors_name_file_and_key(tmp_path: Path, detect_worker, key) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AclError, match=rf"principals.yaml: key '{re.escape(key)}'"):
        load_principals(write(tmp_path, {**GOOD, "detect_worker": detect_worker}))
