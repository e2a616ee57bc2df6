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

import logging
import time
from typing import Any

import faust

from streamproc.audit import AuditLog
from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.detector import RecommendedAction
from streamproc.metrics import WorkerMetrics
from streamproc.pipeline.build import build_detect_flow
from streamproc.pipeline.detect import DetectFlow, StateCache
from streamproc.runtime.batching import (
    BatchOutput,
    DeadLetterReporter,
    add_lag_gauge,
    stop_on_failure,
)
from streamproc.runtime.effects import (
    Containments,
    announce_model,
    make_enforcer,
    source_partitions,
)

log = logging.getLogger("streamproc.runtime.detector")

BATCH = 1024
WITHIN = 0.05


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
    n_partitions = source_partitions(topology, settings)
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
    announce_model(flow, str(app.conf.id), audit, enforce=enforce)
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
                await contain.apply_async(c.containment)
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
