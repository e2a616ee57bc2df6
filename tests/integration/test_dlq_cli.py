"""``dlq inspect`` and ``dlq replay`` on the real broker: a record with an unknown writer
schema is dead-lettered, the schema is added, replay feeds it through, nothing leaks."""

from __future__ import annotations

import random

import pytest
import yaml
from fastavro import parse_schema

from streamproc.avro.schema import read_schema_json
from streamproc.cli.main import main
from streamproc.keys import Keyring
from streamproc.policy import compile_plan
from streamproc.testing.customers import customer_record, single_object
from tests.integration.kafka_io import drain, produce
from tests.integration.test_sanitize_pipeline import SCHEMA, SCHEMA_V1, write_topology

pytestmark = pytest.mark.integration


def test_unknown_schema_dead_letter_is_replayed_after_fix(
    kafka_bootstrap, make_topic, worker_factory, tmp_path, capsys
) -> None:
    source = make_topic("customers.raw", partitions=3)
    sink, dlq, lineage = make_topic("clean", 3), make_topic("dlq", 3), make_topic("lineage")
    keyring = Keyring.generate()
    kr_path = tmp_path / "keyring.json"
    keyring.save(kr_path)
    topo = write_topology(tmp_path, source, sink, dlq, lineage)
    doc = yaml.safe_load(topo.read_text())
    doc["source"]["history"] = []  # v1 not known yet
    topo.write_text(yaml.safe_dump(doc))
    args = ("--topology", str(topo), "--keyring", str(kr_path), "--app-id", f"dlq-{source}")
    worker = worker_factory(*args, name="before")

    v2 = compile_plan(SCHEMA, keyring).source_schema
    v1 = parse_schema(read_schema_json(SCHEMA_V1)[0])
    rng = random.Random(8)
    old = [customer_record(i, rng, canary=True, v1=True) for i in range(5)]
    new = customer_record(99, rng, canary=True)
    produce(
        kafka_bootstrap,
        source,
        [single_object(v1, r) for r in old] + [single_object(v2, new)],
        keys=[b"k%d" % i for i in range(6)],
    )
    assert len(drain(kafka_bootstrap, dlq, expect=5, timeout=60)) == 5
    assert len(drain(kafka_bootstrap, sink, expect=1, timeout=60)) == 1
    worker.stop()

    capsys.readouterr()
    assert main(["dlq", "inspect", "--topic", dlq, "--broker", kafka_bootstrap]) == 0
    listing = capsys.readouterr().out
    assert "5 dead letters" in listing and "unknown_schema=5" in listing
    assert "CANARY" not in listing

    # The fix: the older writer schema becomes part of the topology. Replay.
    doc["source"]["history"] = [str(SCHEMA_V1)]
    topo.write_text(yaml.safe_dump(doc))
    worker_factory(*args, name="after")
    assert (
        main(
            [
                "dlq",
                "replay",
                "--topic",
                dlq,
                "--broker",
                kafka_bootstrap,
                "--keyring",
                str(kr_path),
            ]
        )
        == 0
    )
    assert "replayed 5 dead letters" in capsys.readouterr().out
    out = drain(kafka_bootstrap, sink, expect=6, timeout=90)
    assert len(out) == 6
    assert not any(b"CANARY" in m.value() for m in out)


def test_replay_refuses_a_foreign_keyring(kafka_bootstrap, make_topic, tmp_path, capsys) -> None:
    from streamproc.config.topology import load_topology
    from streamproc.pipeline import SanitizeFlow

    dlq = make_topic("dlq")
    keyring = Keyring.generate()
    topo_path = write_topology(tmp_path, "s.raw", "s.clean", dlq, "s.lineage")
    topo = load_topology(topo_path)
    flow = SanitizeFlow(topo, compile_plan(SCHEMA, keyring), keyring)
    dead = flow.process(b"\x07garbage", key=b"k", topic="s.raw", partition=0, offset=3)
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": kafka_bootstrap})
    p.produce(dlq, value=dead.value, headers=dead.headers)
    p.flush(10)
    other = tmp_path / "other.json"
    Keyring.generate().save(other)
    rc = main(
        [
            "dlq",
            "replay",
            "--topic",
            dlq,
            "--broker",
            kafka_bootstrap,
            "--keyring",
            str(other),
            "--dry-run",
        ]
    )
    assert rc == 1
    assert "1 could not be opened" in capsys.readouterr().out
    good = tmp_path / "good.json"
    keyring.save(good)
    assert (
        main(
            [
                "dlq",
                "replay",
                "--topic",
                dlq,
                "--broker",
                kafka_bootstrap,
                "--keyring",
                str(good),
                "--dry-run",
            ]
        )
        == 0
    )
    assert "would replay 1 dead letters: bad_magic=1" in capsys.readouterr().out
