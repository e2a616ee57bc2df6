"""A passthrough agent: bytes in, the same bytes out. The baseline the sanitizer is
measured against, and the smallest real Faust worker the test suite runs."""

from __future__ import annotations

from typing import Any

import faust

from streamproc.agents.batching import BatchOutput

BATCH = 1000
WITHIN = 0.005


def add_relay(
    app: faust.App, source: str, sink: str, *, partitions: int | None = None, naive: bool = False
) -> Any:
    """Wire ``source`` -> ``sink`` with raw keys, values and headers.

    ``naive`` is the textbook agent (``async for event`` + ``await topic.send``), kept as the
    "before" figure of the throughput benchmark.
    """
    src = app.topic(source, key_serializer="raw", value_serializer="raw", partitions=partitions)

    if naive:
        dst = app.topic(sink, key_serializer="raw", value_serializer="raw", partitions=partitions)

        async def relay_naive(stream: Any) -> None:
            async for event in stream.events():
                msg = event.message
                await dst.send(
                    key=msg.key, value=msg.value, headers=msg.headers, timestamp=msg.timestamp
                )

        return app.agent(src, name=f"relay-{source}")(relay_naive)

    out = BatchOutput(app, source, [sink], partitions)

    async def relay(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=WITHIN):
            for event in events:
                msg = event.message
                ts = int(msg.timestamp * 1000) if msg.timestamp else None
                await out.add(sink, msg.partition, msg.key, msg.value, list(msg.headers or ()), ts)
            await out.flush()

    return app.agent(src, name=f"relay-{source}")(relay)
