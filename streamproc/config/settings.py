"""Settings from the environment (``STREAMPROC_*``); secrets never printed.

Every process (worker, CLI, load tools) builds its Kafka client configuration from
:class:`Settings`, so transport security is decided in one place.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamproc.errors import InsecureTransportError, KeyringError
from streamproc.keys import Keyring

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

DEFAULT_BROKER = "127.0.0.1:9092"


class Settings(BaseSettings):
    """Runtime settings. Every field can be set as ``STREAMPROC_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="STREAMPROC_", extra="ignore")

    broker: str = Field(DEFAULT_BROKER, description="Kafka bootstrap servers, comma separated")
    keyring: Path | None = Field(None, description="path of the keyring file")
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True
    allow_insecure: bool = Field(
        False, description="permit PLAINTEXT/SASL_PLAINTEXT to a non-loopback broker"
    )
    schema_registry_url: str | None = None
    metrics_port: int = 9464
    metrics_addr: str = Field("127.0.0.1", description="bind address of /metrics")
    data_dir: Path = Path(".cache/worker")
    audit_signing_key: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs audit checkpoints; audit is on when set",
    )
    audit_file: Path | None = Field(None, description="append the audit trail to this file")
    audit_topic: str | None = Field(
        None, description="audit topic (one partition, one writer: default streamproc.audit.<app>)"
    )
    audit_checkpoint_every: int = 1000
    enforce: bool = Field(
        False, description="detector: apply containment as DENY ACLs (worker --enforce)"
    )
    log_level: str = "INFO"

    def check_transport(self) -> None:
        """Refuse an unencrypted connection to a broker that is not on loopback."""
        if self.security_protocol in ("SSL", "SASL_SSL") or self.allow_insecure:
            return
        for host in broker_hosts(self.broker):
            if not is_loopback(host):
                raise InsecureTransportError(
                    f"security_protocol={self.security_protocol} to non-loopback broker "
                    f"host {host!r} refused; use SASL_SSL or set STREAMPROC_ALLOW_INSECURE=1"
                )

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka (confluent-kafka) client configuration, transport checked."""
        self.check_transport()
        conf: dict[str, Any] = {
            "bootstrap.servers": self.broker,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.security_protocol.startswith("SASL"):
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else ""
            )
        if self.security_protocol.endswith("SSL"):
            if self.ssl_cafile:
                conf["ssl.ca.location"] = str(self.ssl_cafile)
            if self.ssl_certfile:
                conf["ssl.certificate.location"] = str(self.ssl_certfile)
            if self.ssl_keyfile:
                conf["ssl.key.location"] = str(self.ssl_keyfile)
            conf["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_check_hostname else "none"
            )
        return conf


def broker_hosts(bootstrap: str) -> list[str]:
    """Host parts of a bootstrap string (``h1:9092,[::1]:9093``)."""
    hosts = []
    for item in bootstrap.split(","):
        item = item.strip()
        if "://" in item:
            item = item.split("://", 1)[1]
        if item.startswith("["):
            hosts.append(item[1 : item.index("]")])
        else:
            hosts.append(item.rsplit(":", 1)[0])
    return hosts


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with explicit (e.g. command-line) overrides on top."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)


def load_keyring(path: str | os.PathLike[str] | None = None) -> Keyring:
    """Load the keyring at ``path``, else at ``STREAMPROC_KEYRING``; KeyringError if neither."""
    if path is None:
        path = load_settings().keyring
    if path is None:
        raise KeyringError("no keyring given: use --keyring PATH or set STREAMPROC_KEYRING")
    return Keyring.load(path)
