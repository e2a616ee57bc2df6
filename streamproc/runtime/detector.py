"""The detector agent: wires a :class:`~streamproc.pipeline.detect.DetectFlow` to Faust.

State lives in a Faust table with a changelog (``<app id>-<topology>-principals-changelog``),
one partition per source partition. Order per batch: dead letters and containment messages
are sent and acknowledged, then the table is written, then Faust commits source offsets
(after flushing the producer). A containment therefore never gets lost behind a state that
already saw its event; re-delivered events are skipped by the flow (state is
effectively-once; containment messages are at-least-once and carry a deterministic
``containment_id``). With ``--enforce``, DENY ACLs through :class:`streamproc.acl.Enforcer`.
Design and topology keys: docs/detector.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from confluent_kafka.admin import AdminClient

from streamproc.acl import Enforcer, load_principals
from streamproc.audit import AuditKind, AuditLog
from streamproc.config.settings import Settings
from streamproc.config.topology import Topology, lexical_path, load_topology
from streamproc.detector import Containment, RecommendedAction
from streamproc.errors import ConfigError, StreamprocError
from streamproc.metrics import WorkerMetrics
from streamproc.pipeline.build import build_detect_flow
from streamproc.pipeline.detect import DetectFlow, StateCache
from streamproc.runtime.batching import (
    BatchOutput,
    DeadLetterReporter,
    add_lag_gauge,
    stop_on_failure,
)

log = logging.getLogger("streamproc.runtime.detector")

BATCH = 1024
WITHIN = 0.05
ENFORCED_BY = "streamproc-detector"


def _source_partitions(topology: Topology, settings: Settings) -> int:
    """Partitions of the source topic: the topology's, else the broker's."""
    if topology.source.partitions:
        return topology.source.partitions
    md = AdminClient(settings.kafka_config()).list_topics(topology.source.topic, timeout=10)
    topic = md.topics.get(topology.source.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        raise ConfigError(
            f"{topology.path}: key 'source.partitions': is required while topic "
            f"{topology.source.topic} does not exist (the state table is partitioned like it)"
        )
    return len(topic.partitions)


def make_enforcer(topology: Topology, settings: Settings, audit: AuditLog | None) -> Enforcer:
    """The ACL enforcer for ``--enforce``: DENY on the data topics of every topology beside
    this one (like ``streamproc containment enforce``), never on the worker itself."""
    topologies = [topology]
    principals_file = topology.path.parent / "principals.yaml"
    for path in sorted(topology.path.parent.glob("*.yaml")):
        if lexical_path(path) in (topology.path, lexical_path(principals_file)):
            continue
        try:
            topologies.append(load_topology(path))
        except StreamprocError:
            log.warning("--enforce: %s is not a topology; its topics are not denied", path)
    protected: list[str] = []
    if principals_file.is_file():
        protected.append(load_principals(principals_file).worker.principal)
    if settings.sasl_username:
        protected.append(settings.sasl_username)
    return Enforcer.from_settings(
        settings, topologies, protected=protected, audit=audit, by=ENFORCED_BY
    )


class Containments:
    """The side effects of a containment: metric, log line, DENY ACLs or an audit entry."""

    def __init__(
        self,
        name: str,
        sink_topic: str,
        metrics: WorkerMetrics,
        audit: AuditLog | None,
        enforcer: Enforcer | None,
    ) -> None:
        self.name, self.sink_topic = name, sink_topic
        self.metrics, self.audit, self.enforcer = metrics, audit, enforcer

    async def apply(self, c: Containment) -> None:
        self.metrics.containments.labels(self.name, c.action.value).inc()
        # Principal, action and score: access metadata; the reasons stay in the message.
        log.warning(
            "containment: topology=%s principal=%s action=%s score=%.3f threshold=%.3f id=%s",
            self.name,
            c.principal,
            c.action.value,
            c.score,
            c.threshold,
            c.containment_id,
        )
        if self.enforcer is not None and await self._enforce(self.enforcer, c):
            return  # the enforcer wrote the audit entries itself
        if self.audit is None:
            return
        try:
            self.audit.append(
                AuditKind.CONTAINMENT,
                principal=c.principal,
                reason=c.action.value.lower(),
                incident=c.containment_id,
                score=c.score,
                threshold=c.threshold,
                enforced=False,
                topics=[self.sink_topic],
                by=ENFORCED_BY,
            )
        except StreamprocError as exc:
            # e.g. a principal name the audit trail cannot hold; never log the fields
            log.error("containment %s not audited: %s", c.containment_id, exc)

    async def _enforce(self, enforcer: Enforcer, c: Containment) -> bool:
        try:
            await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: enforcer.enforce(
                    c.principal,
                    reason=c.action.value.lower(),
                    incident=c.containment_id,
                    score=c.score,
                    threshold=c.threshold,
                ),
            )
            return True
        except StreamprocError as exc:
            log.error(
                "containment not enforced: principal=%s id=%s: %s",
                c.principal,
                c.containment_id,
                exc,
            )
            return False


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

    Fails at start (:class:`ConfigError`) without a model file or a keyring.
    ``enforce`` defaults to ``settings.enforce``.
    """
    flow = build_detect_flow(topology, settings)
    if enforce is None:
        enforce = settings.enforce
    enforcer = make_enforcer(topology, settings, audit) if enforce else None
    name = topology.name
    n_partitions = _source_partitions(topology, settings)
    source = app.topic(
        topology.source.topic, key_serializer="raw", value_serializer="raw", partitions=n_partitions
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
    contain = Containments(name, sink_topic, metrics, audit, enforcer)
    dead = DeadLetterReporter(name, dlq_topic, metrics, audit)
    last_offset: dict[int, int] = {}
    log.info(
        "topology %s loaded: %s -> %s (model %s, threshold %.4f, enforce=%s)",
        name,
        topology.source.topic,
        sink_topic,
        flow.detector.model_version,
        flow.scorer.decider.threshold,
        enforce,
    )
    if audit is not None:
        # Which model judges this topology from now on (a change shows as a new version).
        audit.append(
            AuditKind.MODEL_LOAD,
            topology=name,
            model_version=str(flow.detector.model_version),
            worker=str(app.conf.id),
            states=len(flow.detector.states),
            threshold=float(flow.scorer.decider.threshold),
        )
    handle = _batch_handler(app, flow, table, out, contain, dead, metrics, last_offset)

    async def detect(stream: Any) -> None:
        cache = StateCache(table.data)
        async for events in stream.take_events(BATCH, within=WITHIN):
            try:
                await handle([e.message for e in events], cache)
            except Exception as exc:
                # The table, restored from its changelog, skips events it already saw.
                stop_on_failure(log, "detector", exc)

    agent = app.agent(source, name=f"detect-{name}")(detect)
    add_lag_gauge(app, metrics.consumer_lag, name, topology.source.topic, last_offset)
    return agent


def _batch_handler(
    app: faust.App,
    flow: DetectFlow,
    table: Any,
    out: BatchOutput,
    contain: Containments,
    dead: DeadLetterReporter,
    metrics: WorkerMetrics,
    last_offset: dict[int, int],
) -> Any:
    """The per-batch coroutine: produce what the flow made, in the documented order."""
    name = flow.topology.name
    sink_topic, dlq_topic = flow.topology.sink.topic, flow.topology.dead_letter
    m_events = metrics.access_events.labels(name)
    m_anomalies = metrics.anomalies.labels(name)
    m_latency = metrics.processing.labels(name)
    # Every action's counter exists from start (at 0): the first containment is an increase.
    for action in RecommendedAction:
        metrics.containments.labels(name, action.value)

    async def handle(messages: list[Any], cache: StateCache) -> None:
        res = flow.process(messages, cache)
        last_offset.update(res.last_offsets)
        for partition, letter, msg in res.dead:
            await out.add(dlq_topic, partition, None, letter.value, letter.headers)
            dead.report(letter.reason, msg.topic, msg.partition, msg.offset)
        for c in res.contained:
            await out.add(sink_topic, c.partition, c.key, c.value, c.headers)
        await out.flush()
        if res.contained:
            # Acknowledged before the state that saw the triggering event is written.
            await app.producer.flush()
            for c in res.contained:
                await contain.apply(c.containment)
        for principal, partition, raw in res.states:
            table.data[principal] = raw
            table.send_changelog(partition, principal, raw)
        now = time.time()
        for ts in res.timestamps:
            m_latency.observe(max(0.0, now - ts))
        m_events.inc(res.scored)
        if res.flagged:
            m_anomalies.inc(res.flagged)

    return handle
