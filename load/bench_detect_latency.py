"""Alert latency and throughput of the detector agent on the local broker (``make bench``).

1. Train a small model (``streamproc detector train`` on a generated baseline).
2. Throughput: preload 8 days of a trace's access events (compressed time), start a real
   ``streamproc worker`` on a detect topology, read ``streamproc_access_events_total`` from
   its metrics endpoint: events/s from the first scored event to the last.
3. Alert latency: replay the following days as background traffic at a fixed rate and stage
   incidents into it (one bulk export each: a principal past the model's warm-up, a
   never-used address, a never-touched dataset, a large volume), each for a different
   principal so the per-principal cooldown does not merge them. Latency = time the
   containment message is read from the containment topic - time the triggering event was
   handed to the producer.

Usage: python load/bench_detect_latency.py [--principals 70] [--incidents 60] [--rate 2000]
       [--engine hotpath|agent]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from fastavro import schemaless_reader

from streamproc.detector.model import Detector
from streamproc.keys import Keyring
from streamproc.testing.access import (
    CONTAINMENT_SCHEMA,
    AccessEncoder,
    baseline_trace,
    load_schema,
    night_of,
)

ROOT = Path(__file__).resolve().parents[1]

BROKER = os.environ.get("STREAMPROC_BROKER", "127.0.0.1:9092")
PARTITIONS = 3
HISTORY_DAYS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def producer() -> Producer:
    return Producer({"bootstrap.servers": BROKER, "linger.ms": 1, "enable.idempotence": True})


def produce(p: Producer, topic: str, enc: AccessEncoder, e: dict[str, Any]) -> None:
    while True:
        try:
            p.produce(topic, value=enc.encode(e), key=enc.key(e))
            return
        except BufferError:
            p.poll(0.01)


def scored(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search(r"^streamproc_access_events_total\{[^}]*\} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def incident(victim: str, seen: set[str], catalog: list[str], ts: int, k: int) -> dict[str, Any]:
    """One bulk export: a dataset the victim never touched, from a never-used address."""
    new = [d for d in catalog if d not in seen] or catalog
    return {
        "event_id": f"bench-incident-{k:04d}",
        "ts": ts,
        "principal": victim,
        "dataset": new[k % len(new)],
        "action": "EXPORT",
        "rows": 40_000_000,
        "bytes": 7_200_000_000,
        "source_ip": f"198.51.100.{k % 250 + 1}",
        "success": True,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--principals", type=int, default=70)
    ap.add_argument("--incidents", type=int, default=60)
    ap.add_argument("--rate", type=int, default=2000, help="background events/s")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument(
        "--engine", choices=("hotpath", "agent"), default="hotpath", help="the worker's --engine"
    )
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-detect-"))
    t0 = time.monotonic()
    base = baseline_trace(work / "baseline.jsonl", seed=1000, principals=25, days=14)
    model = work / "access-detector.skops"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "streamproc.cli.main",
            "detector",
            "train",
            "--events",
            str(work / "baseline.jsonl"),
            "--model",
            str(model),
            "--holdout",
            "0.5",
            "--target-fpr",
            "0.003",
        ],
        check=True,
        capture_output=True,
    )
    events = baseline_trace(work / "trace.jsonl", seed=3, principals=a.principals, days=11)
    cut = night_of(events, HISTORY_DAYS, 0.0)
    history = [e for e in events if e["ts"] < cut]
    background = [e for e in events if e["ts"] >= cut]
    prep = time.monotonic() - t0

    run = uuid.uuid4().hex[:8]
    source, sink, dlq = (f"bench.{run}.access.{x}" for x in ("events", "containment", "dlq"))
    admin = AdminClient({"bootstrap.servers": BROKER})
    for f in admin.create_topics(
        [NewTopic(t, PARTITIONS, 1) for t in (source, sink, dlq)]
    ).values():
        f.result(30)
    keyring = work / "keyring.json"
    Keyring.generate().save(keyring)
    topo = work / "access.yaml"
    topo.write_text(
        yaml.safe_dump(
            {
                "name": "access-bench",
                "kind": "detect",
                "source": {
                    "topic": source,
                    "schema": str(ROOT / "schemas" / "access_event.avsc"),
                    "partitions": PARTITIONS,
                },
                "sink": {"topic": sink, "schema": str(CONTAINMENT_SCHEMA)},
                "dead_letter": {"topic": dlq},
                "detector": {"model": str(model)},
            }
        )
    )

    enc = AccessEncoder()
    p = Producer({"bootstrap.servers": BROKER, "linger.ms": 20, "enable.idempotence": True})
    for e in history:
        produce(p, source, enc, e)
    p.flush(60)

    port = free_port()
    log = (work / "worker.log").open("ab")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamproc.cli.main",
            "worker",
            "--topology",
            str(topo),
            "--keyring",
            str(keyring),
            "--app-id",
            f"bench-detect-{run}",
            "--metrics-port",
            str(port),
            "--loglevel",
            "warning",
            "--engine",
            a.engine,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "STREAMPROC_BROKER": BROKER, "STREAMPROC_DATA_DIR": str(work / "d")},
        start_new_session=True,
    )
    try:
        # Throughput over the preloaded history.
        first = last = 0.0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                n = scored(port)
            except OSError:
                n = 0.0
            now = time.monotonic()
            if n and not first:
                first, n_first = now, n
            if n >= len(history):
                last = now
                break
            if worker.poll() is not None:
                raise SystemExit(f"worker exited; see {work / 'worker.log'}")
            time.sleep(0.25)  # a scrape costs the worker's loop time
        if not last:
            raise SystemExit(f"history not scored in time; see {work / 'worker.log'}")
        rate = (len(history) - n_first) / max(last - first, 1e-9)

        # Alert latency under background traffic.
        sent: dict[str, float] = {}
        lat: list[float] = []
        others: Counter[str] = Counter()
        done = threading.Event()
        schema = load_schema(CONTAINMENT_SCHEMA)

        def consume() -> None:
            c = Consumer(
                {
                    "bootstrap.servers": BROKER,
                    "group.id": f"bench-{run}",
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 5,
                }
            )
            c.subscribe([sink])
            while not done.is_set():
                for m in c.consume(100, 0.05):
                    if m.error():
                        continue
                    now = time.time()
                    rec = schemaless_reader(io.BytesIO(m.value()[10:]), schema, None)
                    trigger = rec["event_ids"][-1]
                    if trigger in sent:
                        lat.append((now - sent[trigger]) * 1000)
                    else:
                        others[rec["action"]] += 1
            c.close()

        t = threading.Thread(target=consume, daemon=True)
        t.start()
        time.sleep(2.0)  # consumer joined
        p = producer()
        # Victims are principals the detector already judges when their incident arrives
        # (after the cut): past the model's warm-up, min_history events and min_age_ms of
        # event time, since a principal still in warm-up is not judged at all.
        det = Detector.load(model)
        first: dict[str, int] = {}
        count: Counter[str] = Counter()
        for e in history:
            first[e["principal"]] = min(first.get(e["principal"], e["ts"]), e["ts"])
            count[e["principal"]] += 1
        principals = sorted(
            p for p in first if count[p] >= det.min_history and cut - first[p] >= det.min_age_ms
        )
        if len(principals) < a.incidents:
            raise SystemExit(
                f"only {len(principals)} principals past warm-up for {a.incidents} incidents "
                "(one each): raise --principals or lower --incidents"
            )
        seen: dict[str, set[str]] = {}
        for e in history:
            seen.setdefault(e["principal"], set()).add(e["dataset"])
        catalog = sorted({e["dataset"] for e in events})
        every = max(1, min(len(background) // (a.incidents + 1), a.rate // 5))
        k = 0
        start = time.monotonic()
        for i, e in enumerate(background):
            target = start + i / a.rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            produce(p, source, enc, e)
            if i % every == every - 1 and k < a.incidents:
                victim = principals[k]
                inc = incident(victim, seen[victim], catalog, e["ts"], k)
                sent[inc["event_id"]] = time.time()
                produce(p, source, enc, inc)
                k += 1
            p.poll(0)
            if k >= a.incidents and i >= every * (a.incidents + 1):
                break
        p.flush(30)
        deadline = time.monotonic() + 10
        while len(lat) < k and time.monotonic() < deadline:
            time.sleep(0.1)
        done.set()
        t.join(5)
        took = time.monotonic() - start
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        for f in admin.delete_topics([source, sink, dlq]).values():
            with contextlib.suppress(Exception):
                f.result(30)

    lat.sort()

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * q))] if lat else float("nan")

    print(
        f"detector ({a.engine} engine), local broker, {PARTITIONS} partitions, model on "
        f"{len(base)} baseline events (prep {prep:.0f} s)"
    )
    print(f"{'measure':<44} {'value':>12}")
    print(f"{'agent throughput (history, events/s)':<44} {rate:>12,.0f}")
    print(f"{'  events scored':<44} {len(history):>12,}")
    print(f"{'background traffic (events/s)':<44} {a.rate:>12,}")
    print(f"{'staged incidents / contained':<44} {f'{k} / {len(lat)}':>12}")
    print(f"{'alert latency p50 (ms)':<44} {pct(0.5):>12.0f}")
    print(f"{'alert latency p99 (ms)':<44} {pct(0.99):>12.0f}")
    print(f"{'alert latency max (ms)':<44} {(lat[-1] if lat else float('nan')):>12.0f}")
    other = ", ".join(f"{n} {act}" for act, n in sorted(others.items())) or "none"
    print(f"{'other containments (background)':<44} {other:>12}")
    print(f"(latency phase {took:.0f} s; goal p99 < 1000 ms)")
    if not a.keep:
        for path in sorted(work.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        work.rmdir()
    return 0 if len(lat) >= min(50, a.incidents) and pct(0.99) < 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
