"""Reading a whole topic, or its tail, as the CLI commands do (dlq, risk, demo).

One reader: a throw-away consumer group, manual assignment from each partition's low
watermark (or ``end - last``), read_committed, and an end fixed at call time, so a topic that
keeps growing still finishes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streamproc.errors import KafkaError

IDLE_S = 30.0


def read_topic(
    conf: Mapping[str, Any], topic: str, *, last: int | None = None, purpose: str = "cli"
) -> Iterator[Any]:
    """Messages of ``topic`` up to its end at call time: all of them, or the ``last`` N of
    each partition. Gives up on partitions that stay silent for 30 s."""
    consumer = Consumer(
        {
            **conf,
            "group.id": f"streamproc-{purpose}-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=15)
        if topic not in md.topics or md.topics[topic].error is not None:
            raise KafkaError(f"topic {topic!r} not found")
        ends: dict[int, int] = {}
        assign = []
        for p in md.topics[topic].partitions:
            lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            if hi > lo:
                ends[p] = hi
                start = lo if last is None else max(lo, hi - last)
                assign.append(TopicPartition(topic, p, start))
        if not assign:
            return
        consumer.assign(assign)
        idle_deadline = time.monotonic() + IDLE_S
        while ends and time.monotonic() < idle_deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is not None:
                    continue
                idle_deadline = time.monotonic() + IDLE_S
                p = msg.partition()
                if p not in ends:
                    continue
                yield msg
                # Transaction markers take offsets too: the end is reached at or past it.
                if (msg.offset() or 0) + 1 >= ends[p]:
                    del ends[p]
    finally:
        consumer.close()
