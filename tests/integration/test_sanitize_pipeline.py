"""The main job on the real broker: raw topic -> worker -> sanitized topic + DLQ + lineage.

Canary values sit in every sensitive field; none may appear in the sanitized topic, the
dead-letter topic, the lineage topic, the metrics output or the worker's log.
"""

from __future__ import annotations

import io
import json
import random
import socket
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml
from fastavro import parse_schema, schemaless_reader
from prometheus_client.parser import text_string_to_metric_families

from streamproc.avro.schema import read_schema_json
from streamproc.cli.main import main
from streamproc.keys import Keyring
from streamproc.pipeline import H_DLQ_REASON, H_SOURCE_OFFSET, H_SOURCE_PARTITION
from streamproc.policy import compile_plan
from streamproc.testing.customers import bad_payloads, customer_records, single_object
from tests.integration.kafka_io import drain, produce

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "customer_profile.avsc"
SCHEMA_V1 = ROOT / "schemas" / "customer_profile.v1.avsc"


def metric_samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` output as {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text.decode())
        for s in fam.samples
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_topology(
    tmp: Path,
    source: str,
    sink: str,
    dlq: str,
    lineage: str | None,
    lineage_file: Path | None = None,
    history: tuple[Path, ...] = (),
) -> Path:
    doc = {
        "name": f"customers-{source[-6:]}",
        "source": {
            "topic": source,
            "schema": str(SCHEMA),
            "history": [str(SCHEMA_V1), *map(str, history)],
            "partitions": 3,
        },
        "sink": {"topic": sink},
        "dead_letter": {"topic": dlq},
        "framing": "auto",
        "lineage": {"topic": lineage, **({"file": str(lineage_file)} if lineage_file else {})},
        "limits": {"max_record_bytes": 64 * 1024},
        # The schema's k = 5 groups records for up to 60 s; a test needs them sooner.
        "anonymity": {"max_delay_ms": 1000},
    }
    path = tmp / f"customers-{source[-6:]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
def test_end_to_end_50k_with_canaries_and_bad_input(
    kafka_bootstrap, make_topic, worker_factory, tmp_path
) -> None:
    source = make_topic("customers.raw", partitions=3)
    sink, dlq, lineage = make_topic("clean", 3), make_topic("dlq", 3), make_topic("lineage")
    keyring_path = tmp_path / "keyring.json"
    keyring = Keyring.generate()
    keyring.save(keyring_path)
    topo = write_topology(tmp_path, source, sink, dlq, lineage)
    port = free_port()
    worker = worker_factory(
        "--topology",
        str(topo),
        "--keyring",
        str(keyring_path),
        "--app-id",
        f"e2e-{source}",
        "--metrics-port",
        str(port),
    )

    plan = compile_plan(SCHEMA, keyring)
    v2 = plan.source_schema
    v1 = parse_schema(read_schema_json(SCHEMA_V1)[0])
    n_good = 50_000
    values, keys, expected_ids = [], [], []
    bad_every = 5000
    bad = bad_payloads(
        v2, next(customer_records(1, seed=99, canary=True))[0], max_record_bytes=64 * 1024
    )
    n_bad = 0
    for i, (rec, is_v1) in enumerate(customer_records(n_good, seed=1, canary=True, v1_every=10)):
        values.append(single_object(v1 if is_v1 else v2, rec))
        keys.append(rec["customer_id"].encode())
        expected_ids.append(plan.sanitize(dict(rec))["customer_id"] if not is_v1 else None)
        if i % bad_every == 0:
            _reason, payload = bad[n_bad % len(bad)]
            values.append(payload)
            keys.append(b"bad-key")
            n_bad += 1
    produce(kafka_bootstrap, source, values, keys=keys)

    out = drain(kafka_bootstrap, sink, expect=n_good, timeout=240)
    dead = drain(kafka_bootstrap, dlq, expect=n_bad, timeout=60)
    assert len(out) == n_good
    assert len(dead) == n_bad

    # Every source offset is accounted for exactly once across sink + DLQ.
    coords = []
    for msg in out + dead:
        h = dict(msg.headers())
        coords.append((int(h[H_SOURCE_PARTITION]), int(h[H_SOURCE_OFFSET])))
    assert len(coords) == len(set(coords)) == n_good + n_bad

    # Records decode with the derived schema; ids are the expected pseudonyms.
    derived = plan.derived_schema
    got_ids = set()
    for msg in out:
        rec = schemaless_reader(io.BytesIO(msg.value()[10:]), derived, None)
        got_ids.add(rec["customer_id"])
        assert "full_name" not in rec and "credit_score" not in rec
    assert {i for i in expected_ids if i is not None} <= got_ids
    assert len(got_ids) == n_good

    reasons = sorted(dict(m.headers())[H_DLQ_REASON].decode() for m in dead)
    assert set(reasons) == {r for r, _ in bad[: min(n_bad, len(bad))]}

    lineage_msgs = drain(kafka_bootstrap, lineage, expect=1, timeout=30)
    event = json.loads(lineage_msgs[0].value())
    assert (
        event["outputs"][0]["facets"]["columnLineage"]["fields"]["email"]["inputFields"][0][
            "transformations"
        ][0]["masking"]
        is True
    )

    # Metrics: every family the worker promises, with the counts this run must give. Counters
    # are bumped after a batch is sent, the lag gauge every 5 s: poll until they settle.
    name = yaml.safe_load(topo.read_text())["name"]
    want_dead = Counter(bad[i % len(bad)][0] for i in range(n_bad))
    deadline = time.monotonic() + 30
    while True:
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        samples = metric_samples(metrics)
        lag = [v for (n, lb), v in samples.items() if n == "streamproc_consumer_lag"]
        settled = (
            samples.get(("streamproc_records_out_total", (("topology", name),))) == n_good
            and len(lag) == 3
            and sum(lag) == 0
        )
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    topo_label = (("topology", name),)
    assert samples[("streamproc_records_in_total", topo_label)] == n_good + n_bad
    assert samples[("streamproc_records_out_total", topo_label)] == n_good
    assert samples[("streamproc_processing_seconds_count", topo_label)] == n_good + n_bad
    # The hot path's commits and batches, timed part by part (either guarantee).
    for part in ("total", "flush", "batch"):
        assert samples[("streamproc_commit_seconds_count", (("part", part),))] >= 1, part
    got_dead = {
        dict(lb)["reason"]: v
        for (n, lb), v in samples.items()
        if n == "streamproc_dead_letters_total"
    }
    assert got_dead == dict(want_dead)
    # Per-transform counts: fields per record of each action (read from the schema's own
    # annotations; an unannotated field is dropped) times the records sent.
    fields = read_schema_json(SCHEMA)[0]["fields"]
    per_record = Counter(f.get("privacy", {}).get("action", "drop") for f in fields)
    del per_record["keep"]
    got_tx = {
        dict(lb)["action"]: v
        for (n, lb), v in samples.items()
        if n == "streamproc_transforms_total"
    }
    assert got_tx == {a: k * n_good for a, k in per_record.items()}
    versions = {
        dict(lb)["key"]: v for (n, lb), v in samples.items() if n == "streamproc_key_version"
    }
    assert versions and set(versions.values()) == {1.0}
    assert sorted(lag) == [0.0, 0.0, 0.0], "consumer lag per partition, caught up"

    worker.stop()
    blobs = {
        "sink": b"".join(
            m.value() + (m.key() or b"") + b"".join(v for _, v in m.headers()) for m in out
        ),
        "dlq": b"".join(m.value() + b"".join(v for _, v in m.headers()) for m in dead),
        "lineage": b"".join(m.value() for m in lineage_msgs),
        "metrics": metrics,
        "log": worker.log_text().encode(),
    }
    for where, blob in blobs.items():
        assert b"CANARY" not in blob, where
    assert b"dead letter: topology=" in blobs["log"]  # the log does report DLQ events


@pytest.mark.parametrize("offload", ["0", "1"])
def test_worker_survives_bad_input_and_keeps_serving(
    offload: str, kafka_bootstrap, make_topic, worker_factory, tmp_path
) -> None:
    source = make_topic("customers.raw", partitions=3)
    sink, dlq, lineage = make_topic("clean", 3), make_topic("dlq", 3), make_topic("lineage")
    keyring = Keyring.generate()
    keyring.save(tmp_path / "keyring.json")
    lineage_file = tmp_path / "lineage" / "events.jsonl"
    # The trap schema (an array of nulls) is a known writer version here, so its payloads reach
    # the bounds check (10^9 items claimed) or schema resolution (a valid but incompatible one).
    trap_doc = {
        "type": "record",
        "name": "Trap",
        "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}],
    }
    trap_file = tmp_path / "trap.avsc"
    trap_file.write_text(json.dumps(trap_doc))
    topo = write_topology(tmp_path, source, sink, dlq, lineage, lineage_file, (trap_file,))
    # A second flow in the same worker, and the broker given by --broker only.
    source2 = make_topic("customers.raw", partitions=3)
    sink2, dlq2 = make_topic("clean", 3), make_topic("dlq", 3)
    topo2 = write_topology(tmp_path, source2, sink2, dlq2, None)
    assert main(["audit", "keygen", "--out", str(tmp_path / "audit")]) == 0
    audit_file = tmp_path / "audit.jsonl"
    worker = worker_factory(
        "--topology",
        str(topo),
        "--topology",
        str(topo2),
        "--broker",
        kafka_bootstrap,
        "--keyring",
        str(tmp_path / "keyring.json"),
        "--app-id",
        f"bad-{source}",
        "--offload",
        offload,
        env={
            "STREAMPROC_BROKER": "127.0.0.1:1",  # unreachable: --broker must win
            "STREAMPROC_AUDIT_SIGNING_KEY": str(tmp_path / "audit" / "audit-signing.pem"),
            "STREAMPROC_AUDIT_FILE": str(audit_file),
        },
    )
    v2 = compile_plan(SCHEMA, keyring).source_schema
    trap = parse_schema(trap_doc)
    rng = random.Random(3)
    good = [rec for rec, _ in customer_records(20, seed=rng.randrange(1000))]
    bad = bad_payloads(v2, good[0], max_record_bytes=64 * 1024, trap_schema=trap)
    values = []
    for i, (_, payload) in enumerate(bad):
        values.append(single_object(v2, good[i]))
        values.append(payload)
    produce(kafka_bootstrap, source, values)
    out = drain(kafka_bootstrap, sink, expect=len(bad), timeout=60)
    assert len(out) == len(bad)
    # A valid record of the trap schema: known, but it does not resolve to customer_profile.
    produce(kafka_bootstrap, source, [single_object(trap, {"a": [None, None]})])
    dead = drain(kafka_bootstrap, dlq, expect=len(bad) + 1, timeout=60)
    got = sorted(dict(m.headers())[H_DLQ_REASON].decode() for m in dead)
    assert got == sorted([*(r for r, _ in bad), "incompatible_schema"])
    assert "oversize_items" in got
    # The second topology's flow runs in the same worker.
    produce(kafka_bootstrap, source2, [single_object(v2, g) for g in good[:5]])
    assert len(drain(kafka_bootstrap, sink2, expect=5, timeout=60)) == 5
    # Still serving after the bad batch.
    produce(kafka_bootstrap, source, [single_object(v2, good[-1])])
    assert len(drain(kafka_bootstrap, sink, expect=len(bad) + 1, timeout=60)) == len(bad) + 1

    # The audit trail: start, loads, one entry per dead letter, stop; signed and intact.
    assert worker.stop() == 0
    # Lineage went to the file as well as the topic: one START event for this topology.
    (event,) = [json.loads(line) for line in lineage_file.read_text().splitlines()]
    assert event["eventType"] == "START"
    assert event["inputs"][0]["name"] == source and event["outputs"][0]["name"] == sink
    topic_events = drain(kafka_bootstrap, lineage, expect=1, timeout=30)
    assert [json.loads(m.value()) for m in topic_events] == [event]
    entries = [json.loads(line) for line in audit_file.read_text().splitlines()]
    kinds = [e.get("kind") for e in entries if "kind" in e]
    assert kinds[0] == "worker.start" and kinds[-1] == "worker.stop"
    assert {"topology.load", "policy.load", "key.versions"} <= set(kinds)
    assert kinds.count("dlq.record") == len(bad) + 1
    assert (
        main(
            [
                "audit",
                "verify",
                "--file",
                str(audit_file),
                "--public-key",
                str(tmp_path / "audit" / "audit-signing.pub.pem"),
            ]
        )
        == 0
    )
