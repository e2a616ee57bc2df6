"""A passthrough agent: bytes in, the same bytes out. The baseline the sanitizer is
measured against, and the smallest real Faust worker the test suite runs."""

from __future__ import annotations

from typing import Any

import faust


def add_relay(app: faust.App, source: str, sink: str, *, partitions: int | None = None) -> Any:
    """Wire ``source`` -> ``sink`` with raw (undecoded) keys and values."""
    src = app.topic(source, key_serializer="raw", value_serializer="raw", partitions=partitions)
    dst = app.topic(sink, key_serializer="raw", value_serializer="raw", partitions=partitions)

    async def relay(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            await dst.send(key=msg.key, value=msg.value, headers=msg.headers)

    return app.agent(src, name=f"relay-{source}")(relay)
