"""The detector agent: access-log topic -> per-principal features -> score -> containment.

Wiring only; the detector itself is :mod:`streamproc.detector` (``Scorer.process``).

* Source: access events (``schemas/access_event.avsc``, single-object or Confluent framing),
  **keyed by principal**. Per-principal state must live on one partition, so an event whose
  key is not its principal goes to the dead-letter topic (reason ``key_not_principal``)
  instead of splitting that principal's history. All producers must use the same
  partitioner (Kafka's default murmur2; librdkafka: ``partitioner=murmur2_random``).
* State: a Faust table with a changelog (``<app id>-<topology>-principals-changelog``), one
  partition per source partition; each value is JSON ``{"state": PrincipalState.to_dict(),
  "src": [partition, offset]}``, written once per micro-batch for every principal the batch
  touched, to the changelog partition of the source partition. ``src`` is the last source
  offset folded into the state: after a crash the uncommitted tail is re-delivered, and
  events at or below ``src`` are skipped, so no event is counted twice in a principal's
  history (state is effectively-once; containment messages are at-least-once and carry a
  deterministic ``containment_id`` for deduplication).
* Order per batch: dead letters and containment messages are sent and acknowledged, then
  the table is written, then Faust commits source offsets (after flushing the producer). A
  containment therefore never gets lost behind a state that already saw its event.
* Outputs: containment messages (``schemas/containment.avsc``, key = principal) to the sink
  topic; bad events sealed to the dead-letter topic like the sanitizer's; counters
  ``streamproc_access_events``, ``streamproc_anomalies``, ``streamproc_containments``; a
  ``containment.apply`` audit entry per containment; with ``--enforce`` DENY ACLs through
  :class:`streamproc.acl.Enforcer`.

Topology keys under ``detector:``: ``model`` (required, a ``streamproc detector train``
output), ``threshold`` (override the model's calibrated threshold), ``cooldown_min``
(default 30: one containment per incident and principal).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faust

from streamproc.agents.batching import BatchOutput, add_lag_gauge, stop_on_failure
from streamproc.avro.codec import Decoder, Encoder, WriterSchemas
from streamproc.detector.decide import RecommendedAction
from streamproc.errors import ConfigError, RecordError, StreamprocError
from streamproc.flow import (
    H_DLQ_ERROR,
    H_DLQ_KEY,
    H_DLQ_REASON,
    H_DLQ_TIME,
    H_DLQ_TOPOLOGY,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TOPIC,
    dlq_aad,
    seal_envelope,
)
from streamproc.metrics import WorkerMetrics
from streamproc.topology import Topology

if TYPE_CHECKING:
    from streamproc.audit import AuditLog
    from streamproc.config import Settings
    from streamproc.detector import AccessEvent, Containment, PrincipalState, Scorer
    from streamproc.keys import Keyring

log = logging.getLogger("streamproc.agents.detector")

BATCH = 256
WITHIN = 0.05
H_MODEL_VERSION = "streamproc.detector.model"
DETECTOR_KEYS = frozenset({"model", "threshold", "cooldown_min"})
ENFORCED_BY = "streamproc-detector"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class BadEvent:
    """An access event that cannot be scored: the sealed dead letter to produce."""

    value: bytes
    headers: Headers
    reason: str


class AccessDecoder:
    """bytes -> :class:`AccessEvent`, or a sealed dead letter (never raises for bad input)."""

    def __init__(self, topology: Topology, keyring: Keyring, registry: Any | None = None) -> None:
        from fastavro import parse_schema

        from streamproc.avro.schema import read_schema_json

        reader = parse_schema(read_schema_json(topology.source.schema)[0])
        history = tuple(parse_schema(read_schema_json(p)[0]) for p in topology.source.history)
        schemas = WriterSchemas(reader, history, registry=registry, limits=topology.limits)
        self.decoder = Decoder(schemas, topology.framing)
        self.topology = topology
        self.keyring = keyring

    def decode(
        self, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int
    ) -> AccessEvent | BadEvent:
        from streamproc.detector import parse_event

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
            return self.dead_letter(key, value, exc.reason, str(exc), topic, partition, offset)
        except Exception as exc:  # a bug must not stop the stream nor leak the value
            return self.dead_letter(
                key, value, "internal_error", type(exc).__name__, topic, partition, offset
            )

    def dead_letter(
        self,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        message: str,
        topic: str,
        partition: int,
        offset: int,
    ) -> BadEvent:
        sealed = self.keyring.seal(seal_envelope(key, value), dlq_aad(topic, partition, offset))
        headers: Headers = [
            (H_SOURCE_TOPIC, topic.encode()),
            (H_SOURCE_PARTITION, str(partition).encode()),
            (H_SOURCE_OFFSET, str(offset).encode()),
            (H_DLQ_TOPOLOGY, self.topology.name.encode()),
            (H_DLQ_REASON, reason.encode()),
            (H_DLQ_ERROR, message.encode()),
            (H_DLQ_TIME, str(int(time.time() * 1000)).encode()),
            (H_DLQ_KEY, f"quarantine={self.keyring.current_version('quarantine')}".encode()),
        ]
        return BadEvent(sealed, headers, reason)


class StateCache:
    """Per-principal state in front of the Faust table.

    The table holds serialized JSON (``{"state": ..., "src": [partition, offset]}``); the
    cache keeps the parsed :class:`PrincipalState` together with the exact bytes object it
    came from, so a value replaced by changelog recovery (another object) is parsed again.
    """

    def __init__(self, store: Any) -> None:
        self.store = store  # the table's storage: principal -> bytes
        self._cache: dict[str, tuple[Any, PrincipalState, tuple[int, int]]] = {}

    def get(self, principal: str) -> tuple[PrincipalState | None, tuple[int, int]]:
        """The principal's state (None if new) and the last source (partition, offset)."""
        from streamproc.detector import PrincipalState

        raw = self.store.get(principal)
        if raw is None:
            self._cache.pop(principal, None)
            return None, (-1, -1)
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
            # (it is in warm-up again) rather than stop the stream.
            log.warning("state of principal %s unreadable; starting it over", principal)
            self._cache.pop(principal, None)
            return None, (-1, -1)
        self._cache[principal] = (raw, state, src)
        return state, src

    def put(self, principal: str, state: PrincipalState, src: tuple[int, int]) -> bytes:
        """Serialize now (the state keeps changing) and remember the result; the caller
        stores the bytes and sends them to the changelog."""
        raw = json.dumps(
            {"state": state.to_dict(), "src": list(src)}, separators=(",", ":")
        ).encode()
        self._cache[principal] = (raw, state, src)
        return raw


def load_detector(topology: Topology) -> tuple[Any, Scorer]:
    """The topology's model and a scorer (threshold/cooldown from the topology); a missing
    or unusable model is a :class:`ConfigError` that says how to make one."""
    from streamproc.detector import Decider, Detector, Scorer
    from streamproc.errors import DetectorError

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
            "(baseline traces: python -m load.access_traces --baseline --out BASELINE.jsonl)"
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


def _source_partitions(topology: Topology, settings: Settings) -> int:
    """Partitions of the source topic: the topology's, else the broker's."""
    if topology.source.partitions:
        return topology.source.partitions
    from confluent_kafka.admin import AdminClient

    md = AdminClient(settings.kafka_config()).list_topics(topology.source.topic, timeout=10)
    topic = md.topics.get(topology.source.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        raise ConfigError(
            f"{topology.path}: key 'source.partitions': is required while topic "
            f"{topology.source.topic} does not exist (the state table is partitioned like it)"
        )
    return len(topic.partitions)


def _containment_encoder(topology: Topology, settings: Settings) -> Encoder:
    from fastavro import parse_schema

    from streamproc.avro.schema import read_schema_json

    if topology.sink.schema is None:
        raise ConfigError(
            f"{topology.path}: key 'sink.schema': a detect topology needs the containment "
            "schema (schemas/containment.avsc)"
        )
    doc = read_schema_json(topology.sink.schema)[0]
    schema_id = None
    if topology.write_framing == "confluent":
        from confluent_kafka.schema_registry import Schema

        from streamproc.agents.wiring import registry_client

        registry = registry_client(topology.registry_url or settings.schema_registry_url)
        if registry is None:
            raise ConfigError(
                f"{topology.path}: key 'write_framing': confluent needs a registry "
                "(key 'registry.url' or STREAMPROC_SCHEMA_REGISTRY_URL)"
            )
        schema_id = registry.register_schema(
            f"{topology.sink.topic}-value", Schema(json.dumps(doc), "AVRO")
        )
    return Encoder(parse_schema(doc), topology.write_framing, schema_id)


def make_enforcer(topology: Topology, settings: Settings, audit: AuditLog | None) -> Any:
    """The ACL enforcer for ``--enforce``: DENY on the data topics of every topology beside
    this one (like ``streamproc containment enforce``), never on the worker itself."""
    from streamproc.acl import Enforcer
    from streamproc.topology import load_topology

    topologies = [topology]
    principals_file = topology.path.parent / "principals.yaml"
    for path in sorted(topology.path.parent.glob("*.yaml")):
        if path.resolve() in (topology.path, principals_file.resolve()):
            continue
        try:
            topologies.append(load_topology(path))
        except StreamprocError:
            log.warning("--enforce: %s is not a topology; its topics are not denied", path)
    protected: list[str] = []
    if principals_file.is_file():
        from streamproc.acl import load_principals

        protected.append(load_principals(principals_file).worker.principal)
    if settings.sasl_username:
        protected.append(settings.sasl_username)
    return Enforcer.from_settings(
        settings, topologies, protected=protected, audit=audit, by=ENFORCED_BY
    )


def add_detector(
    app: faust.App,
    topology: Topology,
    settings: Settings,
    metrics: WorkerMetrics,
    audit: AuditLog | None = None,
    *,
    enforce: bool | None = None,
) -> Any:
    """Add the detector agent for one ``kind: detect`` topology to ``app``.

    Fails at start (:class:`ConfigError`) without a model file or a keyring (dead letters
    are sealed with its quarantine key). ``enforce`` defaults to ``settings.enforce``.
    """
    from streamproc.audit import AuditKind
    from streamproc.keys import Keyring

    det, scorer = load_detector(topology)
    if settings.keyring is None:
        raise ConfigError(
            f"{topology.path}: a detect topology needs a keyring to seal dead letters "
            "(--keyring or STREAMPROC_KEYRING)"
        )
    keyring = Keyring.load(settings.keyring)
    from streamproc.agents.wiring import registry_client

    registry = registry_client(topology.registry_url or settings.schema_registry_url)
    decoder = AccessDecoder(topology, keyring, registry)
    encoder = _containment_encoder(topology, settings)
    if enforce is None:
        enforce = settings.enforce
    enforcer = make_enforcer(topology, settings, audit) if enforce else None

    name = topology.name
    n_partitions = _source_partitions(topology, settings)
    source = app.topic(
        topology.source.topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=n_partitions,
    )
    table = app.Table(
        f"{name}-principals",
        default=None,
        partitions=n_partitions,
        schema=faust.Schema(
            key_type=str, value_type=bytes, key_serializer="json", value_serializer="raw"
        ),
        help="per-principal detector state (PrincipalState JSON + last source offset)",
    )
    sink_topic, dlq_topic = topology.sink.topic, topology.dead_letter
    out = BatchOutput(app, topology.source.topic, [sink_topic, dlq_topic], n_partitions)
    model_header = (H_MODEL_VERSION, str(det.model_version).encode())

    m_events = metrics.access_events.labels(name)
    m_anomalies = metrics.anomalies.labels(name)
    m_latency = metrics.processing.labels(name)
    # Every action's counter exists from start (at 0): the first containment is an increase.
    for action in RecommendedAction:
        metrics.containments.labels(name, action.value)
    dead: dict[str, Any] = {}
    last_offset: dict[int, int] = {}
    log.info(
        "topology %s loaded: %s -> %s (model %s, threshold %.4f, enforce=%s)",
        name,
        topology.source.topic,
        sink_topic,
        det.model_version,
        scorer.decider.threshold,
        enforce,
    )

    async def contain(c: Containment) -> None:
        metrics.containments.labels(name, c.action.value).inc()
        # Principal, action and score: access metadata; the reasons stay in the message.
        log.warning(
            "containment: topology=%s principal=%s action=%s score=%.3f threshold=%.3f id=%s",
            name,
            c.principal,
            c.action.value,
            c.score,
            c.threshold,
            c.containment_id,
        )
        enforced = False
        if enforcer is not None:
            try:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(
                    None,
                    lambda: enforcer.enforce(
                        c.principal,
                        reason=c.action.value.lower(),
                        incident=c.containment_id,
                        score=c.score,
                        threshold=c.threshold,
                    ),
                )
                enforced = True  # the enforcer wrote the audit entries itself
            except StreamprocError as exc:
                log.error(
                    "containment not enforced: principal=%s id=%s: %s",
                    c.principal,
                    c.containment_id,
                    exc,
                )
        if audit is not None and not enforced:
            try:
                audit.append(
                    AuditKind.CONTAINMENT,
                    principal=c.principal,
                    reason=c.action.value.lower(),
                    incident=c.containment_id,
                    score=c.score,
                    threshold=c.threshold,
                    enforced=False,
                    topics=[sink_topic],
                    by=ENFORCED_BY,
                )
            except StreamprocError as exc:
                # e.g. a principal name the audit trail cannot hold; never log the fields
                log.error("containment %s not audited: %s", c.containment_id, exc)

    async def handle(events: list[Any], cache: StateCache) -> None:
        producer = app.producer
        batch: list[AccessEvent] = []
        metas: list[Any] = []
        states: dict[str, PrincipalState] = {}
        src: dict[str, tuple[int, int]] = {}
        stamps = []
        for event in events:
            msg = event.message
            result = decoder.decode(msg.key, msg.value, msg.topic, msg.partition, msg.offset)
            last_offset[msg.partition] = msg.offset
            if isinstance(result, BadEvent):
                await out.add(dlq_topic, msg.partition, None, result.value, result.headers)
                _count_dead(result.reason, msg)
                continue
            p = result.principal
            if p not in src:
                st, done = cache.get(p)
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
                stamps.append(msg.timestamp)
        if not batch:
            await out.flush()
            return
        res = scorer.process(batch, states)
        flagged = 0
        contained = []
        for i, scored in enumerate(res.scored):
            flagged += scored.flagged
            c = scored.containment
            if c is None:
                continue
            msg = metas[i]
            headers = [
                (H_SOURCE_TOPIC, msg.topic.encode()),
                (H_SOURCE_PARTITION, str(msg.partition).encode()),
                (H_SOURCE_OFFSET, str(msg.offset).encode()),
                model_header,
            ]
            value = encoder.encode(c.to_avro_dict())
            await out.add(sink_topic, msg.partition, c.principal.encode(), value, headers)
            contained.append(c)
        await out.flush()
        if contained:
            # Acknowledged before the state that saw the triggering event is written.
            await producer.flush()
            for c in contained:
                await contain(c)
        for p in res.touched:
            raw = cache.put(p, states[p], src[p])
            table.data[p] = raw
            table.send_changelog(src[p][0], p, raw)
        now = time.time()
        for ts in stamps:
            m_latency.observe(max(0.0, now - ts))
        m_events.inc(len(batch))
        if flagged:
            m_anomalies.inc(flagged)

    async def detect(stream: Any) -> None:
        cache = StateCache(table.data)
        async for events in stream.take_events(BATCH, within=WITHIN):
            try:
                await handle(events, cache)
            except Exception as exc:
                # The table, restored from its changelog, skips events it already saw.
                stop_on_failure(log, "detector", exc)

    def _count_dead(reason: str, msg: Any) -> None:
        counter = dead.get(reason)
        if counter is None:
            counter = dead[reason] = metrics.dead_letters.labels(name, reason)
        counter.inc()
        log.warning(
            "dead letter: topology=%s reason=%s source=%s/%d/%d",
            name,
            reason,
            msg.topic,
            msg.partition,
            msg.offset,
        )
        if audit is not None:
            audit.append(
                AuditKind.DEAD_LETTER,
                reason=reason,
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                dlq_topic=dlq_topic,
                worker=name,
            )

    agent = app.agent(source, name=f"detect-{name}")(detect)

    add_lag_gauge(app, metrics.consumer_lag, name, topology.source.topic, last_offset)

    return agent
