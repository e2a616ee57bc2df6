"""A real Apache Kafka broker (KRaft, one combined broker+controller node) on loopback.

The jars come from Maven Central (``pom.xml`` beside this file) into a git-ignored cache
folder; Java 17 runs them. Used by ``make kafka-up``/``make kafka-down``, the test suite and
``make demo``. Each :class:`LocalKafka` instance has its own folder, ports and PID file, so
tests can run a second, secured broker (SASL/SCRAM listener, StandardAuthorizer, TLS) beside
the plain one.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streamproc.errors import LocalKafkaError

KAFKA_VERSION = "3.9.2"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9092
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


def cache_dir() -> Path:
    """Root of the git-ignored cache (``STREAMPROC_CACHE``, default ``./.cache``)."""
    return Path(os.environ.get("STREAMPROC_CACHE", ".cache")).resolve()


def libs_dir() -> Path:
    return cache_dir() / "kafka" / f"libs-{KAFKA_VERSION}"


def fetch_jars(*, quiet: bool = True) -> Path:
    """Resolve the broker's jars with Maven once; later calls return the cached folder."""
    libs = libs_dir()
    stamp = libs / ".complete"
    if stamp.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("Maven (mvn) is not installed; run `make deps` to install it")
    tmp = libs.with_name(libs.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with resources.as_file(resources.files(__package__) / "pom.xml") as pom:
        cmd = [
            mvn,
            "-B",
            *(["-q"] if quiet else []),
            "-f",
            str(pom),
            f"-Dmaven.repo.local={cache_dir() / 'm2'}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise LocalKafkaError(f"Maven could not resolve Kafka {KAFKA_VERSION} jars:\n{tail}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    stamp.write_text(KAFKA_VERSION + "\n")
    return libs


def new_cluster_id() -> str:
    """A Kafka ``Uuid`` in its base64url form (22 characters, never starting with '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


@dataclass(frozen=True)
class TlsListener:
    """A SASL_SSL (or SSL) listener served with PEM files made by the caller."""

    port: int
    certfile: Path  # PEM certificate chain of the broker
    keyfile: Path  # PEM private key (unencrypted PKCS#8)
    sasl: bool = True


@dataclass(frozen=True)
class BrokerSpec:
    """What one local broker looks like. Defaults: plaintext on 127.0.0.1:9092, no ACLs."""

    name: str = "default"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    controller_port: int = 9093
    # Secured profile: a SASL_PLAINTEXT (SCRAM) client listener and the StandardAuthorizer.
    # The plaintext ``port`` then becomes the broker's INTERNAL listener (inter-broker traffic
    # and loopback administration as the super user ANONYMOUS).
    sasl_port: int | None = None
    tls: TlsListener | None = None
    authorizer: bool = False
    super_users: tuple[str, ...] = ("User:admin",)
    scram_mechanism: str = "SCRAM-SHA-512"
    scram_users: Mapping[str, str] = field(default_factory=dict)
    partitions: int = 1
    heap: str = "768m"
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def secured(self) -> bool:
        return self.sasl_port is not None or self.tls is not None

    def properties(self, data_dir: Path) -> dict[str, str]:
        internal = "INTERNAL" if self.secured else "PLAINTEXT"
        listeners = [f"{internal}://{self.host}:{self.port}"]
        protocol_map = [f"{internal}:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if self.sasl_port is not None:
            listeners.append(f"SASL_PLAINTEXT://{self.host}:{self.sasl_port}")
            protocol_map.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        if self.tls is not None:
            tls_name = "SASL_SSL" if self.tls.sasl else "SSL"
            listeners.append(f"{tls_name}://localhost:{self.tls.port}")
            protocol_map.append(f"{tls_name}:{tls_name}")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": ",".join([*listeners, f"CONTROLLER://{self.host}:{self.controller_port}"]),
            "advertised.listeners": ",".join(listeners),
            "listener.security.protocol.map": ",".join(protocol_map),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": internal,
            "log.dirs": str(data_dir),
            "num.partitions": str(self.partitions),
            # One node: internal topics cannot have more replicas than brokers, and
            # transactions need the transaction-state log to be writable.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "num.network.threads": "3",
            "num.io.threads": "4",
        }
        sasl_listeners = [
            *(["sasl_plaintext"] if self.sasl_port is not None else []),
            *(["sasl_ssl"] if self.tls is not None and self.tls.sasl else []),
        ]
        if sasl_listeners:
            props["sasl.enabled.mechanisms"] = self.scram_mechanism
            # The server side of SCRAM needs a JAAS login module per listener (no credentials:
            # inter-broker traffic stays on the INTERNAL listener); without it the broker exits.
            for listener in sasl_listeners:
                key = f"listener.name.{listener}.{self.scram_mechanism.lower()}.sasl.jaas.config"
                props[key] = f"{SCRAM_LOGIN_MODULE} required;"
        if self.tls is not None:
            pre = f"listener.name.{'sasl_ssl' if self.tls.sasl else 'ssl'}."
            props[pre + "ssl.keystore.type"] = "PEM"
            props[pre + "ssl.keystore.location"] = str(
                _combined_pem(self.tls.certfile, self.tls.keyfile, data_dir.parent)
            )
        if self.authorizer:
            props["authorizer.class.name"] = STANDARD_AUTHORIZER
            # ANONYMOUS is the principal on the loopback INTERNAL and CONTROLLER listeners,
            # which the broker itself uses; clients authenticate on the SASL listeners.
            props["super.users"] = ";".join(["User:ANONYMOUS", *self.super_users])
            props["allow.everyone.if.no.acl.found"] = "false"
        props.update(self.extra)
        return props


def _combined_pem(certfile: Path, keyfile: Path, home: Path) -> Path:
    """Kafka's PEM keystore wants key and certificate chain in one file."""
    out = home / "broker-keystore.pem"
    out.write_bytes(keyfile.read_bytes() + certfile.read_bytes())
    out.chmod(0o600)
    return out


class LocalKafka:
    """Lifecycle of one local broker: fetch jars, format storage, start, wait, stop."""

    def __init__(self, spec: BrokerSpec | None = None) -> None:
        self.spec = spec or BrokerSpec()
        self.home = cache_dir() / "kafka" / self.spec.name
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.pid_file = self.home / "broker.pid"
        self.config_file = self.home / "server.properties"

    # -- state -------------------------------------------------------------------------

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A recycled PID would not be running our broker's main class.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid
        return pid if b"kafka.Kafka" in cmdline else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def ready(self, timeout: float = 2.0) -> bool:
        """True when the broker answers a metadata request on its plaintext/internal port."""
        admin = AdminClient({"bootstrap.servers": self.spec.bootstrap, "log_level": 0})
        try:
            md = admin.list_topics(timeout=timeout)
        except Exception:
            return False
        return bool(md.brokers)

    # -- lifecycle ---------------------------------------------------------------------

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java:
            raise LocalKafkaError("Java 17 is not installed; run `make deps` to install it")
        return java

    def _classpath(self) -> str:
        return str(fetch_jars() / "*")

    def format(self) -> bool:
        """Format storage if it is not formatted yet. Returns True when it formatted."""
        if (self.data_dir / "meta.properties").exists():
            return False
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        cmd = [
            self._java(),
            *self._jvm_logging(),
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.config_file),
        ]
        for user, password in self.spec.scram_users.items():
            cmd += ["--add-scram", f"{self.spec.scram_mechanism}=[name={user},password={password}]"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            # The command line holds SCRAM passwords: report the tool's output only.
            raise LocalKafkaError(f"formatting Kafka storage failed: {proc.stdout[-1500:]}")
        return True

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        props = self.spec.properties(self.data_dir)
        text = "".join(f"{k}={v}\n" for k, v in props.items())
        self.config_file.write_text(text)

    def _jvm_logging(self) -> list[str]:
        log4j = resources.files(__package__) / "log4j.properties"
        return [
            f"-Dlog4j.configuration=file:{log4j}",
            f"-Dkafka.logs.dir={self.logs_dir}",
        ]

    def start(self, *, timeout: float = 60.0) -> float:
        """Start the broker unless it already runs; wait until it answers.

        Returns the seconds spent (0.0 when it was already running and ready).
        """
        t0 = time.monotonic()
        if self.is_running():
            if self.ready(timeout=min(timeout, 10.0)):
                return 0.0
            raise LocalKafkaError(
                f"a broker process runs (pid file {self.pid_file}) but does not answer on "
                f"{self.spec.bootstrap}; run `make kafka-down` and retry"
            )
        self.format()
        self._write_config()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self._java(),
            f"-Xms{self.spec.heap}",
            f"-Xmx{self.spec.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            *self._jvm_logging(),
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.config_file),
        ]
        out = (self.logs_dir / "stdout.log").open("ab")
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalKafkaError(
                    f"the broker exited with code {proc.returncode} during start-up; "
                    f"see {self.logs_dir / 'server.log'}:\n{self._log_tail()}"
                )
            if self.ready(timeout=1.0):
                return time.monotonic() - t0
            time.sleep(0.2)
        self.stop()
        raise LocalKafkaError(
            f"the broker did not answer on {self.spec.bootstrap} within {timeout:.0f} s; "
            f"see {self.logs_dir / 'server.log'}"
        )

    def stop(self, *, timeout: float = 30.0) -> bool:
        """Stop the broker cleanly (SIGTERM, then SIGKILL after ``timeout``)."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def wipe(self) -> None:
        """Stop and remove all data of this instance (a fresh cluster on next start)."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def _log_tail(self, lines: int = 30) -> str:
        log = self.logs_dir / "server.log"
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True
