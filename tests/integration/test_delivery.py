"""Delivery under faults on the real broker: kill -9 mid-run, and two workers in a group."""

from __future__ import annotations

import os
import re
import time
import urllib.request
from pathlib import Path

import pytest

from streamproc.keys import Keyring
from streamproc.pipeline import H_SOURCE_OFFSET, H_SOURCE_PARTITION
from streamproc.policy import compile_plan
from streamproc.testing.customers import customer_records, single_object
from tests.integration.kafka_io import drain, end_offsets, produce
from tests.integration.test_sanitize_pipeline import SCHEMA, free_port, write_topology

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _setup(
    make_topic, tmp_path: Path, partitions: int
) -> tuple[str, str, str, Path, Path, Keyring]:
    source = make_topic("customers.raw", partitions=partitions)
    sink, dlq = make_topic("clean", partitions), make_topic("dlq", partitions)
    lineage = make_topic("lineage")
    keyring = Keyring.generate()
    keyring.save(tmp_path / "keyring.json")
    topo = write_topology(tmp_path, source, sink, dlq, lineage)
    text = topo.read_text().replace("partitions: 3", f"partitions: {partitions}")
    topo.write_text(text)
    return source, sink, dlq, topo, tmp_path / "keyring.json", keyring


def _values(keyring: Keyring, n: int) -> list[bytes]:
    schema = compile_plan(SCHEMA, keyring).source_schema
    base = [single_object(schema, rec) for rec, _ in customer_records(1000, seed=5)]
    return [base[i % len(base)] for i in range(n)]


def _coords(msgs) -> list[tuple[int, int]]:
    out = []
    for m in msgs:
        h = dict(m.headers())
        out.append((int(h[H_SOURCE_PARTITION]), int(h[H_SOURCE_OFFSET])))
    return out


def test_kill_9_twice_loses_nothing(
    kafka_bootstrap, make_topic, worker_factory, tmp_path, capsys
) -> None:
    # 100k keeps make test short; STREAMPROC_CRASH_RECORDS=200000 is the size the issue quotes.
    n = int(os.environ.get("STREAMPROC_CRASH_RECORDS", "100000"))
    source, sink, dlq, topo, kr_path, keyring = _setup(make_topic, tmp_path, 3)
    produce(kafka_bootstrap, source, _values(keyring, n))
    args = ("--topology", str(topo), "--keyring", str(kr_path), "--app-id", f"crash-{source}")
    for attempt in range(2):
        w = worker_factory(*args, name=f"crash{attempt}")
        # Let it make progress, then kill it without any chance to flush or commit.
        deadline = time.monotonic() + 120
        target = (attempt + 1) * n // 4
        while sum(end_offsets(kafka_bootstrap, sink).values()) < target:
            assert time.monotonic() < deadline, "worker made no progress"
            time.sleep(0.2)
        w.kill9()
        # The kill landed mid-run: the sink (duplicates included) is still short of the source.
        assert sum(end_offsets(kafka_bootstrap, sink).values()) < n
    worker_factory(*args, name="final")
    # Drain until every source offset is accounted for.
    deadline = time.monotonic() + 240
    while True:
        got = drain(kafka_bootstrap, sink, idle=3.0, timeout=120)
        dead = drain(kafka_bootstrap, dlq, idle=1.0, timeout=5)
        coords = _coords(got) + _coords(dead)
        unique = set(coords)
        if len(unique) == n or time.monotonic() > deadline:
            break
    expected = {
        (p, o) for p, end in end_offsets(kafka_bootstrap, source).items() for o in range(end)
    }
    assert unique == expected, f"missing {len(expected - unique)} source offsets"
    duplicates = len(coords) - len(unique)
    with capsys.disabled():
        print(
            f"\n[crash test] {n} records, 2 x kill -9: 0 lost, {duplicates} duplicates "
            f"({duplicates / n:.2%}) under at-least-once"
        )


def _partitions(line: str, topic: str) -> set[int]:
    """The hot path's assignment log line: ``assigned: <topic>/0, <topic>/2``."""
    return {int(tp.rsplit("/", 1)[1]) for tp in line.split(", ") if tp.startswith(topic + "/")}


def _records_in(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("streamproc_records_in_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_workers_split_six_partitions(
    kafka_bootstrap, make_topic, worker_factory, tmp_path
) -> None:
    n = 30_000
    source, sink, _dlq, topo, kr_path, keyring = _setup(make_topic, tmp_path, 6)
    args = ("--topology", str(topo), "--keyring", str(kr_path), "--app-id", f"scale-{source}")
    ports = [free_port(), free_port()]
    workers = [
        worker_factory(*args, "--metrics-port", str(p), name=f"w{i}") for i, p in enumerate(ports)
    ]
    # Both members must hold partitions before the data arrives.
    deadline = time.monotonic() + 60
    pattern = re.compile(r"assigned: (.+?)\s*$", re.MULTILINE)
    while time.monotonic() < deadline:
        assigned = [pattern.findall(w.log_text()) for w in workers]
        if all(assigned):
            latest = [_partitions(a[-1], source) for a in assigned]
            if latest[0] | latest[1] == set(range(6)) and not latest[0] & latest[1]:
                break
        time.sleep(0.5)
    else:
        pytest.fail("the two workers did not split the six partitions")
    produce(kafka_bootstrap, source, _values(keyring, n))
    got = drain(kafka_bootstrap, sink, expect=n, timeout=120)
    assert len(set(_coords(got))) == n
    counts = [_records_in(p) for p in ports]
    assert sum(counts) >= n and all(c > 0 for c in counts), counts
