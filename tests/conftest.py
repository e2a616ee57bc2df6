"""Shared fixtures: the real local Kafka broker and unique topics.

``kafka_bootstrap`` reuses a broker that already answers at ``STREAMPROC_BROKER`` (default
127.0.0.1:9092, e.g. after ``make kafka-up``) and otherwise starts the project's local broker
for the session and stops it afterwards. No fake stands in for Kafka.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from streamproc.config import DEFAULT_BROKER


def _answers(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=3)
    except Exception:
        return False
    return bool(md.brokers)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    bootstrap = os.environ.get("STREAMPROC_BROKER", DEFAULT_BROKER)
    if _answers(bootstrap):
        yield bootstrap
        return
    from streamproc.localkafka import LocalKafka

    broker = LocalKafka()
    broker.start()
    try:
        yield broker.spec.bootstrap
    finally:
        broker.stop()


TopicFactory = Callable[..., str]


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> Iterator[TopicFactory]:
    """Create fresh topics (unique names) for one test; deleted afterwards."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created: list[str] = []

    def make(prefix: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
        )
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        for fut in admin.delete_topics(created).values():
            with contextlib.suppress(Exception):
                fut.result(timeout=30)


@pytest.fixture
def unique_topic(make_topic: TopicFactory) -> str:
    """One fresh single-partition topic."""
    return make_topic()
