from __future__ import annotations

from pathlib import Path

from streamproc.localkafka import STANDARD_AUTHORIZER, BrokerSpec, new_cluster_id


def test_default_spec_is_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    props = BrokerSpec().properties(tmp_path)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert "authorizer.class.name" not in props


def test_secured_spec_adds_scram_listener_and_authorizer(tmp_path: Path) -> None:
    spec = BrokerSpec(
        name="sec",
        port=19092,
        controller_port=19093,
        sasl_port=19094,
        authorizer=True,
        scram_users={"admin": "pw"},
    )
    props = spec.properties(tmp_path)
    assert "SASL_PLAINTEXT://127.0.0.1:19094" in props["listeners"]
    assert props["inter.broker.listener.name"] == "INTERNAL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == STANDARD_AUTHORIZER
    assert "User:admin" in props["super.users"].split(";")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    # Passwords live only in the format command, never in the properties file.
    assert all(v != "pw" for v in props.values())


def test_cluster_ids_are_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_secured_spec_gives_every_sasl_listener_a_scram_login_module(tmp_path: Path) -> None:
    from streamproc.localkafka import TlsListener

    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("CERT\n")
    key.write_text("KEY\n")
    spec = BrokerSpec(
        name="sec",
        port=19092,
        controller_port=19093,
        sasl_port=19094,
        tls=TlsListener(19095, cert, key),
        authorizer=True,
    )
    props = spec.properties(tmp_path / "data")
    for listener in ("sasl_plaintext", "sasl_ssl"):
        jaas = props[f"listener.name.{listener}.scram-sha-512.sasl.jaas.config"]
        assert jaas == "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    assert "SASL_SSL://localhost:19095" in props["listeners"]
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert "jaas" not in "".join(BrokerSpec().properties(tmp_path / "d").keys())
