"""``--offload 1`` on a real broker: the helper and the hot path's thread share the partitions
of a claims topic, and every source record ends exactly once, in partition order."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from streamproc.keys import Keyring
from streamproc.pipeline.outcome import H_SOURCE_OFFSET, H_SOURCE_PARTITION
from streamproc.policy import compile_plan
from streamproc.testing.claims import claim_record
from streamproc.testing.customers import single_object
from tests.integration.kafka_io import drain, produce

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "claims.avsc"
N = 600


def test_one_helper_and_the_thread_cover_every_partition_once(
    kafka_bootstrap, make_topic, worker_factory, tmp_path
) -> None:
    source, sink, dlq = make_topic("claims.raw", 6), make_topic("clean", 6), make_topic("dlq", 6)
    keyring = Keyring.generate()
    keyring.save(tmp_path / "keyring.json")
    topo = tmp_path / "claims.yaml"
    doc = {
        "name": "claims-share",
        "source": {"topic": source, "schema": str(SCHEMA), "partitions": 6},
        "sink": {"topic": sink},
        "dead_letter": {"topic": dlq},
        "strict": True,
        "processing_guarantee": "exactly_once",
        "lineage": {"topic": None},
    }
    topo.write_text(yaml.safe_dump(doc))
    schema = compile_plan(SCHEMA, keyring).source_schema
    rng = random.Random(9)
    # Every 50th record is not Avro: its dead letter comes from whichever slot owns it.
    values = [
        b"not avro" if i % 50 == 49 else single_object(schema, claim_record(i, rng))
        for i in range(N)
    ]
    produce(kafka_bootstrap, source, values, keys=[b"member-%d" % i for i in range(N)])
    worker_factory(
        "--topology", str(topo), "--broker", kafka_bootstrap,
        "--keyring", str(tmp_path / "keyring.json"), "--app-id", f"share-{source}",
        "--offload", "1",
    )  # fmt: skip
    out = drain(kafka_bootstrap, [sink, dlq], expect=N, timeout=120, read_committed=True)
    coords = [
        (int(dict(m.headers())[H_SOURCE_PARTITION]), int(dict(m.headers())[H_SOURCE_OFFSET]))
        for m in out
    ]
    assert len(coords) == N and len(set(coords)) == N  # each source record once
    assert {p for p, _ in coords} == set(range(6))  # the helper's slot and the thread's
    assert sum(1 for m in out if m.topic() == dlq) == N // 50
    for p in range(6):
        # The sink partition p keeps source partition p's order.
        got = [int(dict(m.headers())[H_SOURCE_OFFSET]) for m in out
               if m.topic() == sink and m.partition() == p]  # fmt: skip
        assert got == sorted(got)
