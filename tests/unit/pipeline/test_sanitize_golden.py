"""Byte-identical outputs across changes to the flow's speed: with every random source fixed
(keyring material, AES-GCM nonces, a seeded noise generator) the customers and claims flows
turn a fixed batch into exactly the outcomes they did before. ``EXPECTED`` was computed by
the flow as it stood before the CPU work on issue 14 (commit 53f366b); a change that alters
one output byte, header or dead-letter reason fails here. Re-recorded for customers when the
shipped policy's birth_date ladder gained 5-year bands, and again when its postcode ladder
declared its digit alphabet: each time only the policy fingerprint changed (every output
and header compared equal with it masked)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamproc.config.topology import load_topology
from streamproc.keys import Keyring
from streamproc.pipeline import DeadLetter, Sanitized, SanitizeFlow
from streamproc.pipeline.build import history_schemas
from streamproc.pipeline.outcome import H_DLQ_ERROR
from streamproc.policy import compile_plan
from streamproc.testing import claims as claim_samples
from streamproc.testing.customers import bad_payloads, customer_records, single_object

ROOT = Path(__file__).resolve().parents[3]
N = 300
EXPECTED = {
    "customers": "c779c11a482dfec18f95df42c85bc7423d916d35fb9b75fc18ecfac06ba38d8c",
    "claims": "50cac8b69f698a0e1af8b714c2a2806cc6335562d40c3244148e19bd26090caa",
}


def fixed_urandom(seed: int) -> Any:
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


def build(kind: str, monkeypatch: pytest.MonkeyPatch) -> SanitizeFlow:
    monkeypatch.setattr("os.urandom", fixed_urandom(14))
    keyring = Keyring.generate()
    topo = load_topology(ROOT / "topologies" / f"{kind}.yaml")
    plan = compile_plan(topo.source.schema, keyring, strict=topo.strict, rng=random.Random(3))
    return SanitizeFlow(topo, plan, keyring, history=history_schemas(topo))


def batch(flow: SanitizeFlow, kind: str) -> list[tuple[bytes | None, bytes | None, int | None]]:
    """(value, key, timestamp) of N good records and every kind of bad payload."""
    schema = flow.plan.source_schema
    if kind == "claims":
        rng = random.Random(11)
        recs = [claim_samples.claim_record(i, rng) for i in range(N)]
    else:
        recs = [r for r, _ in customer_records(N, seed=11)]
    values: list[bytes | None] = [single_object(schema, r) for r in recs]
    values += [p for _, p in bad_payloads(schema, recs[0])]
    values.append(None)
    return [
        (v, None if i % 7 == 0 else b"key-%d" % i, None if i % 5 == 0 else 1_760_000_000_000 + i)
        for i, v in enumerate(values)
    ]


def digest(outcomes: Iterator[Any]) -> str:
    h = hashlib.sha256()
    for out in outcomes:
        if isinstance(out, Sanitized):
            h.update(b"S%r%r%d" % (out.key, out.value, out.fingerprint))
            h.update(repr(out.headers).encode())
        else:
            assert isinstance(out, DeadLetter)
            error = dict(out.headers)[H_DLQ_ERROR]
            h.update(b"D%r%r" % (out.reason.encode(), error))
    return h.hexdigest()


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_outputs_are_byte_identical_to_the_flow_before(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = build(kind, monkeypatch)
    items = batch(flow, kind)
    got = digest(
        flow.process(v, key=k, topic="src", partition=i % 6, offset=i, timestamp_ms=ts)
        for i, (v, k, ts) in enumerate(items)
    )
    assert got == EXPECTED[kind]


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_process_many_returns_what_process_returns(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = build(kind, monkeypatch)
    items = [(v, k, "src", i % 6, i, ts) for i, (v, k, ts) in enumerate(batch(flow, kind))]
    got = digest(iter(flow.process_many(items[:7]) + flow.process_many(items[7:])))
    assert got == EXPECTED[kind]
    one = build(kind, monkeypatch)
    for v, k, t, p, o, ts in items:
        one.process(v, key=k, topic=t, partition=p, offset=o, timestamp_ms=ts)
    assert flow.stats == one.stats
    assert flow.state() == one.state()
    assert flow.process_many([]) == []
