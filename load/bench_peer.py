"""Peer benchmark (``make bench``): streamproc against a Quix Streams app doing the same work.

One run, the same broker, the same data: the flat customer record and the nested claim
(single-object Avro, 6 partitions), N records preloaded once per record kind and read by
every variant with its own consumer group:

- ``quix app``: ``load/peer_quix_app.py`` in its own venv (``.cache/venv-quix``, created here
  with pip: quixstreams pins its own confluent-kafka), the transforms in plain Python;
- ``confluent loop``: a plain confluent-kafka consume/produce loop, no transform (ceiling);
- ``faust agent``: the textbook per-event Faust agent around SanitizeFlow (``peer_faust_app``);
- ``streamproc alo`` / ``streamproc eos``: ``streamproc worker`` with
  ``processing_guarantee`` at_least_once / exactly_once.

Per variant: records/s with start-up (process start -> last output) and without (first ->
last output); CPU seconds of the whole process tree (helpers included, start-up included) per
100k records; p50/p99 end-to-end latency at a paced 5k records/s on fresh topics (sink
arrival, read_committed, minus the source record's timestamp); the seconds from process start
to the first output record (``1st out s``). One table, ratios vs Quix.

``--startup N``: only time to first output, N rounds alternating the variants (each round a
fresh group and sink on a preloaded source of ``--startup-records``), medians per variant.

Usage: python -m load.bench_peer [--records 300000] [--rate 5000] [--seconds 10]
       [--kinds customers,claims] [--only quix,streamproc] [--startup 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, ConsumerGroupState, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamproc.avro.schema import read_schema_json
from streamproc.keys import Keyring
from streamproc.policy import compile_plan
from streamproc.runtime.committimes import CommitTimes
from streamproc.testing.claims import claim_record
from streamproc.testing.customers import customer_records, policy_without_k, single_object

ROOT = Path(__file__).resolve().parents[1]
BROKER = os.environ.get("STREAMPROC_BROKER", "127.0.0.1:9092")
PARTITIONS = 6
QUIX_VENV = ROOT / ".cache" / "venv-quix"
QUIX_PACKAGES = ["quixstreams==3.28.1", "fastavro", "cryptography"]
SCHEMAS = {"customers": "customer_profile.avsc", "claims": "claims.avsc"}
CLK = os.sysconf("SC_CLK_TCK")


def quix_python() -> Path:
    """The peer's interpreter, its venv created on first use."""
    py = QUIX_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {QUIX_VENV} ({', '.join(QUIX_PACKAGES)})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *QUIX_PACKAGES], check=True)
    return py


def create_topics(*names: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": BROKER})
    for f in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        f.result(30)


def delete_topics(names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": BROKER})
    for f in admin.delete_topics(names).values():
        # Best effort: a leftover topic costs disk, not correctness.
        with contextlib.suppress(Exception):
            f.result(30)


def produce(topic: str, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": BROKER, "linger.ms": 20, "enable.idempotence": True})
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topic, value=v, key=str(i % 5000).encode())
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)


def reader(group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": BROKER,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 5,
            "enable.auto.commit": False,
        }
    )


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def hot_path_group(app_id: str) -> str:
    """The group a worker's hot path joins (``streamproc.runtime.hotapp.hot_path_group``;
    not imported: importing faust here would read this script's ``--loop`` flag as its own)."""
    from streamproc.runtime.hotapp import hot_path_group as of

    return of(app_id)


def wait_group(
    group: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120, members: int = 1
) -> None:
    """Until the variant's consumer group is stable with a member (partitions assigned)."""
    admin = AdminClient({"bootstrap.servers": BROKER})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{group} exited; see {log}")
        desc = admin.describe_consumer_groups([group])[group]
        try:
            g = desc.result(10)
            if g.state == ConsumerGroupState.STABLE and len(g.members) >= members:
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{group} not stable in {timeout:.0f} s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def forward(p: Producer, dst: str, m: Any) -> None:
    """Produce ``m``'s bytes to the same partition of ``dst``, waiting while the queue is full
    (both ceiling loops: a preloaded source outruns the producer's queue)."""
    while True:
        try:
            p.produce(dst, m.value(), m.key(), m.partition(), timestamp=m.timestamp()[1])
            return
        except BufferError:
            p.poll(0.01)


def confluent_loop_eos(src: str, dst: str, group: str, interval_s: float = 0.02) -> int:
    """The exactly-once ceiling: the same consume -> produce loop in Kafka transactions.

    The topic layout and the commit interval of ``streamproc eos`` (20 ms), offsets sent with
    the consumer's group metadata (KIP-447), read_committed source; no transform. Each
    commit's parts are timed; the summary goes to stdout (the run's log) at SIGTERM.
    """
    c = Consumer(
        {
            "bootstrap.servers": BROKER,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 20,
        }
    )
    p = Producer(
        {
            "bootstrap.servers": BROKER,
            "linger.ms": 5,
            "enable.idempotence": True,
            "acks": "all",
            "transactional.id": f"{group}-loop",
            "transaction.timeout.ms": 10_000,
        }
    )
    times = CommitTimes()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    c.subscribe([src])
    p.init_transactions(30)
    offsets: dict[tuple[str, int], int] = {}
    opened = time.monotonic()
    in_txn = False
    while not stopping.is_set():
        for m in c.consume(2000, 0.005):
            if m.error():
                continue
            if not in_txn:
                p.begin_transaction()
                in_txn, opened = True, time.monotonic()
            forward(p, dst, m)
            offsets[(m.topic(), m.partition())] = m.offset() + 1
        p.poll(0)
        if in_txn and time.monotonic() - opened >= interval_s:
            tps = [TopicPartition(t, q, o) for (t, q), o in offsets.items()]
            t0 = time.monotonic()
            p.send_offsets_to_transaction(tps, c.consumer_group_metadata(), 10)
            t1 = time.monotonic()
            p.flush(10)
            t2 = time.monotonic()
            p.commit_transaction(10)
            t3 = time.monotonic()
            for part, d in (("send_offsets", t1 - t0), ("flush", t2 - t1),
                            ("commit_txn", t3 - t2), ("total", t3 - t0)):  # fmt: skip
                times.add(part, d)
            offsets.clear()
            in_txn = False
    if in_txn:
        p.abort_transaction(10)
    print(f"confluent loop eos {times.summary()}", flush=True)
    c.close()
    return 0


def commit_parts(log: Path) -> str:
    """The last commit-parts summary a variant's log holds (eos variants), or ''."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if "commit parts" in ln]
    return lines[-1][lines[-1].index("commit parts") :] if lines else ""


def confluent_loop(src: str, dst: str, group: str) -> int:
    """The ceiling: consume and produce the same bytes, no transform, until killed."""
    c = Consumer(
        {
            "bootstrap.servers": BROKER,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
        }
    )
    p = Producer({"bootstrap.servers": BROKER, "linger.ms": 5, "enable.idempotence": True})
    c.subscribe([src])
    while True:
        for m in c.consume(2000, 0.005):
            if m.error():
                continue
            forward(p, dst, m)
        p.poll(0)


@dataclass
class Variant:
    label: str
    # (source, sink, dlq, group, tmp) -> command line
    command: Callable[[str, str, str, str, Path], list[str]]
    # The consumer group its members join, given the group (app id) it was started with.
    joins: Callable[[str], str] = lambda group: group


@dataclass
class Row:
    label: str
    kind: str
    with_startup: float
    steady: float
    cpu_per_100k: float
    p50: float
    p99: float
    got: int
    first_s: float = float("nan")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-peer-"))
        self.keyring = Keyring.generate()
        self.keyring_path = self.tmp / "keyring.json"
        self.keyring.save(self.keyring_path)
        self.key_hex = os.urandom(32).hex()
        self.topics: list[str] = []

    def schema(self, kind: str) -> Path:
        """The policy streamproc runs. Customers: the shipped one without its record-level k
        (the peers group nothing; the k-anonymity buffer is measured in bench_anonymity)."""
        if kind != "customers":
            return ROOT / "schemas" / SCHEMAS[kind]
        path = self.tmp / "customer_profile.no-k.avsc"
        if not path.exists():
            doc = policy_without_k(read_schema_json(ROOT / "schemas" / SCHEMAS[kind])[0])
            path.write_text(json.dumps(doc))
        return path

    def data(self, kind: str) -> tuple[list[bytes], Path, Path]:
        plan = compile_plan(self.schema(kind), self.keyring)
        if kind == "customers":
            recs = [r for r, _ in customer_records(2000, seed=11)]
        else:
            rng = random.Random(11)
            recs = [claim_record(i, rng) for i in range(2000)]
        base = [single_object(plan.source_schema, r) for r in recs]
        derived = self.tmp / f"{kind}.derived.avsc"
        derived.write_text(json.dumps(plan.derived_schema_json))
        return base, self.schema(kind), derived

    def preload(self, kind: str, n: int, suffix: str = "") -> tuple[list[bytes], Path, Path, str]:
        """A fresh source topic holding ``n`` records of ``kind``: the data and the topic."""
        base, src_schema, derived = self.data(kind)
        src = f"peer.{uuid.uuid4().hex[:8]}.{kind}{suffix}"
        create_topics(src)
        self.topics.append(src)
        produce(src, [base[i % len(base)] for i in range(n)])
        return base, src_schema, derived, src

    def topology(self, kind: str, src: str, dst: str, dlq: str, guarantee: str) -> Path:
        path = self.tmp / f"{src}.{guarantee}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "name": f"peer-{kind}",
                    "source": {
                        "topic": src,
                        "schema": str(self.schema(kind)),
                        "partitions": PARTITIONS,
                    },
                    "sink": {"topic": dst},
                    "dead_letter": {"topic": dlq},
                    "strict": kind == "claims",
                    "processing_guarantee": guarantee,
                    "lineage": {"topic": None, "file": str(self.tmp / "lineage.jsonl")},
                }
            )
        )
        return path

    def variants(self, kind: str, src_schema: Path, derived: Path) -> list[Variant]:
        py = sys.executable

        def quix(src: str, dst: str, dlq: str, group: str, tmp: Path) -> list[str]:
            # The venv is made on first use only: an --only run without quix needs none.
            qpy = str(quix_python())
            return [
                qpy, str(ROOT / "load" / "peer_quix_app.py"), "--kind", kind, "--source", src,
                "--sink", dst, "--group", group, "--source-schema", str(src_schema),
                "--sink-schema", str(derived), "--key-hex", self.key_hex, "--broker", BROKER,
            ]  # fmt: skip

        def loop(src: str, dst: str, dlq: str, group: str, tmp: Path) -> list[str]:
            return [py, "-m", "load.bench_peer", "--loop", src, dst, group]

        def loop_eos(src: str, dst: str, dlq: str, group: str, tmp: Path) -> list[str]:
            return [py, "-m", "load.bench_peer", "--loop-eos", src, dst, group]

        def faust_agent(src: str, dst: str, dlq: str, group: str, tmp: Path) -> list[str]:
            topo = self.topology(kind, src, dst, dlq, "at_least_once")
            return [py, "-m", "load.peer_faust_app", str(topo), str(self.keyring_path), group]

        def worker(guarantee: str) -> Callable[[str, str, str, str, Path], list[str]]:
            def cmd(src: str, dst: str, dlq: str, group: str, tmp: Path) -> list[str]:
                topo = self.topology(kind, src, dst, dlq, guarantee)
                return [
                    py, "-m", "streamproc.cli.main", "worker", "--topology", str(topo),
                    "--keyring", str(self.keyring_path), "--app-id", group,
                    "--loglevel", "warning", *self.args.worker_args.split(),
                ]  # fmt: skip

            return cmd

        return [
            Variant("quix app", quix),
            Variant("confluent loop", loop),
            Variant("confluent loop eos", loop_eos),
            Variant("faust agent", faust_agent),
            # The worker's sanitize hot path joins "<app id>-sanitize".
            Variant("streamproc alo", worker("at_least_once"), hot_path_group),
            Variant("streamproc eos", worker("exactly_once"), hot_path_group),
        ]

    def start(self, cmd: list[str], label: str, run: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp / f"{run}.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "STREAMPROC_BROKER": BROKER,
            "STREAMPROC_DATA_DIR": str(self.tmp / run),
            "STREAMPROC_METRICS_PORT": "0",
        }
        with log.open("ab") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        return proc, log

    def throughput(self, v: Variant, kind: str, src: str) -> tuple[float, float, float, int, float]:
        run = uuid.uuid4().hex[:8]
        dst, dlq, group = f"peer.{run}.out", f"peer.{run}.dlq", f"peer-{run}"
        create_topics(dst, dlq)
        self.topics += [dst, dlq]
        n = self.args.records
        counted: list[float] = []
        ready = threading.Event()
        procs: list[subprocess.Popen[bytes]] = []

        def count() -> None:
            c = reader(f"count-{run}")
            c.subscribe([dst])
            got, first, last = 0, 0.0, 0.0
            deadline = time.monotonic() + self.args.timeout
            ready.set()
            while got < n and time.monotonic() < deadline:
                if procs and procs[0].poll() is not None:
                    break  # the variant died: report what arrived
                msgs = c.consume(10000, 0.01)
                if msgs:
                    now = time.monotonic()
                    k = sum(1 for m in msgs if not m.error())
                    if k and not got:
                        first = now
                    if k:
                        got, last = got + k, now
            c.close()
            counted[:] = [first, last, got]

        t = threading.Thread(target=count)
        t.start()
        ready.wait()
        t0 = time.monotonic()
        proc, log = self.start(v.command(src, dst, dlq, group, self.tmp), v.label, run)
        procs.append(proc)
        t.join()
        cpu = tree_cpu(proc.pid)
        stop(proc)
        first, last, got = counted
        if got < n:
            print(f"    {v.label}: {got}/{n} records (see {log})", flush=True)
        with_startup = got / (last - t0) if last > t0 else float("nan")
        steady = got / (last - first) if last > first else float("nan")
        first_s = first - t0 if got else float("nan")
        return with_startup, steady, cpu / max(got, 1) * 100_000, got, first_s

    def first_output(self, v: Variant, kind: str, src: str) -> float:
        """Seconds from the variant's process start to its first record at the sink
        (read_committed; the reader is assigned and positioned before the start)."""
        run = uuid.uuid4().hex[:8]
        dst, dlq, group = f"peer.{run}.fout", f"peer.{run}.fdlq", f"peer-first-{run}"
        create_topics(dst, dlq)
        self.topics += [dst, dlq]
        c = reader(f"first-{run}")
        c.subscribe([dst])
        deadline = time.monotonic() + 30
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(0.05)
        for _ in range(20):  # past the reader's own offset lookup
            c.poll(0.01)
        cmd = v.command(src, dst, dlq, group, self.tmp)
        t0 = time.monotonic()
        proc, log = self.start(cmd, v.label, run)
        first = float("nan")
        try:
            while time.monotonic() - t0 < self.args.timeout and proc.poll() is None:
                if any(not m.error() for m in c.consume(100, 0.005)):
                    first = time.monotonic() - t0
                    break
        finally:
            stop(proc)
            c.close()
        if first != first:
            print(f"    {v.label}: no output (see {log})", flush=True)
        return first

    def scale(self, workers: int, kind: str = "customers", pin: bool = False) -> float:
        """Steady records/s of ``workers`` streamproc workers (one group) on 12 partitions;
        ``pin``: worker i on CPU i only (``taskset``), so one worker has one core and two
        have two, whatever the broker and the clients take of them."""
        base, _, _ = self.data(kind)
        run = uuid.uuid4().hex[:8]
        src, dst, dlq, group = (f"peer.{run}.s12", f"peer.{run}.s12out", f"peer.{run}.s12dlq",
                                f"peer-scale-{run}")  # fmt: skip
        create_topics(src, dst, dlq, partitions=12)
        self.topics += [src, dst, dlq]
        topo = self.topology(kind, src, dst, dlq, "at_least_once")
        topo.write_text(topo.read_text().replace(f"partitions: {PARTITIONS}", "partitions: 12"))
        cmd = [sys.executable, "-m", "streamproc.cli.main", "worker", "--topology", str(topo),
               "--keyring", str(self.keyring_path), "--app-id", group]  # fmt: skip
        cpus = sorted(os.sched_getaffinity(0))
        procs = [self.start([*(["taskset", "-c", str(cpus[i % len(cpus)])] if pin else []),
                             *cmd, "--instance", f"w{i}"], "scale", f"{run}-{i}")[0]
                 for i in range(workers)]  # fmt: skip
        # Every member in the group before the records flow.
        wait_group(hot_path_group(group), procs[0], self.tmp / f"{run}-0.log", members=workers)
        produce(src, [base[i % len(base)] for i in range(self.args.records)])
        c = reader(f"count-{run}")
        c.subscribe([dst])
        got, first, last = 0, 0.0, 0.0
        deadline = time.monotonic() + self.args.timeout
        while got < self.args.records and time.monotonic() < deadline:
            k = sum(1 for m in c.consume(10000, 0.01) if not m.error())
            if k:
                now = time.monotonic()
                first = first or now
                got, last = got + k, now
        c.close()
        for proc in procs:
            stop(proc)
        return got / (last - first) if last > first else float("nan")

    def latency(self, v: Variant, base: list[bytes]) -> tuple[float, float]:
        p50, p99, _parts = self.latency_parts(v, base)
        return p50, p99

    def latency_parts(self, v: Variant, base: list[bytes]) -> tuple[float, float, str]:
        """p50/p99 ms at the paced rate and the variant's commit-parts summary (eos; the
        worker logs it at info: ``--worker-args='--loglevel info'``)."""
        run = uuid.uuid4().hex[:8]
        src, dst, dlq, group = (f"peer.{run}.lin", f"peer.{run}.lout", f"peer.{run}.ldlq",
                                f"peer-lat-{run}")  # fmt: skip
        create_topics(src, dst, dlq)
        self.topics += [src, dst, dlq]
        proc, log = self.start(v.command(src, dst, dlq, group, self.tmp), v.label, run)
        try:
            # The warm-up records make the group form for variants that subscribe lazily.
            wait_group(v.joins(group), proc, log)
            p50, p99 = paced_latency(src, dst, base, self.args.rate, self.args.seconds)
        finally:
            stop(proc)
        return p50, p99, commit_parts(log)


def paced_latency(
    src: str, dst: str, base: list[bytes], rate: int, seconds: float
) -> tuple[float, float]:
    """Produce at ``rate``/s; p50/p99 ms of (read_committed sink arrival - source timestamp)."""
    lat: list[float] = []
    total = int(rate * seconds)
    measure_from = [float("inf")]

    def consume() -> None:
        c = reader(f"lat-{uuid.uuid4()}")
        c.subscribe([dst])
        deadline = time.monotonic() + seconds + 60
        while len(lat) < total and time.monotonic() < deadline:
            for m in c.consume(1000, 0.002):
                if not m.error() and m.timestamp()[1] >= measure_from[0]:
                    lat.append(time.time() * 1000 - m.timestamp()[1])
        c.close()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    time.sleep(2.0)
    p = Producer({"bootstrap.servers": BROKER, "linger.ms": 1, "enable.idempotence": True})
    per_tick = max(1, rate // 100)  # 10 ms slices

    def paced(n: int) -> None:
        start, sent = time.monotonic(), 0
        while sent < n:
            delay = start + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for _ in range(min(per_tick, n - sent)):
                p.produce(src, value=base[sent % len(base)], key=str(sent % 5000).encode())
                sent += 1
            p.poll(0)

    paced(rate * 2)  # warm-up, not measured
    p.flush(30)
    time.sleep(1.0)
    measure_from[0] = time.time() * 1000
    paced(total)
    p.flush(30)
    t.join(seconds + 70)
    lat.sort()
    if len(lat) < 0.99 * total:
        # The variant could not keep up with the rate: the samples that arrived are the early
        # ones and would flatter it. Reported as missing, not as a figure.
        print(f"    only {len(lat)}/{total} records arrived in time: latency not reported")
        return float("nan"), float("nan")
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def print_table(rows: list[Row], records: int) -> None:
    print()
    cpus = len(os.sched_getaffinity(0))
    print(f"peer table: {records} records per kind, {PARTITIONS} partitions, broker {BROKER}, "
          f"{cpus} CPUs (busy machine: figures are indicative)")  # fmt: skip
    head = (f"{'kind':<10} {'variant':<16} {'rec/s incl':>10} {'rec/s steady':>12} "
            f"{'CPU s/100k':>10} {'p50 ms':>7} {'p99 ms':>7} {'1st out s':>9} {'x quix incl':>11} "
            f"{'x quix steady':>13}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for kind in dict.fromkeys(r.kind for r in rows):
        quix = next((r for r in rows if r.kind == kind and r.label == "quix app"), None)
        for r in (r for r in rows if r.kind == kind):
            ri = r.with_startup / quix.with_startup if quix else float("nan")
            rs = r.steady / quix.steady if quix else float("nan")
            print(f"{kind:<10} {r.label:<16} {r.with_startup:>10,.0f} {r.steady:>12,.0f} "
                  f"{r.cpu_per_100k:>10.1f} {r.p50:>7.1f} {r.p99:>7.1f} {r.first_s:>9.2f} "
                  f"{ri:>10.2f}x {rs:>12.2f}x")  # fmt: skip
        alo = next((r for r in rows if r.kind == kind and r.label == "streamproc alo"), None)
        eos = next((r for r in rows if r.kind == kind and r.label == "streamproc eos"), None)
        if alo and eos:
            print(f"{kind:<10} eos / alo (steady): {eos.steady / alo.steady:.2f}x")


def startup_table(bench: Bench, args: argparse.Namespace, only: list[str]) -> None:
    """Time to first output, ``args.startup`` rounds alternating the variants; medians."""
    for kind in args.kinds.split(","):
        _base, src_schema, derived, src = bench.preload(kind, args.startup_records, "-start")
        variants = [
            v
            for v in bench.variants(kind, src_schema, derived)
            if not only or any(v.label.startswith(o) for o in only)
        ]
        times: dict[str, list[float]] = {v.label: [] for v in variants}
        for r in range(args.startup):
            for v in variants if r % 2 == 0 else variants[::-1]:
                times[v.label].append(bench.first_output(v, kind, src))
                print(f"  {kind} round {r + 1}: {v.label:<16} {times[v.label][-1]:5.2f} s",
                      flush=True)  # fmt: skip
        load = os.getloadavg()
        print(f"\ntime to first output, {kind}: {args.startup} rounds, "
              f"load average {load[0]:.1f} / {load[1]:.1f} after")  # fmt: skip
        quix = statistics.median(times["quix app"]) if "quix app" in times else float("nan")
        for label, ts in times.items():
            med = statistics.median(ts)
            print(f"{label:<16} median {med:5.2f} s  min {min(ts):5.2f}  max {max(ts):5.2f}  "
                  f"x quix {med / quix:5.2f}")  # fmt: skip


def latency_ab(bench: Bench, args: argparse.Namespace, only: list[str]) -> None:
    """Only the paced latency, ``args.latency_ab`` rounds alternating the variants (the order
    reversed every other round), each with the load average and, for the exactly-once
    variants, the commit's parts; medians of p50/p99 per variant."""
    for kind in args.kinds.split(","):
        base, src_schema, derived = bench.data(kind)
        variants = [
            v
            for v in bench.variants(kind, src_schema, derived)
            if not only or any(v.label.startswith(o) for o in only)
        ]
        got: dict[str, list[tuple[float, float]]] = {v.label: [] for v in variants}
        for r in range(args.latency_ab):
            for v in variants if r % 2 == 0 else variants[::-1]:
                p50, p99, parts = bench.latency_parts(v, base)
                got[v.label].append((p50, p99))
                load = os.getloadavg()
                print(f"  {kind} round {r + 1}: {v.label:<18} p50 {p50:6.1f} p99 {p99:6.1f} ms  "
                      f"load {load[0]:.1f}/{load[1]:.1f}  {parts}", flush=True)  # fmt: skip
        print(f"\nlatency at {args.rate}/s, {kind}: {args.latency_ab} rounds "
              f"(median of the rounds' p50 / p99)")  # fmt: skip
        for label, xs in got.items():
            ok = [x for x in xs if x[0] == x[0]]  # NaN: the variant did not keep up
            if ok:
                p50 = statistics.median(x[0] for x in ok)
                p99 = statistics.median(x[1] for x in ok)
                print(f"{label:<18} p50 {p50:6.1f} p99 {p99:6.1f} ms  ({len(ok)}/{len(xs)} runs)")
            else:
                print(f"{label:<18} no run kept up")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=600.0, help="per throughput run")
    ap.add_argument("--kinds", default="customers,claims")
    ap.add_argument("--only", default="", help="comma-separated variant label prefixes")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--worker-args", default="", help="extra streamproc worker arguments")
    ap.add_argument("--scale", action="store_true", help="also 1 vs 2 workers on 12 partitions")
    ap.add_argument("--scale-kind", default="customers", help="the record of the scale-out run")
    ap.add_argument("--pin", action="store_true", help="scale-out: worker i on CPU i only")
    ap.add_argument("--startup", type=int, default=0, help="only time to first output, N rounds")
    ap.add_argument("--startup-records", type=int, default=2000)
    ap.add_argument(
        "--latency-ab", type=int, default=0, help="only the paced latency, N alternating rounds"
    )
    ap.add_argument("--loop", nargs=3, metavar=("SRC", "DST", "GROUP"), help=argparse.SUPPRESS)
    ap.add_argument("--loop-eos", nargs=3, metavar=("SRC", "DST", "GROUP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loop:
        return confluent_loop(*args.loop)
    if args.loop_eos:
        return confluent_loop_eos(*args.loop_eos)
    bench = Bench(args)
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    mode = latency_ab if args.latency_ab else startup_table if args.startup else None
    if mode is not None:  # a single-purpose run instead of the peer table
        try:
            mode(bench, args, only)
        finally:
            delete_topics(bench.topics)
        return 0
    rows: list[Row] = []
    try:
        for kind in args.kinds.split(","):
            base, src_schema, derived, src = bench.preload(kind, args.records)
            print(f"== {kind}: {args.records} records preloaded ({len(base[0])} B first)")
            for v in bench.variants(kind, src_schema, derived):
                if only and not any(v.label.startswith(o) for o in only):
                    continue
                incl, steady, cpu, got, first_s = bench.throughput(v, kind, src)
                p50 = p99 = float("nan")
                if not args.no_latency:
                    p50, p99 = bench.latency(v, base)
                rows.append(Row(v.label, kind, incl, steady, cpu, p50, p99, got, first_s))
                print(f"  {v.label:<16} {incl:>9,.0f} rec/s incl  {steady:>9,.0f} steady  "
                      f"cpu {cpu:5.1f} s/100k  p50 {p50:6.1f} p99 {p99:6.1f} ms  "
                      f"1st out {first_s:5.2f} s")  # fmt: skip
                sys.stdout.flush()
        scale = None
        if args.scale:
            kw = {"kind": args.scale_kind, "pin": args.pin}
            scale = (bench.scale(1, **kw), bench.scale(2, **kw))  # type: ignore[arg-type]
    finally:
        delete_topics(bench.topics)
    print_table(rows, args.records)
    if scale:
        print(
            f"12 partitions, {args.scale_kind}, streamproc alo: 1 worker {scale[0]:,.0f} rec/s, "
            f"2 workers {scale[1]:,.0f} rec/s ({scale[1] / scale[0]:.2f}x; "
            f"{len(os.sched_getaffinity(0))} CPUs shared with the broker and the clients"
            f"{'; worker i pinned to CPU i' if args.pin else ''})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
