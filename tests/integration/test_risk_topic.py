"""``streamproc risk --topic`` on the real broker: the last N records over all partitions
(by timestamp), raw and sanitized topics, bad payloads skipped and counted, no value out."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streamproc.avro.codec import Encoder
from streamproc.avro.schema import parse, read_schema_json
from streamproc.cli.main import main
from streamproc.keys import Keyring
from streamproc.policy import compile_plan
from streamproc.risk import measure
from streamproc.testing.customers import customer_records, single_object

pytestmark = pytest.mark.integration

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "customer_profile.avsc"
SCHEMA_V1 = SCHEMA.with_name("customer_profile.v1.avsc")
QUASI = ["birth_date", "postcode", "city", "gender"]
T0 = 1_760_000_000_000  # ms; one record per ms, so "last N" is well defined


def produce_timed(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i, value in enumerate(values):
        # Spread over the partitions by key; the timestamp gives the global order.
        producer.produce(topic, value=value, key=str(i).encode(), timestamp=T0 + i)
        producer.poll(0)
    assert producer.flush(60) == 0


def risk_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["risk", "--schema", str(SCHEMA), *argv, "--json"]) == 0
    out, err = capsys.readouterr()
    assert "CANARY" not in out + err
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_raw_and_sanitized_topic_tails(
    kafka_bootstrap: str, make_topic: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    keyring = Keyring.generate()
    plan = compile_plan(SCHEMA, keyring)
    tagged = list(customer_records(600, seed=5, canary=True, v1_every=7))
    records = [r for r, _ in tagged]
    v1 = parse(read_schema_json(SCHEMA_V1)[0])
    raw = [single_object(v1 if old else plan.source_schema, r) for r, old in tagged]
    bad: list[bytes | None] = [None, b"\x07CANARY-bad-payload"]  # oldest: out of a 500 window
    raw_topic = make_topic("risk-raw", partitions=3)
    produce_timed(kafka_bootstrap, raw_topic, [*bad, *raw])

    at = ("--topic", raw_topic, "--broker", kafka_bootstrap, "--history", str(SCHEMA_V1))
    tail = risk_json(capsys, *at, "--window", "500")
    expected = measure(records[-500:], QUASI).to_json()
    assert {k: tail[k] for k in expected} == expected and tail["undecodable"] == 0

    whole = risk_json(capsys, *at)
    assert whole["records"] == 600 and whole["undecodable"] == 2
    # Without the v1 writer schema every 7th record is skipped, and counted.
    no_history = risk_json(capsys, "--topic", raw_topic, "--broker", kafka_bootstrap)
    assert no_history["undecodable"] == 2 + 600 // 7

    # A sanitized topic, measured with the annotated schema: its derived schema decodes it.
    encoder = Encoder(plan.derived_schema)
    # (v1 records as the decoder resolves them to v2: with the new fields' defaults)
    sources = [{"marketing_opt_in": False, "segment": None, **r} for r in records]
    staged = [plan.sanitize(r) for r in sources]
    # The shipped policy declares k = 5: the ladder fields are generalized over the batch.
    spec = plan.anonymity
    assert spec is not None
    done = spec.anonymize([spec.quasi(r) for r in sources])
    clean = [spec.fill(c, v) for c, v in zip(staged, done.values, strict=True)]
    clean_topic = make_topic("risk-clean", partitions=3)
    produce_timed(kafka_bootstrap, clean_topic, [encoder.encode(r) for r in clean])
    doc = risk_json(
        capsys, "--topic", clean_topic, "--broker", kafka_bootstrap, "--sensitive", "annual_income"
    )
    expected = measure(clean, QUASI, sensitive="annual_income").to_json()
    assert {k: doc[k] for k in expected} == expected
    assert doc["unique_share"] < whole["unique_share"]


def test_unknown_topic_is_an_error(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"risk-missing.{uuid.uuid4().hex[:12]}"
    argv = ["risk", "--schema", str(SCHEMA), "--topic", missing, "--broker", kafka_bootstrap]
    assert main(argv) == 1 and missing in capsys.readouterr().err


def test_a_topic_that_does_not_decode_is_an_error(
    kafka_bootstrap: str, make_topic: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = make_topic("risk-garbage", partitions=2)
    produce_timed(kafka_bootstrap, topic, [b"\x07CANARY-1", b"\x00\x00\x00\x00\x01CANARY-2"])
    argv = ["risk", "--schema", str(SCHEMA), "--topic", topic, "--broker", kafka_bootstrap]
    assert main([*argv, "--framing", "auto"]) == 1
    err = capsys.readouterr().err
    assert "none of its last 2 records decodes" in err and "CANARY" not in err
