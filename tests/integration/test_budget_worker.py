"""Per-subject DP budgets in a real worker on the real broker, across kill -9 and restarts.

The customer policy (without record-level k) with its income noise budgeted per customer:
epsilon 1.0, budget 3.0, so a customer's income may be drawn fresh at most three times in
the window, and is repeated after that. Records are keyed by the customer id, as the worker
requires. The worker is killed with ``kill -9`` while records flow and restarted; a
read_committed consumer then counts, per customer (its pseudonym), the distinct noisy
incomes in the sink. A ledger kept only in memory would grant every customer a fresh
budget after the restart (up to six values); the durable one keeps the count at three.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer
from fastavro import schemaless_reader

from streamproc.avro.schema import read_schema_json
from streamproc.keys import Keyring
from streamproc.pipeline.outcome import H_DLQ_REASON, H_SOURCE_OFFSET, H_SOURCE_PARTITION
from streamproc.policy import compile_plan
from streamproc.testing.customers import customer_records, policy_without_k, single_object
from tests.integration.kafka_io import drain

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "customer_profile.avsc"
SUBJECTS = 40
PER_PHASE = 6  # records per customer before and after the restart
FRESH = 3  # budget / epsilon


def _policy(tmp: Path) -> Path:
    doc = policy_without_k(read_schema_json(SCHEMA)[0])
    for f in doc["fields"]:
        if f["name"] == "annual_income":
            f["privacy"] = {**f["privacy"], "subject": "customer_id", "budget": 3.0}
    path = tmp / "customer_profile.budget.avsc"
    path.write_text(json.dumps(doc))
    return path


def _produce(bootstrap: str, topic: str, pairs: list[tuple[bytes | None, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 2})
    for i, (key, value) in enumerate(pairs):
        p.produce(topic, value, key)
        if i % 50 == 49:
            p.poll(0)
            time.sleep(0.01)  # a stream, not one batch: the kill lands mid-way
    assert p.flush(60) == 0


def _read(bootstrap: str, topics: list[str], *, expect: int, timeout: float) -> list[Any]:
    # A moment more after the count: duplicates (at_least_once) arrive after it was reached.
    return drain(bootstrap, topics, expect=expect, timeout=timeout, read_committed=True, linger=2.0)


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_budget_survives_kill9_and_restart(
    guarantee: str, kafka_bootstrap: str, make_topic: Any, worker_factory: Any, tmp_path: Path
) -> None:
    keyring = Keyring.generate()
    keyring.save(tmp_path / "keyring.json")
    schema = _policy(tmp_path)
    plan = compile_plan(schema, keyring)
    source = make_topic("budget.raw", partitions=3)
    sink, dlq = f"{source}.clean", f"{source}.dlq"
    topo = tmp_path / "budget.yaml"
    topo.write_text(
        yaml.safe_dump(
            {
                "name": "budgeted",
                "source": {"topic": source, "schema": str(schema), "partitions": 3},
                "sink": {"topic": sink},
                "dead_letter": {"topic": dlq},
                "processing_guarantee": guarantee,
                "lineage": {"topic": None},
            }
        )
    )
    args = ["--topology", str(topo), "--keyring", str(tmp_path / "keyring.json")]
    args += ["--app-id", f"budget-{source[-6:]}", "--instance", "w0", "--loglevel", "info"]
    base = [r for r, _ in customer_records(SUBJECTS, seed=21)]

    def phase(n: int) -> list[tuple[bytes | None, bytes]]:
        out = []
        for _ in range(n):
            for r in base:
                out.append((r["customer_id"].encode(), single_object(plan.source_schema, r)))
        return out

    first, second = phase(PER_PHASE // 2), phase(PER_PHASE - PER_PHASE // 2)
    unkeyed = [(None, v) for _, v in first[:5]] + [(b"someone-else", v) for _, v in first[5:10]]
    total = len(first) + len(second) + len(unkeyed)

    worker = worker_factory(*args)
    _produce(kafka_bootstrap, source, first[: len(first) // 2])
    worker.kill9()  # while records are read, charged and produced
    worker.start()
    _produce(kafka_bootstrap, source, first[len(first) // 2 :] + unkeyed)
    got = _read(kafka_bootstrap, [sink, dlq], expect=len(first) + len(unkeyed), timeout=90)
    worker.stop()  # a clean restart: a ledger in memory only would start over here
    worker.start()
    _produce(kafka_bootstrap, source, second)
    got = _read(kafka_bootstrap, [sink, dlq], expect=total, timeout=120)

    seen: Counter[tuple[int, int]] = Counter()
    incomes: dict[str, set[float]] = defaultdict(set)
    reasons: Counter[str] = Counter()
    for m in got:
        h = dict(m.headers())
        seen[(int(h[H_SOURCE_PARTITION]), int(h[H_SOURCE_OFFSET]))] += 1
        if m.topic() == dlq:
            reasons[h[H_DLQ_REASON].decode()] += 1
            continue
        rec = schemaless_reader(io.BytesIO(m.value()[10:]), plan.derived_schema, None)
        assert isinstance(rec, dict)
        incomes[rec["customer_id"]].add(rec["annual_income"])
    assert len(seen) == total, f"{total - len(seen)} source offsets missing"
    if guarantee == "exactly_once":
        assert max(seen.values()) == 1, "a record was produced twice"
    assert reasons == {"budget_key_mismatch": len(unkeyed)}
    assert len(incomes) == SUBJECTS
    counts = Counter(len(v) for v in incomes.values())
    # Every customer reached its budget; none got more than it allows, restarts included.
    assert max(counts) == FRESH, counts
    print(
        f"\n[dp budget worker, {guarantee}] {total} records, kill -9 + restart: "
        f"fresh incomes per customer {dict(counts)} (budget allows {FRESH}); "
        f"duplicates {sum(v - 1 for v in seen.values())}"
    )
