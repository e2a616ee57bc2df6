"""SanitizeFlow: bytes in, a sanitized record or a sealed dead letter out; never a raw value."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_reader

from streamproc.avro.framing import crc64_fingerprint
from streamproc.avro.schema import read_schema_json
from streamproc.config.topology import load_topology
from streamproc.keys import Keyring
from streamproc.pipeline import (
    H_DLQ_ERROR,
    H_DLQ_KEY,
    H_DLQ_REASON,
    H_DLQ_TIME,
    H_KEY_VERSIONS,
    H_POLICY_FP,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TIMESTAMP,
    H_SOURCE_TOPIC,
    H_WRITER_FP,
    DeadLetter,
    Sanitized,
    SanitizeFlow,
    dlq_aad,
    open_envelope,
)
from streamproc.policy import compile_plan
from streamproc.risk import measure, quasi_fields
from streamproc.testing.customers import (
    SENSITIVE_STRING_FIELDS,
    bad_payloads,
    customer_record,
    customer_records,
    encode,
    policy_without_k,
    single_object,
)

ROOT = Path(__file__).resolve().parents[3]
TOPOLOGY = ROOT / "topologies" / "customers.yaml"
TRAP = parse_schema(
    {
        "type": "record",
        "name": "Trap",
        "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}],
    }
)


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture(scope="module")
def flow(keyring: Keyring) -> SanitizeFlow:
    topo = load_topology(TOPOLOGY)
    plan = compile_plan(topo.source.schema, keyring)
    history = tuple(parse_schema(read_schema_json(p)[0]) for p in topo.source.history)
    return SanitizeFlow(topo, plan, keyring, history=(*history, TRAP))


def decode_out(flow: SanitizeFlow, out: Sanitized) -> dict:
    assert out.value[:2] == b"\xc3\x01"
    return schemaless_reader(io.BytesIO(out.value[10:]), flow.plan.derived_schema, None)


def test_good_record_is_sanitized_with_lineage_headers(flow: SanitizeFlow) -> None:
    rec = customer_record(1, random.Random(1), canary=True)
    out = flow.process(
        single_object(flow.plan.source_schema, rec),
        key=b"C1",
        topic="customers.raw",
        partition=3,
        offset=42,
        timestamp_ms=1,
    )
    assert isinstance(out, Sanitized)
    headers = dict(out.headers)
    assert headers[H_SOURCE_TOPIC] == b"customers.raw"
    assert headers[H_SOURCE_PARTITION] == b"3"
    assert headers[H_SOURCE_OFFSET] == b"42"
    assert headers[H_SOURCE_TIMESTAMP] == b"1"
    assert headers[H_POLICY_FP] == flow.plan.fingerprint.encode()
    assert headers[H_WRITER_FP] == f"{crc64_fingerprint(flow.plan.source_schema):016x}".encode()
    versions = dict(kv.split("=") for kv in headers[H_KEY_VERSIONS].decode().split(","))
    assert versions == {k: str(v) for k, v in flow.plan.key_versions.items()} and versions
    clean = decode_out(flow, out)
    assert "full_name" not in clean and "credit_score" not in clean
    assert b"CANARY" not in out.value and b"C1" not in (out.key or b"")


def test_older_writer_schema_is_resolved(flow: SanitizeFlow) -> None:
    v1 = parse_schema(read_schema_json(flow.topology.source.history[0])[0])
    rec = customer_record(2, random.Random(2), v1=True)
    out = flow.process(single_object(v1, rec), topic="t", partition=0, offset=1)
    assert isinstance(out, Sanitized)
    assert dict(out.headers)[H_WRITER_FP] != dict(out.headers)[H_POLICY_FP]
    clean = decode_out(flow, out)
    assert clean["segment"] is None  # reader default for a field v1 did not have


def test_record_keys_are_pseudonymized_deterministically(flow: SanitizeFlow) -> None:
    assert flow.key_pseudonym(b"C42") == flow.key_pseudonym(b"C42")
    assert flow.key_pseudonym(b"C42") != flow.key_pseudonym(b"C43")
    assert flow.key_pseudonym(None) is None


@pytest.mark.parametrize("case", range(9))
def test_bad_input_becomes_a_sealed_dead_letter(
    flow: SanitizeFlow, keyring: Keyring, case: int
) -> None:
    rec = customer_record(3, random.Random(3), canary=True)
    cases = bad_payloads(
        flow.plan.source_schema,
        rec,
        max_record_bytes=flow.topology.limits.max_record_bytes,
        trap_schema=TRAP,
    )
    reason, payload = cases[case]
    out = flow.process(payload, key=b"k", topic="customers.raw", partition=1, offset=7)
    assert isinstance(out, DeadLetter)
    headers = dict(out.headers)
    assert headers[H_DLQ_REASON].decode() == reason
    assert abs(int(headers[H_DLQ_TIME]) - time.time() * 1000) < 60_000
    assert headers[H_SOURCE_TOPIC] == b"customers.raw" and headers[H_SOURCE_OFFSET] == b"7"
    assert headers[H_DLQ_KEY] == b"quarantine=1"
    # Sealed under the quarantine key: the token names it, and it is not the default key.
    assert out.value[5 : 5 + out.value[4]] == b"quarantine"
    # Payload sealed, never in clear, and it opens only with its source coordinates.
    assert b"CANARY" not in out.value
    assert all(b"CANARY" not in v for v in headers.values())
    key, value = open_envelope(keyring.open(out.value, dlq_aad("customers.raw", 1, 7)))
    assert (key, value) == (b"k", payload)
    assert b"CANARY" not in headers[H_DLQ_ERROR]


def test_type_mismatch_is_a_dead_letter_without_the_value(flow: SanitizeFlow) -> None:
    # A writer schema the reader cannot resolve: customer_id as a long.
    doc = read_schema_json(flow.topology.source.schema)[0]
    bad = dict(
        doc,
        fields=[dict(f, type="long") if f["name"] == "customer_id" else f for f in doc["fields"]],
    )
    parsed = parse_schema(bad)
    other = SanitizeFlow(flow.topology, flow.plan, flow.keyring, history=(parsed,))
    rec = customer_record(4, random.Random(4))
    rec["customer_id"] = 987654321
    out = other.process(single_object(parsed, rec), topic="t", partition=0, offset=0)
    assert isinstance(out, DeadLetter)
    assert out.reason == "incompatible_schema"
    assert b"987654321" not in dict(out.headers)[H_DLQ_ERROR]


def test_null_value_is_dead_lettered(flow: SanitizeFlow) -> None:
    out = flow.process(None, key=b"k", topic="t", partition=0, offset=0)
    assert isinstance(out, DeadLetter) and out.reason == "null_value"


def test_no_sensitive_value_in_any_output(flow: SanitizeFlow) -> None:
    rng = random.Random(5)
    blobs = []
    for i in range(300):
        rec = customer_record(i, rng, canary=True)
        out = flow.process(
            single_object(flow.plan.source_schema, rec),
            key=rec["customer_id"].encode(),
            topic="t",
            partition=0,
            offset=i,
        )
        assert isinstance(out, Sanitized)
        blobs.append(out.value + (out.key or b"") + b"".join(v for _, v in out.headers))
        for field in SENSITIVE_STRING_FIELDS:
            value = rec[field]
            if value is not None:
                assert value.encode() not in blobs[-1], field
    assert not any(b"CANARY" in b for b in blobs)


def test_stats_count_outcomes(keyring: Keyring) -> None:
    topo = load_topology(TOPOLOGY)
    f = SanitizeFlow(topo, compile_plan(topo.source.schema, keyring), keyring)
    rec = customer_record(1, random.Random(9))
    f.process(single_object(f.plan.source_schema, rec), topic="t", partition=0, offset=0)
    f.process(b"\x07junk", topic="t", partition=0, offset=1)
    assert (f.stats.records_in, f.stats.records_out) == (2, 1)
    assert f.stats.dead_letters == {"bad_magic": 1}


def test_confluent_framing_through_a_schema_registry_client(
    keyring: Keyring, tmp_path: Path
) -> None:
    """No Schema Registry server can run here (no Docker, no registry package in Debian):
    this uses confluent-kafka's own in-memory registry client (``mock://``) which speaks the
    same client API the worker uses against a real registry. The flow is built the way the
    worker builds it, from a topology file naming the registry."""
    import json

    import yaml
    from confluent_kafka.schema_registry import Schema

    from streamproc.avro.framing import frame_confluent
    from streamproc.config import Settings
    from streamproc.errors import ConfigError
    from streamproc.pipeline.build import build_flow

    doc = yaml.safe_load(TOPOLOGY.read_text())
    doc["framing"] = "confluent"
    doc["registry"] = {"url": "mock://streamproc-flow-test"}
    doc["source"]["schema"] = str(ROOT / "schemas" / "customer_profile.avsc")
    doc["source"]["history"] = [str(ROOT / "schemas" / "customer_profile.v1.avsc")]
    path = tmp_path / "confluent.yaml"
    path.write_text(yaml.safe_dump(doc))
    topo = load_topology(path)
    flow = build_flow(topo, Settings(), keyring)
    registry = flow.decoder.schemas.registry

    # The derived schema is registered under "<sink topic>-value"; sanitized records carry its id.
    latest = registry.get_latest_version(f"{topo.sink.topic}-value")
    assert json.loads(latest.schema.schema_str) == flow.plan.derived_schema_json
    sink_id = latest.schema_id

    v1_doc = read_schema_json(topo.source.history[0])[0]
    v1_id = registry.register_schema(
        f"{topo.source.topic}-value", Schema(json.dumps(v1_doc), "AVRO")
    )
    lookups = []
    real_get = registry.get_schema
    registry.get_schema = lambda sid, *a, **k: lookups.append(sid) or real_get(sid, *a, **k)
    for i in range(3):
        rec = customer_record(5 + i, random.Random(5 + i), v1=True)
        payload = frame_confluent(v1_id, encode(parse_schema(v1_doc), rec))
        out = flow.process(payload, topic="t", partition=0, offset=i)
        assert isinstance(out, Sanitized)
        assert out.value[0] == 0 and int.from_bytes(out.value[1:5], "big") == sink_id
        clean = schemaless_reader(
            io.BytesIO(out.value[5:]), parse_schema(json.loads(latest.schema.schema_str)), None
        )
        assert clean["customer_id"].startswith("ps")
    assert lookups == [v1_id]  # fetched once by id, then cached

    unknown = flow.process(frame_confluent(v1_id + 1000, b"\x00"), topic="t", partition=0, offset=9)
    assert isinstance(unknown, DeadLetter) and unknown.reason == "unknown_schema"
    # A writer schema in the registry that does not resolve to the topology's schema.
    other = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}
    other_id = registry.register_schema("elsewhere-value", Schema(json.dumps(other), "AVRO"))
    bad = flow.process(frame_confluent(other_id, b"\x02"), topic="t", partition=0, offset=10)
    assert isinstance(bad, DeadLetter)
    assert bad.reason == "incompatible_schema"

    # Writing Confluent framing without a registry is a load-time error naming the file.
    del doc["registry"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"confluent\.yaml.*registry"):
        build_flow(load_topology(path), Settings(), keyring)


def test_exposure_tracks_the_k_anonymity_of_the_flows_own_output(keyring: Keyring) -> None:
    """The gauge's source: a policy without k lets unique combinations out, and the flow's
    own RollingRisk sees it (the figure equals streamproc.risk.measure on the same output)."""
    topo = load_topology(TOPOLOGY)
    plan = compile_plan(policy_without_k(read_schema_json(topo.source.schema)[0]), keyring)
    flow = SanitizeFlow(topo, plan, keyring)
    assert flow.exposure is not None
    outs = []
    for i, (rec, _) in enumerate(customer_records(300, seed=5)):
        out = flow.process(single_object(plan.source_schema, rec), topic="t", partition=0, offset=i)
        assert isinstance(out, Sanitized)
        outs.append(decode_out(flow, out))
    state = flow.combined_state()["exposure"]
    expected = measure(outs, quasi_fields(plan.derived_schema_json), k=5)
    assert state["records"] == 300
    assert (state["k_min"], state["unique_share"]) == (expected.k_min, expected.unique_share)
    assert state["unique_share"] > 0  # the risky policy is seen as risky


def test_helper_states_combine_conservatively(keyring: Keyring) -> None:
    # A flow that sanitized nothing itself (every partition in the helpers).
    topo = load_topology(TOPOLOGY)
    flow = SanitizeFlow(topo, compile_plan(topo.source.schema, keyring), keyring)
    flow.absorb(
        1, {"exposure": {"records": 10, "k_min": 7, "unique_share": 0.0, "below_k_share": 0.1}}
    )
    flow.absorb(
        2, {"exposure": {"records": 5, "k_min": 2, "unique_share": 0.2, "below_k_share": 0.4}}
    )
    got = flow.combined_state()["exposure"]
    assert got == {"records": 15, "k_min": 2, "unique_share": 0.2, "below_k_share": 0.4}


def test_a_thread_sharing_with_helpers_adds_its_own_state(keyring: Keyring) -> None:
    """The hot path's thread sanitizes a share of the partitions beside one helper: the
    gauge combines the helper's state with the thread's own, not the helper's alone."""
    topo = load_topology(TOPOLOGY)
    plan = compile_plan(policy_without_k(read_schema_json(topo.source.schema)[0]), keyring)
    flow = SanitizeFlow(topo, plan, keyring)
    helper = {"exposure": {"records": 10, "k_min": 7, "unique_share": 0.0, "below_k_share": 0.0}}
    flow.absorb(1, helper)
    assert flow.combined_state()["exposure"] == helper["exposure"]  # nothing of its own yet
    items = [
        (single_object(plan.source_schema, rec), None, "t", 0, i, None)
        for i, (rec, _) in enumerate(customer_records(50, seed=5))
    ]
    flow.process_many(items)
    own = flow.state()["exposure"]
    got = flow.combined_state()["exposure"]
    assert got["records"] == 60
    assert got["k_min"] == min(own["k_min"], 7)
    assert got["unique_share"] == own["unique_share"] > 0
