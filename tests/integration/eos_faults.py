"""The exactly-once fault scenario, shared by the integration test and ``load/bench_eos_faults``.

A broker of its own (never the shared one): N customer records preloaded on 6 partitions, an
``exactly_once`` worker started, then, at fixed shares of the progress, ``kill -9`` of the
worker three times and SIGKILL + restart of the broker twice, interleaved. The worker is
restarted after each of its kills (same ``--instance``, as a supervisor would) and left
alone through the broker's (it must reconnect by itself). Afterwards a ``read_committed``
consumer reads the sink and the dead-letter topic and every ``streamproc.source.*``
coordinate is counted.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from fastavro import schemaless_reader

from streamproc.audit import AuditKind, read_file
from streamproc.audit.encoding import Entry, parse_record
from streamproc.audit.signing import write_keypair
from streamproc.keys import Keyring
from streamproc.localkafka import BrokerSpec, LocalKafka
from streamproc.pipeline import H_SOURCE_OFFSET, H_SOURCE_PARTITION
from streamproc.policy import compile_plan
from streamproc.risk import measure
from streamproc.testing.customers import customer_records, single_object
from tests.integration.workers import WorkerProcess

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "customer_profile.avsc"
PARTITIONS = 6
# (share of the records in the sink, fault): interleaved as the user run did.
FAULTS = (
    (0.10, "worker"),
    (0.25, "broker"),
    (0.40, "worker"),
    (0.55, "broker"),
    (0.70, "worker"),
)


@dataclass
class Outcome:
    records: int
    seen: Counter[tuple[int, int]] = field(default_factory=Counter)
    expected: set[tuple[int, int]] = field(default_factory=set)
    faults: list[str] = field(default_factory=list)
    restarts: int = 0  # exits of the worker itself, restarted as a supervisor would
    seconds: float = 0.0
    dead_letters: int = 0
    # Dead-letter audit entries per source coordinate (the worker's audit file).
    audited: Counter[tuple[int, int]] = field(default_factory=Counter)
    dead_coordinates: set[tuple[int, int]] = field(default_factory=set)
    k_min: int | None = None  # over the sink, on the schema's quasi-identifiers (k = 5)
    suppressed: int = 0

    @property
    def lost(self) -> int:
        return len(self.expected - set(self.seen))

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.seen.values() if n > 1)

    @property
    def unexpected(self) -> int:
        return len(set(self.seen) - self.expected)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sink_progress(bootstrap: str, topics: list[str]) -> int:
    """Records (and markers) written to ``topics`` so far: a progress gauge, not a count."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "eos-progress"})
    try:
        total = 0
        for t in topics:
            for p in range(PARTITIONS):
                with contextlib.suppress(Exception):
                    total += c.get_watermark_offsets(TopicPartition(t, p), timeout=5)[1]
        return total
    finally:
        c.close()


def _read_committed(bootstrap: str, topics: list[str], expect: int, timeout: float) -> list:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"eos-check-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    c.subscribe(topics)
    got: list = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = [m for m in c.consume(5000, 0.5) if m.error() is None]
            got += batch
            if batch:
                quiet_since = time.monotonic()
            elif len(got) >= expect and time.monotonic() - quiet_since > 3:
                break  # all there, and nothing more (a duplicate would still arrive)
    finally:
        c.close()
    return got


def _kill_broker(broker: LocalKafka) -> None:
    pid = broker.pid()
    assert pid is not None, "the scenario's broker is not running"
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    broker.pid_file.unlink(missing_ok=True)


def run_scenario(records: int, work: Path, *, log: Callable[[str], None] = print) -> Outcome:
    """Run the faults over ``records`` records; the broker is wiped at the end."""
    spec = BrokerSpec(
        name=f"eos-faults-{uuid.uuid4().hex[:6]}",
        port=_free_port(),
        controller_port=_free_port(),
        partitions=PARTITIONS,
    )
    broker = LocalKafka(spec)
    broker.start(timeout=120)
    out = Outcome(records)
    try:
        _run(broker, records, work, out, log)
    finally:
        broker.wipe()
    return out


def _run(broker: LocalKafka, n: int, work: Path, out: Outcome, log: Callable[[str], None]) -> None:
    bootstrap = broker.spec.bootstrap
    source, sink, dlq = "eos.raw", "eos.clean", "eos.dlq"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(source, PARTITIONS, 1)]).values():
        f.result(30)
    keyring = Keyring.generate()
    keyring.save(work / "keyring.json")
    plan = compile_plan(SCHEMA, keyring)
    schema = plan.source_schema
    base = [single_object(schema, r) for r, _ in customer_records(1000, seed=5)]
    # Every 500th record is not Avro: the dead letters must be exactly-once too.
    values = [b"not avro" if i % 500 == 499 else base[i % len(base)] for i in range(n)]
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True})
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(source, v, str(i % 4000).encode())
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    topo = work / "eos.yaml"
    topo.write_text(
        yaml.safe_dump(
            {
                "name": "eos-faults",
                "source": {"topic": source, "schema": str(SCHEMA), "partitions": PARTITIONS},
                "sink": {"topic": sink},
                "dead_letter": {"topic": dlq},
                "processing_guarantee": "exactly_once",
                "lineage": {"topic": None},
                # The schema's k = 5: records wait for their group across the faults too.
                "anonymity": {"max_delay_ms": 2000},
            }
        )
    )
    args = ["--topology", str(topo), "--keyring", str(work / "keyring.json")]
    args += ["--app-id", "eos-faults", "--instance", "w0", "--loglevel", "info"]
    write_keypair(work / "audit.pem", work / "audit.pub")
    audit_env = {
        "STREAMPROC_AUDIT_SIGNING_KEY": str(work / "audit.pem"),
        "STREAMPROC_AUDIT_FILE": str(work / "audit.log"),
    }
    worker = WorkerProcess(
        args,
        log_path=work / "worker.log",
        bootstrap=bootstrap,
        data_dir=work / "data",
        env=audit_env,
    )
    t0 = time.monotonic()
    try:
        worker.start(wait_ready=120)
        # The last step waits (supervised) until the sink holds at least every record.
        for share, fault in (*FAULTS, (1.0, "none")):
            deadline = time.monotonic() + 240
            while _sink_progress(bootstrap, [sink, dlq]) < share * n:
                assert time.monotonic() < deadline, f"no progress before the {fault} fault"
                assert worker.proc is not None
                if worker.proc.poll() is not None:
                    # The worker gave up by itself (exit 70: see hotpath.TXN_WATCHDOG_S);
                    # restart it as systemd or Kubernetes would, and count it.
                    out.restarts += 1
                    log(f"  worker exited by itself ({worker.proc.returncode}): restarted")
                    worker.start(wait_ready=120)
                time.sleep(0.2)
            if fault == "none":
                break
            if fault == "worker":
                worker.kill9()
                out.faults.append(f"kill -9 worker at {share:.0%}")
                worker.start(wait_ready=120)
            else:
                _kill_broker(broker)
                out.faults.append(f"SIGKILL broker at {share:.0%}")
                time.sleep(2.0)  # down for a moment: the worker's clients see it gone
                broker.start(timeout=120)
            log(f"  {out.faults[-1]} (t={time.monotonic() - t0:.0f} s)")
        msgs = _read_committed(bootstrap, [sink, dlq], n, timeout=300)
        out.seconds = time.monotonic() - t0
    finally:
        worker.stop()  # also when the scenario failed: no worker outlives its broker
    released = []
    for m in msgs:
        h = dict(m.headers() or ())
        out.seen[(int(h[H_SOURCE_PARTITION]), int(h[H_SOURCE_OFFSET]))] += 1
        if m.topic() == dlq:
            out.dead_letters += 1
            out.dead_coordinates.add((int(h[H_SOURCE_PARTITION]), int(h[H_SOURCE_OFFSET])))
        if m.topic() == sink:
            released.append(schemaless_reader(io.BytesIO(m.value()[10:]), plan.derived_schema))
    assert plan.anonymity is not None
    risk = measure(released, list(plan.anonymity.fields), k=plan.anonymity.k)
    out.k_min, out.suppressed = risk.k_min, risk.suppressed
    for _, raw in read_file(work / "audit.log"):
        entry = parse_record(raw)
        if isinstance(entry, Entry) and entry.kind == AuditKind.DEAD_LETTER.value:
            out.audited[(int(entry.fields["partition"]), int(entry.fields["offset"]))] += 1
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "eos-ends"})
    try:
        for part in range(PARTITIONS):
            _, high = c.get_watermark_offsets(TopicPartition(source, part), timeout=10)
            out.expected |= {(part, o) for o in range(high)}
    finally:
        c.close()
