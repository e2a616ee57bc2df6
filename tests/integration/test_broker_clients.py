"""The local broker is real: both Kafka client stacks used by streamproc talk to it."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Consumer, Producer

pytestmark = pytest.mark.integration


def test_confluent_kafka_roundtrip(kafka_bootstrap: str, unique_topic: str) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = [f"m-{i}".encode() for i in range(500)]
    for value in sent:
        producer.produce(unique_topic, value=value, key=value[-1:])
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"g-{unique_topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([unique_topic])
    got: list[bytes] = []
    try:
        for _ in range(200):
            for msg in consumer.consume(500, timeout=0.5):
                assert msg.error() is None
                got.append(msg.value())
            if len(got) >= len(sent):
                break
    finally:
        consumer.close()
    assert got == sent


def test_aiokafka_roundtrip(kafka_bootstrap: str, unique_topic: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(100):
                await producer.send(unique_topic, f"a-{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            unique_topic,
            bootstrap_servers=kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=f"g-{unique_topic}",
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            while len(got) < 100:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                for msgs in batch.values():
                    got.extend(m.value for m in msgs)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(run())
    assert got == [f"a-{i}".encode() for i in range(100)]
