"""The sanitizing agent: raw topic -> SanitizeFlow -> sanitized topic or dead-letter topic.

Wiring only. Delivery: at-least-once. Faust acknowledges an event once the agent moved past
it and, before committing offsets, flushes the producer (``Consumer._commit_offsets``), so a
committed source offset always has its outcome durably in the sink or the DLQ. The
idempotent producer removes broker-side retry duplicates; a crash between a send and the
next commit re-processes at most the uncommitted tail, and those re-sent records carry the
same ``streamproc.source.*`` headers (the dedup key).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from streamproc.agents.batching import BatchOutput, add_lag_gauge, stop_on_failure
from streamproc.agents.offload import FlowProcess
from streamproc.audit import AuditKind
from streamproc.flow import Sanitized, SanitizeFlow
from streamproc.metrics import WorkerMetrics, compliance_inputs

log = logging.getLogger("streamproc.agents.sanitizer")

BATCH = 1000
WITHIN = 0.005


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

    name = topo.name
    m_in = metrics.records_in.labels(name)
    m_out = metrics.records_out.labels(name)
    m_latency = metrics.processing.labels(name)
    dead: dict[str, Any] = {}
    transforms = {a: metrics.transforms.labels(name, a) for a in flow.actions_per_record}
    per_record = dict(flow.actions_per_record)
    for key, version in flow.plan.key_versions.items():
        metrics.key_version.labels(name, key).set(version)
    metrics.health.watch(name, compliance_inputs(flow))
    last_offset: dict[int, int] = {}
    process = flow.process

    async def sanitize(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=WITHIN):
            try:
                await handle(events)
            except Exception as exc:
                stop_on_failure(log, "sanitize", exc)

    async def handle(events: Any) -> None:
        n_out = 0
        latencies = []
        items = []
        for event in events:
            msg = event.message
            ts = msg.timestamp
            items.append(
                (
                    msg.value,
                    msg.key,
                    msg.topic,
                    msg.partition,
                    msg.offset,
                    int(ts * 1000) if ts else None,
                )
            )
        if offload is not None:
            results = await offload.run(items)
        else:
            results = [
                process(v, key=k, topic=t, partition=p, offset=o, timestamp_ms=ts_ms)
                for v, k, t, p, o, ts_ms in items
            ]
        for event, item, result in zip(events, items, results, strict=True):
            msg = event.message
            ts = msg.timestamp
            ts_ms = item[5]
            if isinstance(result, Sanitized):
                await out.add(
                    sink_topic, msg.partition, result.key, result.value, result.headers, ts_ms
                )
                n_out += 1
            else:
                await out.add(dlq_topic, msg.partition, None, result.value, result.headers)
                counter = dead.get(result.reason)
                if counter is None:
                    counter = dead[result.reason] = metrics.dead_letters.labels(name, result.reason)
                counter.inc()
                if audit is not None:
                    audit.append(
                        AuditKind.DEAD_LETTER,
                        reason=result.reason,
                        topic=msg.topic,
                        partition=msg.partition,
                        offset=msg.offset,
                        dlq_topic=dlq_topic,
                        worker=name,
                    )
                # The reason and coordinates only; never the payload.
                log.warning(
                    "dead letter: topology=%s reason=%s source=%s/%d/%d",
                    name,
                    result.reason,
                    msg.topic,
                    msg.partition,
                    msg.offset,
                )
            if ts:
                latencies.append(ts)
            last_offset[msg.partition] = msg.offset
        await out.flush()
        now = time.time()
        for ts in latencies:
            m_latency.observe(max(0.0, now - ts))
        m_in.inc(len(events))
        m_out.inc(n_out)
        metrics.health.sanitized(
            name, len(events), len(events) - n_out, max(latencies, default=None)
        )
        for action, n in per_record.items():
            transforms[action].inc(n * n_out)

    agent = app.agent(source, name=f"sanitize-{name}")(sanitize)

    add_lag_gauge(app, metrics.consumer_lag, name, topo.source.topic, last_offset)

    return agent
