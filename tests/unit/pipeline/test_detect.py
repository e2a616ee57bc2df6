"""The detect flow: decoding to events or sealed dead letters, the state
cache in front of the table, and start-up errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamproc.avro.codec import Encoder
from streamproc.config.topology import load_topology
from streamproc.detector import AccessEvent, Decider, PrincipalState, Scorer, parse_event
from streamproc.detector.model import Detector, ForestParams
from streamproc.errors import ConfigError
from streamproc.keys import Keyring
from streamproc.pipeline import H_DLQ_REASON, DeadLetter, dlq_aad, open_envelope
from streamproc.pipeline.detect import AccessDecoder, DetectFlow, StateCache, load_detector
from streamproc.testing.access import ACCESS_SCHEMA, CONTAINMENT_SCHEMA, AccessEncoder, load_schema
from streamproc.testing.access_traces import generate
from tests.unit.detector.conftest import SMALL

EVENT = {
    "event_id": "e-1",
    "ts": 1_700_000_000_000,
    "principal": "analyst-7",
    "dataset": "sales.t01",
    "action": "READ",
    "rows": 10,
    "bytes": 1000,
    "source_ip": "10.0.0.7",
    "success": True,
}


def topology(tmp_path: Path, **detector: object) -> Path:
    path = tmp_path / "access.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "access",
                "kind": "detect",
                "source": {"topic": "a.events", "schema": str(ACCESS_SCHEMA), "partitions": 3},
                "sink": {"topic": "a.containment", "schema": str(CONTAINMENT_SCHEMA)},
                "dead_letter": {"topic": "a.dlq"},
                "detector": detector,
            }
        )
    )
    return path


@pytest.fixture
def decoder(tmp_path: Path) -> tuple[AccessDecoder, Keyring]:
    keyring = Keyring.generate()
    topo = load_topology(topology(tmp_path, model="model.skops"))
    return AccessDecoder(topo, keyring), keyring


def test_decodes_an_event_keyed_by_its_principal(decoder: tuple[AccessDecoder, Keyring]) -> None:
    dec, _ = decoder
    enc = AccessEncoder()
    got = dec.decode(b"analyst-7", enc.encode(EVENT), "a.events", 1, 5)
    assert isinstance(got, AccessEvent)
    assert (got.principal, got.action, got.rows) == ("analyst-7", "READ", 10)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"someone-else", "event", "key_not_principal"),
        (None, "event", "key_not_principal"),
        (b"analyst-7", None, "null_value"),
        (b"analyst-7", b"\xc3\x01" + bytes(8) + b"body", "unknown_schema"),
    ],
)
def test_bad_events_become_sealed_dead_letters(
    decoder: tuple[AccessDecoder, Keyring], key: bytes | None, value: object, reason: str
) -> None:
    dec, keyring = decoder
    payload = AccessEncoder().encode(EVENT) if value == "event" else value
    assert payload is None or isinstance(payload, bytes)
    got = dec.decode(key, payload, "a.events", 2, 9)
    assert isinstance(got, DeadLetter)
    assert got.reason == reason
    assert dict(got.headers)[H_DLQ_REASON] == reason.encode()
    assert b"10.0.0.7" not in got.value and b"analyst-7" not in b"".join(v for _, v in got.headers)
    assert open_envelope(keyring.open(got.value, dlq_aad("a.events", 2, 9))) == (key, payload)


def test_state_cache_reads_own_bytes_and_restored_dicts() -> None:
    store: dict[str, object] = {}
    cache = StateCache(store)
    assert cache.get("p") == (None, (-1, -1))
    st = PrincipalState()
    raw = cache.put("p", st, (1, 41))
    store["p"] = raw
    got, src = cache.get("p")
    assert got is st and src == (1, 41)  # cached, not parsed again
    store["p"] = json.loads(raw)  # what changelog recovery puts back
    got, src = cache.get("p")
    assert got is not st and got is not None and src == (1, 41)
    assert got.to_dict() == st.to_dict()
    store["p"] = {"state": {"v": 999}, "src": [0, 1]}  # another state version
    assert cache.get("p") == (None, (-1, -1))


def test_missing_model_fails_at_start_with_a_way_out(tmp_path: Path) -> None:
    topo = load_topology(topology(tmp_path, model="missing.skops"))
    with pytest.raises(ConfigError, match="streamproc detector train"):
        load_detector(topo)
    topo = load_topology(topology(tmp_path, model="missing.skops", cooldown=3))
    with pytest.raises(ConfigError, match=r"detector\.cooldown"):
        load_detector(topo)


@dataclass
class Msg:
    """What the flow reads of a consumed message."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: float | None


@pytest.fixture(scope="module")
def detect_flow(tmp_path_factory: pytest.TempPathFactory) -> tuple[DetectFlow, list[Msg]]:
    """A flow with a small trained model, and messages of principals the model knows."""
    rows = generate(replace(SMALL, seed=901, incidents_per_kind=0))
    det = Detector.train(
        [parse_event(r) for r in rows], min_age_ms=3 * 86_400_000, params=ForestParams(50)
    )
    tmp = tmp_path_factory.mktemp("detect")
    topo = load_topology(topology(tmp, model="model.skops"))
    decider = Decider.from_detector(det)
    flow = DetectFlow(
        topo, det, Scorer(det, decider), AccessDecoder(topo, Keyring.generate()), _encoder()
    )
    enc = AccessEncoder()
    last = max(r["ts"] for r in rows)
    later = [
        dict(r, ts=last + 60_000 * (i + 1), event_id=f"late-{i}") for i, r in enumerate(rows[:40])
    ]
    msgs = [
        Msg(enc.key(r), enc.encode(r), "a.events", 0, i, r["ts"] / 1000)
        for i, r in enumerate(later)
    ]
    return flow, msgs


def _encoder() -> Any:
    return Encoder(load_schema(CONTAINMENT_SCHEMA), "single-object", None)


def test_a_principal_new_to_the_table_continues_from_the_model(
    detect_flow: tuple[DetectFlow, list[Msg]],
) -> None:
    flow, msgs = detect_flow
    store: dict[str, Any] = {}
    res = flow.process(msgs[:1], StateCache(store))
    ((principal, _part, raw),) = res.states
    model_state = flow.detector.initial_state(principal)
    assert model_state is not None and model_state.n > 0
    assert json.loads(raw)["state"]["n"] == model_state.n + 1  # not a blind start at 1


def test_events_redelivered_after_a_crash_are_not_counted_twice(
    detect_flow: tuple[DetectFlow, list[Msg]],
) -> None:
    flow, msgs = detect_flow
    store: dict[str, Any] = {}
    cache = StateCache(store)
    first = flow.process(msgs, cache)
    assert first.scored == len(msgs)
    for principal, _part, raw in first.states:
        store[principal] = raw
    again = flow.process(msgs, cache)  # the uncommitted tail, delivered again
    assert again.scored == 0 and again.states == [] and again.contained == []


def test_a_deferring_cache_serializes_once_per_take(
    detect_flow: tuple[DetectFlow, list[Msg]],
) -> None:
    """The hot path's cache: states are serialized at take_dirty (its commit), not per batch,
    and come out exactly as the eager cache writes them."""
    flow, msgs = detect_flow
    eager_store: dict[str, Any] = {}
    eager = StateCache(eager_store)
    lazy_store: dict[str, Any] = {}
    lazy = StateCache(lazy_store, defer=True)
    for half in (msgs[:20], msgs[20:]):
        for principal, _part, raw in flow.process(half, eager).states:
            eager_store[principal] = raw
        assert flow.process(half, lazy).states == []
    assert lazy_store == {}  # nothing serialized yet; the cache still has the newest state
    again = flow.process(msgs, lazy)
    assert again.scored == 0  # re-delivered: the un-taken state already saw them
    taken = lazy.take_dirty()
    assert {p: raw for p, _part, raw in taken} == eager_store == lazy_store
    assert {part for _p, part, _raw in taken} == {0}
    assert lazy.take_dirty() == []
    lazy.forget(list(lazy_store))
    assert lazy_store == {} and lazy.get(taken[0][0]) == (None, (-1, -1))
