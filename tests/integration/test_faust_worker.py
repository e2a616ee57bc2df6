"""A real Faust worker process (not ``test_context``) moves records between real topics."""

from __future__ import annotations

import pytest

from tests.integration.kafka_io import drain, produce

pytestmark = pytest.mark.integration


def test_relay_worker_moves_every_record(kafka_bootstrap, make_topic, worker_factory) -> None:
    source, sink = make_topic("relay.in"), make_topic("relay.out")
    worker = worker_factory(
        "--relay",
        f"{source}:{sink}",
        "--app-id",
        f"app-{source}",
        command=("streamproc.testing.relay",),
    )
    values = [f"record-{i}".encode() for i in range(2000)]
    produce(kafka_bootstrap, source, values)
    got = drain(kafka_bootstrap, sink, expect=len(values), timeout=60)
    assert [m.value() for m in got] == values
    assert worker.stop() == 0
