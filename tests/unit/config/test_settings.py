"""Transport settings: refusals of unencrypted remote brokers, SASL/TLS client configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamproc.config import Settings, broker_hosts, is_loopback
from streamproc.errors import InsecureTransportError

SECRET = "s3cr3t-scram-password"


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
@pytest.mark.parametrize(
    "broker", ["10.0.0.5:9092", "kafka.example.com:9093", "127.0.0.1:9092,10.0.0.5:9092"]
)
def test_unencrypted_remote_broker_refused(protocol: str, broker: str) -> None:
    s = settings(broker=broker, security_protocol=protocol, sasl_password=SECRET)
    with pytest.raises(InsecureTransportError, match="non-loopback") as err:
        s.kafka_config()
    assert SECRET not in str(err.value)
    settings(broker=broker, security_protocol=protocol, allow_insecure=True).kafka_config()


@pytest.mark.parametrize("broker", ["127.0.0.1:9092", "localhost:9092", "[::1]:9092"])
@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_unencrypted_loopback_allowed(protocol: str, broker: str) -> None:
    settings(broker=broker, security_protocol=protocol).check_transport()


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_encrypted_remote_broker_allowed(protocol: str) -> None:
    settings(broker="10.0.0.5:9093", security_protocol=protocol).check_transport()


def test_broker_hosts_and_loopback() -> None:
    assert broker_hosts("h1:9092, [::1]:9093,SASL_SSL://h2:9094") == ["h1", "::1", "h2"]
    assert is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("10.0.0.1")


def test_sasl_ssl_client_config_verifies_hostname(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    s = settings(
        broker="kafka.example.com:9093",
        security_protocol="SASL_SSL",
        sasl_username="worker",
        sasl_password=SECRET,
        ssl_cafile=ca,
    )
    conf = s.kafka_config()
    assert conf["security.protocol"] == "sasl_ssl"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["ssl.ca.location"] == str(ca)
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert SECRET not in repr(s) and SECRET not in str(s) and SECRET not in s.model_dump_json()


def test_faust_credentials_sasl_ssl(tmp_path: Path) -> None:
    import ssl

    import faust

    from streamproc.runtime.app import faust_broker_credentials

    s = settings(
        broker="kafka.example.com:9093",
        security_protocol="SASL_SSL",
        sasl_username="worker",
        sasl_password=SECRET,
    )
    creds = faust_broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.protocol.value == "SASL_SSL"
    assert creds.ssl_context is not None
    assert creds.ssl_context.check_hostname
    assert creds.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert SECRET not in repr(creds)


def test_faust_credentials_refuse_remote_plaintext() -> None:
    from streamproc.runtime.app import faust_broker_credentials

    with pytest.raises(InsecureTransportError):
        faust_broker_credentials(
            settings(broker="10.0.0.5:9092", security_protocol="SASL_PLAINTEXT")
        )
    assert faust_broker_credentials(settings(broker="127.0.0.1:9092")) is None
