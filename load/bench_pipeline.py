"""End-to-end pipeline benchmark on the local broker (``make bench``).

All variants run in one process tree, on the same machine, on the same pre-encoded data:

- ``confluent-kafka loop``: a plain consume/produce loop (librdkafka), no transform;
- ``faust relay (naive)``: ``async for event`` + ``await topic.send`` (the textbook agent);
- ``faust relay (tuned)``: streamproc's relay (take_events + batched idempotent produce);
- ``faust sanitizer (helper process)``: the real sanitizing agent on customer_profile records,
  decode + sanitize + encode in its helper process (``--offload 1``; the default with 2+ CPUs);
- ``faust sanitizer (inline)``: the same on the event loop (``--offload 0``).

Throughput: N records preloaded, the worker started, records/s from first to last output.
Latency: records produced at a fixed rate while the worker runs; p50/p99 of (time the
sink record is consumed - its source timestamp), which includes the consumer's fetch.

Usage: python load/bench_pipeline.py [--records 100000] [--rate 5000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streamproc.avro.schema import read_schema_json
from streamproc.keys import Keyring
from streamproc.policy import compile_plan
from streamproc.testing.customers import customer_records, policy_without_k, single_object

ROOT = Path(__file__).resolve().parents[1]

BROKER = os.environ.get("STREAMPROC_BROKER", "127.0.0.1:9092")
PARTITIONS = 3


def topics(*names: str) -> None:
    admin = AdminClient({"bootstrap.servers": BROKER})
    futs = admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    for f in futs.values():
        f.result(30)


def preload(topic: str, values: list[bytes]) -> None:
    p = Producer(
        {
            "bootstrap.servers": BROKER,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "enable.idempotence": True,
        }
    )
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topic, value=v, key=str(i % 5000).encode())
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)


def count_outputs(topic: str, n: int, timeout: float = 300) -> tuple[float, float, int]:
    """(first, last) arrival times of ``n`` records on ``topic``."""
    c = Consumer(
        {
            "bootstrap.servers": BROKER,
            "group.id": f"bench-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
        }
    )
    c.subscribe([topic])
    got, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + timeout
    try:
        while got < n and time.monotonic() < deadline:
            for m in c.consume(10000, 0.01):
                if m.error():
                    continue
                now = time.monotonic()
                if not got:
                    first = now
                got += 1
                last = now
    finally:
        c.close()
    return first, last, got


def start_worker(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("ab")
    # The relay baselines are not part of the production worker: they run as their own module.
    cmd = ["streamproc.testing.relay"] if "--relay" in args else ["streamproc.cli.main", "worker"]
    proc = subprocess.Popen(
        [sys.executable, "-m", *cmd, *args, "--loglevel", "info"],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env, "STREAMPROC_METRICS_PORT": "0"},
    )
    fh.close()
    return proc


def wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Until the worker logs that it is ready (partitions assigned, agents running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "[^Worker]: Ready" in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise SystemExit(f"worker exited; see {log}")
        time.sleep(0.2)
    raise SystemExit(f"worker not ready in {timeout:.0f} s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def confluent_loop(src: str, dst: str, n: int, stop_evt: threading.Event) -> None:
    c = Consumer(
        {
            "bootstrap.servers": BROKER,
            "group.id": f"loop-{src}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
        }
    )
    p = Producer({"bootstrap.servers": BROKER, "linger.ms": 5, "enable.idempotence": True})
    c.subscribe([src])
    done = 0
    while not stop_evt.is_set() and done < n:
        for m in c.consume(1000, 0.005):
            if m.error():
                continue
            while True:
                try:
                    p.produce(
                        dst,
                        value=m.value(),
                        key=m.key(),
                        partition=m.partition(),
                        timestamp=m.timestamp()[1],
                    )
                    break
                except BufferError:
                    p.poll(0.01)
            done += 1
        p.poll(0)
    p.flush(30)
    c.close()


def latency_run(
    src: str, dst: str, values: list[bytes], rate: int, seconds: float
) -> tuple[float, float, int]:
    """Produce at ``rate``/s for ``seconds``; p50/p99 ms of sink arrival - source timestamp."""
    lat: list[float] = []
    total = int(rate * seconds)
    measure_from = [float("inf")]
    done = threading.Event()

    def consume() -> None:
        c = Consumer(
            {
                "bootstrap.servers": BROKER,
                "group.id": f"lat-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 5,
            }
        )
        c.subscribe([dst])
        deadline = time.monotonic() + seconds + 60
        while len(lat) < total and time.monotonic() < deadline:
            # A short wait: consume() blocks until 1000 records *or* the timeout, and each
            # record's latency is taken when consume() returns.
            for m in c.consume(1000, 0.002):
                if not m.error() and m.timestamp()[1] >= measure_from[0]:
                    lat.append(time.time() * 1000 - m.timestamp()[1])
        c.close()
        done.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    time.sleep(2.0)  # consumer joined
    p = Producer({"bootstrap.servers": BROKER, "linger.ms": 1, "enable.idempotence": True})
    tick = 0.01  # produce in 10 ms slices: pacing per record would cost the worker CPU
    per_tick = max(1, int(rate * tick))

    def paced(n: int) -> None:
        start = time.monotonic()
        sent = 0
        while sent < n:
            delay = start + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for _ in range(min(per_tick, n - sent)):
                p.produce(src, value=values[sent % len(values)], key=str(sent % 5000).encode())
                sent += 1
            p.poll(0)

    # Warm-up second (first-batch topic metadata and declarations), not measured.
    paced(rate)
    p.flush(30)
    time.sleep(1.0)
    measure_from[0] = time.time() * 1000
    paced(total)
    p.flush(30)
    done.wait(seconds + 70)
    lat.sort()
    if not lat:
        return float("nan"), float("nan"), 0
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(lat)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--only", default="", help="comma-separated label prefixes to run")
    args = ap.parse_args()
    n = args.records

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    keyring = Keyring.generate()
    keyring.save(tmp / "keyring.json")
    # The shipped policy without its record-level k: this compares hot paths, not the
    # k-anonymity buffer (load/bench_anonymity.py measures that).
    schema = tmp / "customer_profile.no-k.avsc"
    schema.write_text(
        json.dumps(policy_without_k(read_schema_json(ROOT / "schemas/customer_profile.avsc")[0]))
    )
    plan = compile_plan(schema, keyring)
    base = [single_object(plan.source_schema, r) for r, _ in customer_records(2000, seed=11)]
    values = [base[i % len(base)] for i in range(n)]
    print(
        f"records: {n} customer_profile (single-object, {len(base[0])} bytes avg-ish), "
        f"{PARTITIONS} partitions, broker {BROKER}"
    )

    rows: list[tuple[str, float, float, float]] = []

    only = [o.strip() for o in args.only.split(",") if o.strip()]

    def run(label: str, worker_args: list[str] | None, sink_of: str) -> None:
        if only and not any(label.startswith(o) for o in only):
            return
        run_id = uuid.uuid4().hex[:8]
        src, dst, dlq = f"b.{run_id}.in", f"b.{run_id}.{sink_of}", f"b.{run_id}.dlq"
        topics(src, dst, dlq)
        preload(src, values)
        stop_evt = threading.Event()
        env = {"STREAMPROC_DATA_DIR": str(tmp / run_id)}
        if worker_args is None:
            thread = threading.Thread(target=confluent_loop, args=(src, dst, n, stop_evt))
            thread.start()
        else:
            wargs = [a.format(src=src, dst=dst, dlq=dlq, tmp=tmp, id=run_id) for a in worker_args]
            if "--topology" in wargs:
                topo = tmp / f"{run_id}.yaml"
                topo.write_text(
                    yaml.safe_dump(
                        {
                            "name": f"bench{run_id}",
                            "source": {
                                "topic": src,
                                "schema": str(schema),
                                "partitions": PARTITIONS,
                            },
                            "sink": {"topic": dst},
                            "dead_letter": {"topic": dlq},
                            "lineage": {"topic": None, "file": str(tmp / "lineage.jsonl")},
                        }
                    )
                )
                wargs[wargs.index("--topology") + 1] = str(topo)
            proc = start_worker(wargs, env, tmp / f"{run_id}.log")
        first, last, got = count_outputs(dst, n)
        rate = got / (last - first) if last > first else float("nan")
        if worker_args is None:
            stop_evt.set()
            thread.join()
            p50 = p99 = float("nan")
            # Latency of the plain loop at the same rate.
            stop_evt = threading.Event()
            src2, dst2 = f"b.{run_id}.lin", f"b.{run_id}.lout"
            topics(src2, dst2)
            thread = threading.Thread(target=confluent_loop, args=(src2, dst2, 10**9, stop_evt))
            thread.start()
            time.sleep(3)
            p50, p99, _ = latency_run(src2, dst2, base, args.rate, args.seconds)
            stop_evt.set()
            thread.join()
        else:
            # A fresh worker on fresh topics, ready before the paced latency run starts.
            stop(proc)
            src2, dst2, dlq2 = f"b.{run_id}.lin", f"b.{run_id}.lout", f"b.{run_id}.ldlq"
            topics(src2, dst2, dlq2)
            wargs2 = [a.replace(src, src2).replace(dst, dst2).replace(dlq, dlq2) for a in wargs]
            if "--topology" in wargs2:
                topo2 = tmp / f"{run_id}-lat.yaml"
                topo2.write_text(
                    Path(wargs[wargs.index("--topology") + 1])
                    .read_text()
                    .replace(src, src2)
                    .replace(dst, dst2)
                    .replace(dlq, dlq2)
                )
                wargs2[wargs2.index("--topology") + 1] = str(topo2)
            wargs2[wargs2.index("--app-id") + 1] += "-lat"
            proc = start_worker(wargs2, env, tmp / f"{run_id}-lat.log")
            wait_ready(proc, tmp / f"{run_id}-lat.log")
            time.sleep(2)
            p50, p99, _ = latency_run(src2, dst2, base, args.rate, args.seconds)
            stop(proc)
        rows.append((label, rate, p50, p99))
        print(
            f"  {label:<28} {rate:>10,.0f} rec/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"
            f"   ({got}/{n} records)",
            flush=True,
        )

    run("confluent-kafka loop", None, "out")
    run(
        "faust relay (naive)",
        ["--relay", "{src}:{dst}", "--relay-naive", "--app-id", "naive-{id}"],
        "out",
    )
    run("faust relay (tuned)", ["--relay", "{src}:{dst}", "--app-id", "relay-{id}"], "out")
    keyring_args = ["--topology", "T", "--keyring", str(tmp / "keyring.json")]
    run(
        "faust sanitizer (helper process)",
        [*keyring_args, "--offload", "1", "--app-id", "off-{id}"],
        "clean",
    )
    run(
        "faust sanitizer (inline)",
        [*keyring_args, "--offload", "0", "--app-id", "san-{id}"],
        "clean",
    )

    by = {label: rate for label, rate, _, _ in rows}
    default = (
        "faust sanitizer (helper process)"
        if len(os.sched_getaffinity(0)) >= 2
        else "faust sanitizer (inline)"
    )
    if only:
        return 0
    print()
    relay = by["faust relay (tuned)"]
    print(
        "sanitizer, worker default on this machine "
        f"(--offload auto = {default.removeprefix('faust sanitizer ')}): "
        f"{by[default] / relay:.2f}x the tuned relay (goal >= 0.8x)"
    )
    print(f"sanitizer (inline) / tuned relay: {by['faust sanitizer (inline)'] / relay:.2f}x")
    print(
        f"tuned relay / naive relay: {by['faust relay (tuned)'] / by['faust relay (naive)']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
