"""Small confluent-kafka helpers for tests: produce a batch, drain a topic."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, Message, Producer, TopicPartition


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | None],
    *,
    keys: Iterable[bytes | None] | None = None,
) -> int:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    n = 0
    key_iter = iter(keys) if keys is not None else None
    for value in values:
        key = next(key_iter) if key_iter is not None else None
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
    assert producer.flush(60) == 0
    return n


def drain(
    bootstrap: str,
    topic: str | list[str],
    *,
    expect: int | None = None,
    timeout: float = 60.0,
    idle: float = 3.0,
    read_committed: bool = False,
    linger: float = 0.0,
) -> list[Message]:
    """Read ``topic`` (or topics) from the beginning until ``expect`` messages (or ``idle`` s
    of quiet); then ``linger`` s more, for duplicates that arrive after the count."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"drain-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    consumer.subscribe([topic] if isinstance(topic, str) else topic)
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, timeout=0.5)
            for msg in batch:
                if msg.error() is None:
                    got.append(msg)
            if batch:
                last = time.monotonic()
            if expect is not None and len(got) >= expect:
                break
            if expect is None and got and time.monotonic() - last > idle:
                break
        end = time.monotonic() + linger
        while time.monotonic() < end:
            got += [m for m in consumer.consume(1000, timeout=0.2) if m.error() is None]
    finally:
        consumer.close()
    return got


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets-probe"})
    try:
        md = consumer.list_topics(topic, timeout=10)
        result = {}
        for p in md.topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            result[p] = high
        return result
    finally:
        consumer.close()
