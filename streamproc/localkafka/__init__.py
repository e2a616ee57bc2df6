"""A real Apache Kafka broker (KRaft) for development, tests and ``make demo``."""

from __future__ import annotations

from streamproc.localkafka.broker import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    KAFKA_VERSION,
    STANDARD_AUTHORIZER,
    BrokerSpec,
    LocalKafka,
    TlsListener,
    cache_dir,
    fetch_jars,
    libs_dir,
    new_cluster_id,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "KAFKA_VERSION",
    "STANDARD_AUTHORIZER",
    "BrokerSpec",
    "LocalKafka",
    "TlsListener",
    "cache_dir",
    "fetch_jars",
    "libs_dir",
    "new_cluster_id",
]
