"""Delay-bounded k-anonymity in a real worker on the real broker (exactly_once).

The shipped customer schema declares k = 5. A worker sanitizes customer profiles; the test
kills it with ``kill -9`` while records wait in its buffer, starts it again, and reads the
sink read_committed: every source offset exactly once (sink + dead letters), k >= 5 over
everything released, and the release delay measured end to end against the bound.
"""

from __future__ import annotations

import io
import statistics
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Producer
from fastavro import schemaless_reader

from streamproc.keys import Keyring
from streamproc.pipeline.outcome import H_SOURCE_OFFSET, H_SOURCE_PARTITION
from streamproc.policy import compile_plan
from streamproc.risk import measure
from streamproc.testing.customers import customer_records, single_object

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "customer_profile.avsc"
QUASI = ["birth_date", "postcode", "city", "gender"]
DELAY_MS = 2500


def _produce(bootstrap: str, topic: str, values: list[bytes], rate: float | None = None) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 2})
    t0 = time.monotonic()
    for i, v in enumerate(values):
        if rate is not None:
            time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        p.produce(topic, v, str(i).encode())
        p.poll(0)
    assert p.flush(60) == 0


def _read_committed(bootstrap: str, topics: list[str], *, expect: int, timeout: float) -> list[Any]:
    """Everything visible to a read_committed consumer, until ``expect`` messages (or the
    timeout); each message with the wall time it arrived."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"k-check-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.subscribe(topics)
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expect and time.monotonic() < deadline:
            for m in c.consume(1000, 0.2):
                if m.error() is None:
                    got.append((m, time.time() * 1000))
    finally:
        c.close()
    return got


def test_buffered_records_survive_kill9_exactly_once_and_k_holds(
    kafka_bootstrap: str, make_topic: Any, worker_factory: Any, tmp_path: Path, capsys: Any
) -> None:
    keyring = Keyring.generate()
    keyring.save(tmp_path / "keyring.json")
    plan = compile_plan(SCHEMA, keyring)
    source = make_topic("k.raw", partitions=3)
    sink, dlq = f"{source}.clean", f"{source}.dlq"
    topo = tmp_path / "k.yaml"
    topo.write_text(
        yaml.safe_dump(
            {
                "name": "kanon",
                "source": {"topic": source, "schema": str(SCHEMA), "partitions": 3},
                "sink": {"topic": sink},
                "dead_letter": {"topic": dlq},
                "processing_guarantee": "exactly_once",
                "lineage": {"topic": None},
                "anonymity": {"max_delay_ms": DELAY_MS},
            }
        )
    )
    args = ["--topology", str(topo), "--keyring", str(tmp_path / "keyring.json")]
    args += ["--app-id", f"kanon-{source[-6:]}", "--instance", "w0", "--loglevel", "info"]
    records = [single_object(plan.source_schema, r) for r, _ in customer_records(6000, seed=11)]
    values = [b"not avro" if i % 1000 == 999 else v for i, v in enumerate(records)]

    worker = worker_factory(*args)
    _produce(kafka_bootstrap, source, values[:3000])
    time.sleep(1.0)  # read and buffered, none due yet (the bound is 2.5 s)
    worker.kill9()
    before = _read_committed(kafka_bootstrap, [sink, dlq], expect=3000, timeout=3)
    # Dead letters are produced at once; the grouped rows were still waiting.
    assert sum(m.topic() == sink for m, _ in before) < 3000

    worker.start()
    # The restarted worker joins once the killed member's session expired, then re-reads.
    first = _read_committed(kafka_bootstrap, [sink, dlq], expect=3000, timeout=90)
    assert len(first) == 3000
    # The second half at a steady 1,000 records/s: the delay bound, end to end.
    t_send = time.time() * 1000
    _produce(kafka_bootstrap, source, values[3000:], rate=1000)
    got = _read_committed(kafka_bootstrap, [sink, dlq], expect=6000, timeout=90)

    seen = Counter()
    released = []
    latency = []
    for m, at in got:
        h = dict(m.headers())
        seen[(int(h[H_SOURCE_PARTITION]), int(h[H_SOURCE_OFFSET]))] += 1
        if m.topic() == sink:
            released.append(
                schemaless_reader(io.BytesIO(m.value()[10:]), plan.derived_schema, None)
            )
            ts = m.timestamp()[1]
            if ts >= t_send:
                latency.append(at - ts)
    assert len(seen) == 6000, f"{6000 - len(seen)} source offsets missing"
    assert max(seen.values()) == 1, "a record was produced twice"
    assert sum(m.topic() == dlq for m, _ in got) == 6

    risk = measure(released, QUASI, k=5)
    assert risk.k_min is not None and risk.k_min >= 5, risk.to_json()
    assert risk.suppressed / len(released) <= 0.05
    # The rows read after the restart left the buffer within the bound plus one commit
    # interval and a poll; a generous margin keeps a busy CI machine from flaking.
    latency.sort()
    assert latency and latency[-1] < DELAY_MS + 5000
    with capsys.disabled():
        print(
            f"\n[k-anonymity worker] 6000 records, kill -9 with {3000 - len(before)} buffered: "
            f"0 lost, 0 duplicates; k_min {risk.k_min}, suppressed {risk.suppressed}; "
            f"end-to-end delay at 1k/s (bound {DELAY_MS} ms): p50 "
            f"{statistics.median(latency):.0f} ms, p99 "
            f"{latency[int(0.99 * (len(latency) - 1))]:.0f} ms, max {latency[-1]:.0f} ms"
        )
