"""One secured local broker for the security tests (session scope).

Listeners: INTERNAL plaintext on 19092 (the broker's own loopback traffic; super user
ANONYMOUS, used here only to set topics up), CONTROLLER 19093, SASL_PLAINTEXT with
SCRAM-SHA-512 on 19094, SASL_SSL on 19095 with a certificate the session generates. The
StandardAuthorizer is on and nothing is allowed without an ACL. Passwords are random per
session and never leave the test process.
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.security.certs import Pki, make_pki
from tests.integration.workers import WorkerProcess

if TYPE_CHECKING:
    from tests.integration.test_detector_agent import Scenario

HOST = "127.0.0.1"
INTERNAL, CONTROLLER, SASL, TLS = 19092, 19093, 19094, 19095
ADMIN = "admin"


@dataclass
class SecureCluster:
    """Handles to the secured broker: bootstraps, the CA, and SCRAM users."""

    internal: str
    sasl: str
    tls: str
    pki: Pki
    start_seconds: float
    _passwords: dict[str, str] = field(default_factory=dict, repr=False)

    def password(self, user: str) -> str:
        return self._passwords[user]

    def add_user(self, user: str) -> str:
        """Create (or reset) a SCRAM-SHA-512 user at runtime through the Admin API."""
        from confluent_kafka.admin import (
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        pw = secrets.token_urlsafe(18)
        up = UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), pw.encode()
        )
        admin = self.admin()  # keep a reference: a collected client cancels its futures
        for fut in admin.alter_user_scram_credentials([up]).values():
            fut.result(timeout=30)
        self._passwords[user] = pw
        return pw

    def config(self, user: str, *, tls: bool = False, password: str | None = None) -> dict:
        """librdkafka config of ``user`` over SASL_PLAINTEXT (or SASL_SSL with the CA)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.tls if tls else self.sasl,
            "security.protocol": "sasl_ssl" if tls else "sasl_plaintext",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": password if password is not None else self._passwords[user],
            "log_level": 0,
        }
        if tls:
            conf["ssl.ca.location"] = str(self.pki.ca)
            conf["ssl.endpoint.identification.algorithm"] = "https"
        return conf

    def env(self, user: str, *, tls: bool = False) -> dict[str, str]:
        """``STREAMPROC_*`` variables making ``Settings`` connect as ``user``."""
        env = {
            "STREAMPROC_BROKER": self.tls if tls else self.sasl,
            "STREAMPROC_SECURITY_PROTOCOL": "SASL_SSL" if tls else "SASL_PLAINTEXT",
            "STREAMPROC_SASL_MECHANISM": "SCRAM-SHA-512",
            "STREAMPROC_SASL_USERNAME": user,
            "STREAMPROC_SASL_PASSWORD": self._passwords[user],
        }
        if tls:
            env["STREAMPROC_SSL_CAFILE"] = str(self.pki.ca)
        return env

    def admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient(self.config(ADMIN))

    def create_topics(self, *names: str, partitions: int = 1) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.internal})
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
        for fut in futures.values():
            fut.result(timeout=30)


@pytest.fixture(scope="session")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    from streamproc.localkafka import BrokerSpec, LocalKafka, TlsListener

    # SAN "localhost" only: a client that dials 127.0.0.1 with hostname verification on
    # must be refused, which is how the tests prove that verification is on.
    pki = make_pki(tmp_path_factory.mktemp("pki"), dns=("localhost",))
    admin_pw = secrets.token_urlsafe(18)
    spec = BrokerSpec(
        name="secure",
        host=HOST,
        port=INTERNAL,
        controller_port=CONTROLLER,
        sasl_port=SASL,
        tls=TlsListener(TLS, pki.cert, pki.key),
        authorizer=True,
        super_users=(f"User:{ADMIN}",),
        scram_users={ADMIN: admin_pw},
        heap="512m",
    )
    broker = LocalKafka(spec)
    broker.wipe()  # a fresh cluster: no ACLs or users left by an earlier session
    took = broker.start(timeout=90)
    cluster = SecureCluster(
        internal=f"{HOST}:{INTERNAL}",
        sasl=f"{HOST}:{SASL}",
        tls=f"localhost:{TLS}",
        pki=pki,
        start_seconds=took,
        _passwords={ADMIN: admin_pw},
    )
    try:
        yield cluster
    finally:
        broker.wipe()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


def poll_until(
    consumer: Any, *, timeout: float = 20.0, want: Callable[[Any], bool] | None = None
) -> Any:
    """Poll until a message (or error) that ``want`` accepts arrives; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if want is None or want(msg):
            return msg
    return None


@contextlib.contextmanager
def consumer_of(conf: dict, topic: str, group: str) -> Iterator[Any]:
    from confluent_kafka import Consumer

    c = Consumer(
        {**conf, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    c.subscribe([topic])
    try:
        yield c
    finally:
        c.close()


ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Deployment:
    """Topologies, a principals file and SCRAM users, all with names unique to one module."""

    folder: Path
    topologies: tuple[Path, ...]
    principals: Path
    raw: str
    clean: str
    dlq: str
    lineage: str
    audit: str
    events: str
    containment: str
    worker: str
    producer: str
    trainer: str
    oncall: str
    app_id: str
    trainer_group: str


def make_deployment(cluster: SecureCluster, folder: Path) -> Deployment:
    """Write topologies + principals under ``folder``, create topics and users; no ACLs yet."""
    import yaml

    u = uuid.uuid4().hex[:8]
    d = Deployment(
        folder=folder,
        topologies=(folder / "customers.yaml", folder / "access.yaml"),
        principals=folder / "principals.yaml",
        raw=f"cust-{u}.raw",
        clean=f"cust-{u}.clean",
        dlq=f"cust-{u}.dlq",
        lineage=f"lineage-{u}",
        audit=f"audit-{u}",
        events=f"access-{u}.events",
        containment=f"access-{u}.containment",
        worker=f"worker-{u}",
        producer=f"crm-{u}",
        trainer=f"trainer-{u}",
        oncall=f"oncall-{u}",
        app_id=f"app-{u}",
        trainer_group=f"trainer-{u}-",
    )
    folder.mkdir(parents=True, exist_ok=True)
    common = {"lineage": {"topic": d.lineage}, "audit_topic": d.audit}
    d.topologies[0].write_text(
        yaml.safe_dump(
            {
                "name": f"customers-{u}",
                "source": {
                    "topic": d.raw,
                    "schema": str(ROOT / "schemas" / "customer_profile.avsc"),
                    "partitions": 2,
                },
                "sink": {"topic": d.clean},
                "dead_letter": {"topic": d.dlq},
                "anonymity": {"max_delay_ms": 1000},
                **common,
            }
        )
    )
    d.topologies[1].write_text(
        yaml.safe_dump(
            {
                "name": f"access-{u}",
                "kind": "detect",
                "source": {
                    "topic": d.events,
                    "schema": str(ROOT / "schemas" / "access_event.avsc"),
                },
                "sink": {
                    "topic": d.containment,
                    "schema": str(ROOT / "schemas" / "containment.avsc"),
                },
                "dead_letter": {"topic": f"access-{u}.dlq"},
                **common,
            }
        )
    )
    d.principals.write_text(
        yaml.safe_dump(
            {
                "worker": {"principal": f"User:{d.worker}", "app_ids": [d.app_id]},
                "producers": [{"principal": f"User:{d.producer}", "topics": [d.raw]}],
                "training_consumers": [
                    {"principal": f"User:{d.trainer}", "group_prefix": d.trainer_group}
                ],
                "on_call": [{"principal": f"User:{d.oncall}", "group_prefix": f"oncall-{u}-"}],
            }
        )
    )
    cluster.create_topics(d.raw, d.clean, d.dlq, partitions=2)
    cluster.create_topics(d.lineage, d.audit, d.events, d.containment, f"access-{u}.dlq")
    for user in (d.worker, d.producer, d.trainer, d.oncall):
        cluster.add_user(user)
    return d


@dataclass(frozen=True)
class DetectDeployment:
    """A sanitize topology and a detect topology with their topics, names unique to a test."""

    folder: Path
    customers: Path
    access: Path
    raw: str
    clean: str
    dlq: str
    events: str
    sink: str
    adlq: str


def make_detect_deployment(
    cluster: SecureCluster,
    folder: Path,
    scenario: Scenario,
    u: str,
    *topics: str,
    **customers: Any,
) -> DetectDeployment:
    """Write ``customers.yaml`` (sanitize; ``customers`` are extra keys of it) and the detect
    topology of ``scenario`` under ``folder``; create their topics and ``topics``. No ACLs."""
    import yaml

    from tests.integration.test_detector_agent import PARTITIONS, write_topology

    raw, clean, dlq = f"cust-{u}.raw", f"cust-{u}.clean", f"cust-{u}.dlq"
    events, sink, adlq = (f"access-{u}.{x}" for x in ("events", "containment", "dlq"))
    cluster.create_topics(raw, clean, dlq, *topics)
    cluster.create_topics(events, sink, adlq, partitions=PARTITIONS)
    folder.mkdir()
    (folder / "customers.yaml").write_text(
        yaml.safe_dump(
            {
                "name": f"customers-{u}",
                "source": {"topic": raw, "schema": str(ROOT / "schemas" / "customer_profile.avsc")},
                "sink": {"topic": clean},
                "dead_letter": {"topic": dlq},
                **customers,
            }
        )
    )
    access = write_topology(folder, scenario, events, sink, adlq, threshold=scenario.page_threshold)
    return DetectDeployment(
        folder, folder / "customers.yaml", access, raw, clean, dlq, events, sink, adlq
    )


@pytest.fixture
def secure_worker(
    secure_cluster: SecureCluster, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start a real ``streamproc worker`` as a SCRAM user over SASL_SSL (hostname verified),
    its log and data under ``tmp_path``; every one is stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def make(
        user: str,
        topology: Path,
        keyring: Path,
        app_id: str,
        *args: str,
        env: dict[str, str] | None = None,
        wait_ready: float = 60.0,
    ) -> WorkerProcess:
        conf = {**secure_cluster.env(user, tls=True), **(env or {})}
        w = WorkerProcess(
            [
                *("--topology", str(topology)),
                *("--keyring", str(keyring)),
                *("--app-id", app_id),
                *args,
            ],
            log_path=tmp_path / "worker.log",
            bootstrap=conf.pop("STREAMPROC_BROKER"),
            data_dir=tmp_path / "data",
            env=conf,
        )
        started.append(w)
        return w.start(wait_ready=wait_ready)

    yield make
    for w in started:
        w.stop()


def read_one(conf: dict, topic: str, group: str, timeout: float = 20.0) -> tuple[str, Any]:
    """("message", value) for the first record, or ("error", error name) when refused."""
    with consumer_of(conf, topic, group) as c:
        msg = poll_until(c, timeout=timeout)
    if msg is None:
        return "timeout", None
    if msg.error() is not None:
        return "error", msg.error().name()
    return "message", msg.value()


def produce_one(
    conf: dict, topic: str, value: bytes = b"v", *, idempotent: bool = True
) -> str | None:
    """Produce one record with an idempotent producer; the error's name, or None when written.

    A producer denied WRITE on every topic cannot even get its idempotence id: that is a
    fatal CLUSTER_AUTHORIZATION_FAILED rather than a per-record error.
    """
    from confluent_kafka import KafkaException, Producer

    result: list[Any] = []
    fatal: list[str] = []

    def on_error(err: Any) -> None:
        if err.fatal():
            fatal.append(err.name())

    p = Producer(
        {
            **conf,
            "enable.idempotence": idempotent,
            "message.timeout.ms": 10000,
            "error_cb": on_error,
        }
    )
    try:
        p.produce(topic, value=value, on_delivery=lambda err, _msg: result.append(err))
        p.flush(15)
    except KafkaException as exc:
        return str(exc.args[0].name())
    except SystemError:  # the delivery callback ran on a handle that failed fatally
        pass
    p.poll(0.5)  # serves error_cb: a fatal error arrives after the purged delivery report
    if fatal:
        return "FATAL:" + fatal[0]
    if not result:
        return "no delivery report"
    return None if result[0] is None else str(result[0].name())
