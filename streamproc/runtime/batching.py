"""Produce a batch of outcomes with aiokafka's batch API.

Faust's ``Topic.send`` costs tens of microseconds per record (futures, sensors, an
``await`` per message); a ``take_events`` batch appended to one aiokafka ``BatchBuilder`` per
partition costs a few. Records go to the *same partition number* as their source record
(modulo the sink's partition count), so per-key order and co-partitioning survive.

The builders are handed to Faust's own (idempotent) producer, so Faust's
``producer.flush()`` before every offset commit covers them: a committed source offset
always has its outputs acknowledged by the broker.
"""

from __future__ import annotations

import logging
import os
from typing import Any, NoReturn

import faust

from streamproc.pipeline.outcome import Headers
from streamproc.runtime.effects import DeadLetterReporter

log = logging.getLogger("streamproc.runtime")

__all__ = ["BatchOutput", "DeadLetterReporter", "add_lag_gauge", "stop_on_failure"]


class BatchOutput:
    """Output topics of one agent, declared on first use with the source's partition count."""

    def __init__(
        self, app: faust.App, source: str, sinks: list[str], partitions: int | None = None
    ) -> None:
        self.app = app
        self.source = source
        self.sinks = sinks
        self.partitions = partitions
        self._counts: dict[str, int] = {}
        self._builders: dict[tuple[str, int], Any] = {}
        self._producer: Any = None

    async def _prepare(self) -> None:
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        n = self.partitions
        if n is None:
            await producer.client._wait_on_metadata(self.source)
            n = len(producer.client.cluster.partitions_for_topic(self.source) or {0})
        for name in self.sinks:
            topic = self.app.topic(name, partitions=n)
            await topic.maybe_declare()
            await producer.client._wait_on_metadata(name)
            self._counts[name] = len(producer.client.cluster.partitions_for_topic(name) or {0})
        self._producer = producer

    async def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp_ms: int | None = None,
    ) -> None:
        if self._producer is None:
            await self._prepare()
        partition %= self._counts[topic]
        tp = (topic, partition)
        builder = self._builders.get(tp)
        if builder is None:
            builder = self._builders[tp] = self._producer.create_batch()
        if builder.append(key=key, value=value, timestamp=timestamp_ms, headers=headers) is None:
            # Batch full: ship it and start another one for this partition.
            builder.close()
            await self._producer.send_batch(builder, topic, partition=partition)
            builder = self._builders[tp] = self._producer.create_batch()
            if (
                builder.append(key=key, value=value, timestamp=timestamp_ms, headers=headers)
                is None
            ):
                raise ValueError(f"a record for {topic}/{partition} exceeds the batch size")

    async def flush(self) -> None:
        """Hand every open batch to the producer (delivery completes asynchronously)."""
        builders, self._builders = self._builders, {}
        for (topic, partition), builder in builders.items():
            if builder.record_count():
                # Closed: complete, so the sender ships it without waiting out linger.ms.
                builder.close()
                await self._producer.send_batch(builder, topic, partition=partition)


def stop_on_failure(log: logging.Logger, agent: str, exc: BaseException) -> NoReturn:
    """End the worker process when an agent's batch fails.

    faust-streaming acknowledges a ``take_events`` batch even when the consumer raises, and
    would commit it: exiting before that happens makes the uncommitted records be delivered
    again after the restart (at-least-once), instead of being silently skipped.
    """
    log.critical(
        "%s agent failed (%s); exiting so that no record is skipped", agent, type(exc).__name__
    )
    logging.shutdown()
    os._exit(70)


def add_lag_gauge(
    app: faust.App, gauge: Any, name: str, topic: str, last_offset: dict[int, int]
) -> None:
    """Every 5 s: records behind the end of each assigned partition of ``topic``."""

    @app.timer(5.0)
    async def report_lag() -> None:
        consumer = app.consumer
        for tp in consumer.assignment():
            if tp.topic != topic:
                continue
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = last_offset.get(tp.partition, -1) + 1
            gauge.labels(name, str(tp.partition)).set(max(0, high - done))
