"""SCRAM and TLS against the secured broker, with client configs built by ``Settings``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from streamproc.config import Settings
from tests.integration.security.certs import make_pki
from tests.integration.security.conftest import ADMIN, SecureCluster

pytestmark = pytest.mark.integration


def probe(conf: dict[str, Any], timeout: float = 8.0) -> tuple[bool, list[str]]:
    """Does a client with ``conf`` get metadata? Stops early on an authentication/TLS error."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    admin = AdminClient({**conf, "error_cb": lambda e: errors.append(e.name()), "log_level": 0})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if admin.list_topics(timeout=1).brokers:
                return True, errors
        except KafkaException:
            pass
        admin.poll(0)  # serves error_cb
        if any(e in ("_AUTHENTICATION", "_SSL", "SASL_AUTHENTICATION_FAILED") for e in errors):
            return False, errors
    return False, errors


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


def test_secured_broker_answers(secure_cluster: SecureCluster) -> None:
    print(f"secured broker start: {secure_cluster.start_seconds:.1f} s")
    assert secure_cluster.start_seconds < 90


def test_scram_through_settings(secure_cluster: SecureCluster) -> None:
    s = settings(
        broker=secure_cluster.sasl,
        security_protocol="SASL_PLAINTEXT",
        sasl_username=ADMIN,
        sasl_password=secure_cluster.password(ADMIN),
    )
    ok, errors = probe(s.kafka_config())
    assert ok, errors
    assert secure_cluster.password(ADMIN) not in repr(s) + str(s)


def test_scram_wrong_password_refused(secure_cluster: SecureCluster) -> None:
    ok, errors = probe(secure_cluster.config(ADMIN, password="not-the-password"))
    assert not ok
    assert "_AUTHENTICATION" in errors


def test_scram_user_added_at_runtime(secure_cluster: SecureCluster) -> None:
    secure_cluster.add_user("runtime-user")
    ok, errors = probe(secure_cluster.config("runtime-user"))
    assert ok, errors  # authenticated; metadata needs no ACL


def test_tls_with_the_ca_and_hostname_verification(secure_cluster: SecureCluster) -> None:
    s = settings(
        broker=secure_cluster.tls,
        security_protocol="SASL_SSL",
        sasl_username=ADMIN,
        sasl_password=secure_cluster.password(ADMIN),
        ssl_cafile=secure_cluster.pki.ca,
    )
    conf = s.kafka_config()
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    ok, errors = probe(conf)
    assert ok, errors


def test_tls_with_another_ca_refused(secure_cluster: SecureCluster, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", dns=("localhost",))
    s = settings(
        broker=secure_cluster.tls,
        security_protocol="SASL_SSL",
        sasl_username=ADMIN,
        sasl_password=secure_cluster.password(ADMIN),
        ssl_cafile=other.ca,
    )
    ok, errors = probe(s.kafka_config())
    assert not ok
    assert "_SSL" in errors


def test_tls_hostname_mismatch_refused(secure_cluster: SecureCluster) -> None:
    # The broker certificate names "localhost" only; dialling 127.0.0.1 must fail the check.
    by_ip = secure_cluster.tls.replace("localhost", "127.0.0.1")
    kw: dict[str, Any] = dict(
        broker=by_ip,
        security_protocol="SASL_SSL",
        sasl_username=ADMIN,
        sasl_password=secure_cluster.password(ADMIN),
        ssl_cafile=secure_cluster.pki.ca,
    )
    ok, errors = probe(settings(**kw).kafka_config())
    assert not ok
    assert "_SSL" in errors
    # The same client without the hostname check gets through: it was the check that refused.
    ok, errors = probe(settings(**kw, ssl_check_hostname=False).kafka_config())
    assert ok, errors
