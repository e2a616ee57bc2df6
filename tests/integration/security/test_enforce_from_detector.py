"""Containment that bites, end to end: a staged exfiltration reaches a detector worker run
with ``--enforce`` on the secured broker (SCRAM + StandardAuthorizer); the containment
message puts DENY ACLs on the victim principal, whose consumer of a sanitized topic is then
refused; ``streamproc containment release`` lets it read again."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourceType
from confluent_kafka.admin import ResourcePatternType as Pattern

from streamproc.cli.main import main
from streamproc.testing.access import AccessEncoder, with_events
from tests.integration.security.conftest import (
    ADMIN,
    SecureCluster,
    make_detect_deployment,
    read_one,
)
from tests.integration.test_detector_agent import Scenario
from tests.integration.test_detector_agent import scenario as scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _produce_trace(conf: dict, topic: str, events: list[dict]) -> None:
    enc = AccessEncoder()
    p = Producer({**conf, "linger.ms": 5, "enable.idempotence": True})
    for e in events:
        while True:
            try:
                p.produce(topic, value=enc.encode(e), key=enc.key(e))
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0


def test_containment_message_denies_and_release_restores(
    secure_cluster: SecureCluster,
    worker_factory,
    tmp_path: Path,
    scenario: Scenario,
    unique,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = secure_cluster
    anonymity = {"max_delay_ms": 1000}
    d = make_detect_deployment(c, tmp_path / "topologies", scenario, unique, anonymity=anonymity)
    clean, events, sink, access = d.clean, d.events, d.sink, d.access

    # The victim is a training consumer: allowed to read the sanitized topic.
    victim = scenario.victim
    c.add_user(victim)
    admin = c.admin()
    grants = [
        AclBinding(
            ResourceType.TOPIC,
            clean,
            Pattern.LITERAL,
            f"User:{victim}",
            "*",
            AclOperation.READ,
            AclPermissionType.ALLOW,
        ),
        AclBinding(
            ResourceType.GROUP,
            f"{victim}-",
            Pattern.PREFIXED,
            f"User:{victim}",
            "*",
            AclOperation.READ,
            AclPermissionType.ALLOW,
        ),
    ]
    for fut in admin.create_acls(grants).values():
        fut.result(timeout=30)
    admin_conf = c.config(ADMIN)
    p = Producer(admin_conf)
    p.produce(clean, value=b"training-row")
    assert p.flush(30) == 0
    victim_conf = c.config(victim)
    assert read_one(victim_conf, clean, f"{victim}-before")[0] == "message"

    # The detector worker, with --enforce (as the admin user: it applies ACLs).
    worker_factory(
        "--topology",
        str(access),
        "--keyring",
        str(scenario.keyring),
        "--app-id",
        f"enf-{unique}",
        "--enforce",
        env=c.env(ADMIN),
    )
    _produce_trace(admin_conf, events, with_events(scenario.normal, scenario.exfil))
    got = containments_secure(admin_conf, sink)
    assert [m["principal"] for m in got] == [victim]

    # Contained: the victim's consumer is refused (DENY wins over its ALLOW).
    state, err = read_one(victim_conf, clean, f"{victim}-after")
    assert (state, err) == ("error", "TOPIC_AUTHORIZATION_FAILED")

    # On-call lifts it; the victim reads again.
    for name, value in c.env(ADMIN).items():
        monkeypatch.setenv(name, value)
    release = ["containment", "release", victim, "--topology", str(access)]
    assert main([*release, "--topology", str(d.customers)]) == 0
    assert read_one(victim_conf, clean, f"{victim}-released")[0] == "message"


def containments_secure(conf: dict, topic: str) -> list[dict]:
    """Containment messages, read as the admin over SASL (the topic is ACL-protected)."""
    import io
    import time

    from confluent_kafka import Consumer
    from fastavro import schemaless_reader

    from streamproc.testing.access import CONTAINMENT_SCHEMA, load_schema

    schema = load_schema(CONTAINMENT_SCHEMA)
    cons = Consumer({**conf, "group.id": f"read-{time.time_ns()}", "auto.offset.reset": "earliest"})
    cons.subscribe([topic])
    out: list[dict] = []
    deadline = time.monotonic() + 120
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            msg = cons.poll(0.5)
            if msg is None or msg.error() is not None:
                if out and quiet_until is not None and time.monotonic() > quiet_until:
                    break
                continue
            out.append(schemaless_reader(io.BytesIO(msg.value()[10:]), schema, None))
            quiet_until = time.monotonic() + 5
    finally:
        cons.close()
    return out
