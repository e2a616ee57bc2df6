"""A passthrough Faust worker: bytes in, the same bytes out.

The baseline the sanitizer is measured against (``load/bench_pipeline.py``) and the smallest
real Faust worker the test suite runs; not part of the production worker::

    python -m streamproc.testing.relay --relay SRC:DST [--relay-naive] [--app-id ID]
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence
from typing import Any

import faust

from streamproc.config import load_settings
from streamproc.errors import ConfigError
from streamproc.runtime.app import create_app
from streamproc.runtime.batching import BatchOutput

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run a relay worker until it is stopped (the same start-up as ``streamproc worker``)."""
    p = argparse.ArgumentParser(prog="python -m streamproc.testing.relay")
    p.add_argument("--relay", action="append", default=[], metavar="SRC:DST", required=True)
    p.add_argument("--relay-naive", action="store_true", help="the textbook per-event agent")
    p.add_argument("--broker")
    p.add_argument("--app-id", default="streamproc-relay")
    p.add_argument("--loglevel", default="info")
    args = p.parse_args(argv)
    app = create_app(args.app_id, load_settings(broker=args.broker))
    for spec in args.relay:
        source, sep, sink = spec.partition(":")
        if not sep or not source or not sink:
            raise ConfigError("--relay wants SRC:DST")
        add_relay(app, source, sink, naive=args.relay_naive)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    gc.collect()
    gc.freeze()
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
