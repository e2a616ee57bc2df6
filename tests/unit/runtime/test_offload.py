"""The offload helper: a batch sanitized in another process equals the inline outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streamproc.config import Settings
from streamproc.config.topology import load_topology
from streamproc.errors import ConfigError, OffloadError
from streamproc.keys import Keyring
from streamproc.pipeline import DeadLetter, Sanitized, SanitizeFlow, dlq_aad, open_envelope
from streamproc.pipeline.build import build_flow
from streamproc.runtime.offload import (
    FlowProcess,
    decode_reply,
    decode_request,
    encode_request,
    process_request,
)
from streamproc.testing.customers import bad_payloads, customer_records, single_object

ROOT = Path(__file__).resolve().parents[3]
TOPOLOGY = ROOT / "topologies" / "customers.yaml"
NOISY = b"annual_income"  # the one non-deterministic field of customer_profile


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, SanitizeFlow, Keyring]:
    path = tmp_path_factory.mktemp("offload") / "keyring.json"
    keyring = Keyring.generate()
    keyring.save(path)
    settings = Settings(keyring=path)
    return settings, build_flow(load_topology(TOPOLOGY), settings, keyring), keyring


def items_for(flow: SanitizeFlow) -> list[tuple]:
    schema = flow.plan.source_schema
    good = [single_object(schema, r) for r, _ in customer_records(40, seed=5)]
    bad = [payload for _, payload in bad_payloads(schema, next(customer_records(1))[0])]
    values: list[bytes | None] = [*good[:20], *bad, None, *good[20:]]
    return [
        (v, None if i % 7 == 0 else b"key-%d" % i, "customers.raw", i % 3, 1000 + i, 1_700_000 + i)
        for i, v in enumerate(values)
    ]


def without_noise(flow: SanitizeFlow, out: Sanitized) -> dict:
    record, _ = flow_decoder(flow).decode(out.value)
    record.pop("annual_income", None)
    return record


def flow_decoder(flow: SanitizeFlow):  # the sink's schema, single-object framed
    from streamproc.avro.codec import Decoder, WriterSchemas

    return Decoder(WriterSchemas(flow.plan.derived_schema))


def test_request_roundtrip_keeps_every_field(setup: tuple) -> None:
    _, flow, _ = setup
    items = items_for(flow)
    assert decode_request(encode_request(items)) == items


def test_reply_equals_the_inline_outcomes(setup: tuple) -> None:
    _, flow, keyring = setup
    items = items_for(flow)
    inline = [
        flow.process(v, key=k, topic=t, partition=p, offset=o, timestamp_ms=ts)
        for v, k, t, p, o, ts in items
    ]
    offloaded = decode_reply(flow, items, process_request(flow, encode_request(items)))
    assert len(offloaded) == len(inline)
    n_dead = 0
    for item, a, b in zip(items, inline, offloaded, strict=True):
        assert type(a) is type(b)
        if isinstance(a, Sanitized):
            assert a.key == b.key and a.fingerprint == b.fingerprint
            assert a.headers == b.headers
            assert without_noise(flow, a) == without_noise(flow, b)
        else:
            n_dead += 1
            assert a.reason == b.reason
            drop_time = [h for h in a.headers if h[0] != "streamproc.dlq.time"]
            assert drop_time == [h for h in b.headers if h[0] != "streamproc.dlq.time"]
            plain = keyring.open(b.value, dlq_aad(item[2], item[3], item[4]))
            assert open_envelope(plain) == (item[1], item[0])
    assert n_dead >= 5


def test_helper_process_sanitizes_a_batch(setup: tuple) -> None:
    settings, flow, _ = setup
    items = items_for(flow)
    helper = FlowProcess(TOPOLOGY, settings, flow)
    try:
        outs = asyncio.run(helper.run(items))
        inline = [
            flow.process(v, key=k, topic=t, partition=p, offset=o, timestamp_ms=ts)
            for v, k, t, p, o, ts in items
        ]
        assert [type(o) for o in outs] == [type(o) for o in inline]
        for a, b in zip(inline, outs, strict=True):
            if isinstance(a, Sanitized):
                assert a.key == b.key and a.headers == b.headers
                assert without_noise(flow, a) == without_noise(flow, b)
            else:
                assert isinstance(b, DeadLetter) and a.reason == b.reason
    finally:
        helper.close()


def test_helper_death_fails_the_batch(setup: tuple) -> None:
    settings, flow, _ = setup
    helper = FlowProcess(TOPOLOGY, settings, flow)
    helper._proc.kill()
    helper._proc.join(5)

    async def go() -> None:
        await helper.run(items_for(flow))

    with pytest.raises(OffloadError, match="went away"):
        asyncio.run(go())
    helper.close()


def test_a_bad_topology_fails_at_start(setup: tuple, tmp_path: Path) -> None:
    settings, flow, _ = setup
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    with pytest.raises(ConfigError, match="offload helper"):
        FlowProcess(bad, settings, flow)


def test_reply_carries_the_helpers_flow_state(setup: tuple) -> None:
    """Exposure and budget figures of the helper's flow reach the worker's flow (metrics)."""
    _, flow, _ = setup
    items = items_for(flow)
    flow._remote.clear()
    decode_reply(flow, items, process_request(flow, encode_request(items)))
    (state,) = flow._remote.values()
    assert state == flow.state()
    flow._remote.clear()
