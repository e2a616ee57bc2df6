"""The sanitizing agent: raw topic -> SanitizeFlow -> sanitized topic or dead-letter topic.

Wiring only. At-least-once: Faust flushes the (idempotent) producer before it commits source
offsets, so a committed offset always has its outcome on the broker; re-sent records after a
crash carry the same ``streamproc.source.*`` headers (docs/pipeline.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from streamproc.metrics import WorkerMetrics, compliance_inputs
from streamproc.pipeline import Sanitized, SanitizeFlow
from streamproc.runtime.batching import (
    BatchOutput,
    DeadLetterReporter,
    add_lag_gauge,
    stop_on_failure,
)
from streamproc.runtime.offload import FlowProcess, Item

log = logging.getLogger("streamproc.runtime.sanitizer")

BATCH = 1000
WITHIN = 0.005


class _Counters:
    """The agent's metric children for one topology, resolved once (labels are names)."""

    def __init__(self, metrics: WorkerMetrics, flow: SanitizeFlow) -> None:
        name = flow.topology.name
        self.records_in = metrics.records_in.labels(name)
        self.records_out = metrics.records_out.labels(name)
        self.latency = metrics.processing.labels(name)
        self.per_record = dict(flow.actions_per_record)
        self.transforms = {a: metrics.transforms.labels(name, a) for a in self.per_record}
        for key, version in flow.plan.key_versions.items():
            metrics.key_version.labels(name, key).set(version)
        self.health = metrics.health
        self.metrics, self.flow = metrics, flow
        self.name = name
        self.health.watch(name, compliance_inputs(flow))

    def batch_done(self, n_in: int, n_out: int, timestamps: list[float]) -> None:
        now = time.time()
        for ts in timestamps:
            self.latency.observe(max(0.0, now - ts))
        self.records_in.inc(n_in)
        self.records_out.inc(n_out)
        self.health.sanitized(self.name, n_in, n_in - n_out, max(timestamps, default=None))
        self.metrics.flow_state(self.name, self.flow.combined_state())
        for action, n in self.per_record.items():
            self.transforms[action].inc(n * n_out)


def _items(events: Any) -> list[Item]:
    """(value, key, topic, partition, offset, timestamp ms) of each event of a batch."""
    items = []
    for event in events:
        msg = event.message
        ts = msg.timestamp
        ts_ms = int(ts * 1000) if ts else None
        items.append((msg.value, msg.key, msg.topic, msg.partition, msg.offset, ts_ms))
    return items


def add_sanitizer(
    app: faust.App,
    flow: SanitizeFlow,
    metrics: WorkerMetrics,
    *,
    partitions: int | None = None,
    audit: Any | None = None,
    offload: FlowProcess | None = None,
) -> Any:
    """Add the agent for one sanitize topology to ``app``."""
    topo = flow.topology
    source = app.topic(
        topo.source.topic, key_serializer="raw", value_serializer="raw", partitions=partitions
    )
    out = BatchOutput(app, topo.source.topic, [topo.sink.topic, topo.dead_letter], partitions)
    sink_topic, dlq_topic = topo.sink.topic, topo.dead_letter
    counters = _Counters(metrics, flow)
    dead = DeadLetterReporter(topo.name, dlq_topic, metrics, audit)
    last_offset: dict[int, int] = {}
    process = flow.process

    async def sanitize(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=WITHIN):
            try:
                await handle(events)
            except Exception as exc:
                stop_on_failure(log, "sanitize", exc)

    async def handle(events: Any) -> None:
        items = _items(events)
        if offload is not None:
            results = await offload.run(items)
        else:
            results = [
                process(v, key=k, topic=t, partition=p, offset=o, timestamp_ms=ts_ms)
                for v, k, t, p, o, ts_ms in items
            ]
        n_out = 0
        stamps = []
        for event, item, result in zip(events, items, results, strict=True):
            msg = event.message
            if isinstance(result, Sanitized):
                await out.add(
                    sink_topic, msg.partition, result.key, result.value, result.headers, item[5]
                )
                n_out += 1
            else:
                await out.add(dlq_topic, msg.partition, None, result.value, result.headers)
                dead.report(result.reason, msg.topic, msg.partition, msg.offset)
            if msg.timestamp:
                stamps.append(msg.timestamp)
            last_offset[msg.partition] = msg.offset
        await out.flush()
        counters.batch_done(len(events), n_out, stamps)

    agent = app.agent(source, name=f"sanitize-{topo.name}")(sanitize)
    add_lag_gauge(app, metrics.consumer_lag, topo.name, topo.source.topic, last_offset)
    return agent
