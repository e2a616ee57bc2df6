"""The detect flow as a pure function of a batch: access-log messages in, outcomes out.

``DetectFlow.process`` decodes each message (a bad one becomes a sealed dead letter),
skips events the principal's state already folded in (re-delivered after a crash: the state
keeps the last source offset it saw), scores and decides with
:class:`streamproc.detector.Scorer`, and encodes containment messages. The runtime (the
detect hot path or the Faust agent) only produces what it returns and writes the states to
its state topic; every rule about order and de-duplication lives here, where it is tested
without Kafka.

Per-principal state must live on one partition, so an event whose key is not its
principal is dead-lettered (``key_not_principal``). State values are JSON
``{"state": PrincipalState.to_dict(), "src": [partition, offset]}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastavro import parse_schema

from streamproc.avro.codec import Decoder, Encoder, WriterSchemas
from streamproc.avro.schema import read_schema_json
from streamproc.config.topology import Topology
from streamproc.detector import (
    AccessEvent,
    Containment,
    Decider,
    Detector,
    PrincipalState,
    Scorer,
    parse_event,
)
from streamproc.detector.state import seed_state
from streamproc.errors import ConfigError, DetectorError, RecordError, StreamprocError
from streamproc.keys import Keyring
from streamproc.pipeline.deadletter import DeadLetterSealer, source_headers
from streamproc.pipeline.outcome import DeadLetter, Headers

log = logging.getLogger("streamproc.pipeline.detect")

H_MODEL_VERSION = "streamproc.detector.model"
DETECTOR_KEYS = frozenset({"model", "threshold", "cooldown_min"})
NO_SOURCE = (-1, -1)


class SourceMessage(Protocol):
    """What the flow reads of a consumed message (Faust's ``Message`` has these)."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: float | None


class AccessDecoder:
    """bytes -> :class:`AccessEvent`, or a sealed dead letter (never raises for bad input)."""

    def __init__(self, topology: Topology, keyring: Keyring, registry: Any | None = None) -> None:
        reader = parse_schema(read_schema_json(topology.source.schema)[0])
        history = tuple(parse_schema(read_schema_json(p)[0]) for p in topology.source.history)
        schemas = WriterSchemas(reader, history, registry=registry, limits=topology.limits)
        self.decoder = Decoder(schemas, topology.framing)
        self.topology = topology
        self.sealer = DeadLetterSealer(keyring, topology.name)

    def decode(
        self, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int
    ) -> AccessEvent | DeadLetter:
        try:
            if value is None:
                raise RecordError("tombstone (null value) on an access topic", reason="null_value")
            record, _ws = self.decoder.decode(value)
            event = parse_event(record)
            if key is None or key != event.principal.encode():
                raise RecordError(
                    "record key is not the event's principal (the access topic must be "
                    "keyed by principal)",
                    reason="key_not_principal",
                )
            return event
        except RecordError as exc:
            return self.sealer.seal(key, value, exc.reason, str(exc), topic, partition, offset)
        except Exception as exc:  # a bug must not stop the stream nor leak the value
            return self.sealer.seal(
                key, value, "internal_error", type(exc).__name__, topic, partition, offset
            )


class StateCache:
    """Per-principal state in front of a key-value store (the agent's table).

    The store holds serialized JSON; the cache keeps the parsed :class:`PrincipalState`
    with the exact bytes object it came from, so a value replaced by changelog recovery
    (another object) is parsed again.

    ``defer=True`` (the detect hot path): :meth:`put` only marks the principal, and
    :meth:`take_dirty` serializes each marked one once, when the caller writes its state
    topic (at each commit instead of each batch; a state is ~4 KB of JSON).
    """

    def __init__(self, store: MutableMapping[str, Any], *, defer: bool = False) -> None:
        self.store = store
        self.defer = defer
        self._cache: dict[str, tuple[Any, PrincipalState, tuple[int, int]]] = {}
        self._dirty: dict[str, None] = {}  # put since the last take_dirty (defer only)

    def get(self, principal: str) -> tuple[PrincipalState | None, tuple[int, int]]:
        """The principal's state (None if new) and the last source (partition, offset)."""
        if principal in self._dirty:  # newer than the store
            _, state, src = self._cache[principal]
            return state, src
        raw = self.store.get(principal)
        if raw is None:
            self._cache.pop(principal, None)
            return None, NO_SOURCE
        hit = self._cache.get(principal)
        if hit is not None and hit[0] is raw:
            return hit[1], hit[2]
        try:
            # Our own writes are bytes; values restored from the changelog arrive decoded.
            doc = raw if isinstance(raw, dict) else json.loads(raw)
            state = PrincipalState.from_dict(doc["state"])
            src = (int(doc["src"][0]), int(doc["src"][1]))
        except (StreamprocError, KeyError, IndexError, TypeError, ValueError):
            # E.g. a state written by another detector version: start this principal over
            # rather than stop the stream.
            log.warning("state of principal %s unreadable; starting it over", principal)
            self._cache.pop(principal, None)
            return None, NO_SOURCE
        self._cache[principal] = (raw, state, src)
        return state, src

    def put(self, principal: str, state: PrincipalState, src: tuple[int, int]) -> bytes | None:
        """Serialize now (the state keeps changing) and remember the result; the caller
        stores the bytes and sends them to the changelog. Deferred: None (see
        :meth:`take_dirty`)."""
        if self.defer:
            self._cache[principal] = (None, state, src)
            self._dirty[principal] = None
            return None
        raw = _encode_state(state, src)
        self._cache[principal] = (raw, state, src)
        return raw

    def take_dirty(self) -> list[tuple[str, int, bytes]]:
        """``(principal, partition of its last event, raw)`` of every principal put since
        the last call, serialized now and written to the store."""
        out = []
        for principal in self._dirty:
            _, state, src = self._cache[principal]
            raw = _encode_state(state, src)
            self.store[principal] = raw
            self._cache[principal] = (raw, state, src)
            out.append((principal, src[0], raw))
        self._dirty = {}
        return out

    def pending(self) -> dict[str, int]:
        """Principal -> partition of its last event, of every principal put and not taken."""
        return {p: self._cache[p][2][0] for p in self._dirty}

    def forget(self, principals: Iterable[str]) -> None:
        """Drop ``principals`` from the cache and the store (their partition went to
        another worker), whether dirty or not."""
        for principal in principals:
            self._cache.pop(principal, None)
            self._dirty.pop(principal, None)
            self.store.pop(principal, None)


def _encode_state(state: PrincipalState, src: tuple[int, int]) -> bytes:
    return json.dumps({"state": state.to_dict(), "src": list(src)}, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class ContainmentOut:
    """A containment message to produce on the source record's partition."""

    partition: int
    key: bytes
    value: bytes
    headers: Headers
    containment: Containment


@dataclass
class DetectResult:
    """What one batch made: outputs first, then the states to store after they are acked."""

    dead: list[tuple[int, DeadLetter, SourceMessage]] = field(default_factory=list)
    contained: list[ContainmentOut] = field(default_factory=list)
    # principal, partition, raw (empty with a deferring cache: StateCache.take_dirty)
    states: list[tuple[str, int, bytes]] = field(default_factory=list)
    scored: int = 0
    flagged: int = 0
    timestamps: list[float] = field(default_factory=list)
    last_offsets: dict[int, int] = field(default_factory=dict)


class DetectFlow:
    """Decode -> de-duplicate -> score -> decide -> encode, for one ``kind: detect`` topology."""

    def __init__(
        self,
        topology: Topology,
        detector: Detector,
        scorer: Scorer,
        decoder: AccessDecoder,
        encoder: Encoder,
    ) -> None:
        self.topology = topology
        self.detector = detector
        self.scorer = scorer
        self.decoder = decoder
        self.encoder = encoder
        self.model_header = (H_MODEL_VERSION, str(detector.model_version).encode())

    def process(self, messages: Sequence[SourceMessage], cache: StateCache) -> DetectResult:
        """One batch; ``cache`` fronts the state store, which the caller writes afterwards."""
        out = DetectResult()
        batch: list[AccessEvent] = []
        metas: list[SourceMessage] = []
        states: dict[str, PrincipalState] = {}
        src: dict[str, tuple[int, int]] = {}
        for msg in messages:
            result = self.decoder.decode(msg.key, msg.value, msg.topic, msg.partition, msg.offset)
            out.last_offsets[msg.partition] = msg.offset
            if isinstance(result, DeadLetter):
                out.dead.append((msg.partition, result, msg))
                continue
            p = result.principal
            if p not in src:
                st, done = cache.get(p)
                # No blind start: a principal the table does not know (or knows less recent
                # history of than the model) continues from the deployed model's state.
                # (seed_state copies the model's state only when it uses it)
                st = seed_state(st, self.detector.states.get(p))
                if st is not None:
                    states[p] = st
                src[p] = done
            done = src[p]
            if done[0] == msg.partition and msg.offset <= done[1]:
                continue  # re-delivered after a crash: already in the state
            src[p] = (msg.partition, msg.offset)
            batch.append(result)
            metas.append(msg)
            if msg.timestamp:
                out.timestamps.append(msg.timestamp)
        if not batch:
            return out
        res = self.scorer.process(batch, states)
        for scored, msg in zip(res.scored, metas, strict=True):
            out.flagged += scored.flagged
            c = scored.containment
            if c is not None:
                headers = [*source_headers(msg.topic, msg.partition, msg.offset), self.model_header]
                value = self.encoder.encode(c.to_avro_dict())
                out.contained.append(
                    ContainmentOut(msg.partition, c.principal.encode(), value, headers, c)
                )
        for p in res.touched:
            raw = cache.put(p, states[p], src[p])
            if raw is not None:
                out.states.append((p, src[p][0], raw))
        out.scored = len(batch)
        return out


def load_detector(topology: Topology) -> tuple[Detector, Scorer]:
    """The topology's model and a scorer (threshold/cooldown from the topology); a missing
    or unusable model is a :class:`ConfigError` that says how to make one."""
    cfg = dict(topology.detector)
    unknown = sorted(set(cfg) - DETECTOR_KEYS)
    if unknown:
        raise ConfigError(f"{topology.path}: key 'detector.{unknown[0]}': unknown key")
    model = cfg.get("model")
    if not isinstance(model, str):
        raise ConfigError(f"{topology.path}: key 'detector.model': is required (a .skops file)")
    path = Path(model)
    if not path.is_file():
        raise ConfigError(
            f"{topology.path}: key 'detector.model': model file {path} not found; train one "
            f"with `streamproc detector train --events BASELINE.jsonl --model {path}` "
            "(baseline traces: python -m streamproc.testing.access_traces --baseline "
            "--out BASELINE.jsonl)"
        )
    try:
        det = Detector.load(path)
    except DetectorError as exc:
        raise ConfigError(f"{topology.path}: key 'detector.model': {exc}") from None
    kwargs: dict[str, Any] = {}
    cooldown = cfg.get("cooldown_min", 30)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or cooldown < 0:
        raise ConfigError(f"{topology.path}: key 'detector.cooldown_min': must be >= 0 minutes")
    kwargs["cooldown_ms"] = int(cooldown * 60_000)
    threshold = cfg.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ConfigError(f"{topology.path}: key 'detector.threshold': must be a number")
        kwargs["threshold"] = float(threshold)
    return det, Scorer(det, Decider.from_detector(det, **kwargs))
