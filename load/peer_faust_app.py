"""The textbook Faust agent for ``bench_peer.py``: ``async for event`` over the source,
``SanitizeFlow.process`` per record, ``await topic.send`` per outcome (what the Faust docs
teach; streamproc's own hot path replaces exactly this per-record machinery).

Usage (the benchmark runs it): python -m load.peer_faust_app TOPOLOGY.yaml KEYRING.json GROUP
"""

from __future__ import annotations

import sys
from typing import Any

import faust

from streamproc.config import load_settings
from streamproc.config.topology import load_topology
from streamproc.keys import Keyring
from streamproc.pipeline import Sanitized
from streamproc.runtime.wiring import build_flow


def main() -> int:
    topology_path, keyring_path, group = sys.argv[1:4]
    settings = load_settings(keyring=keyring_path)
    topo = load_topology(topology_path)
    flow = build_flow(topo, settings, Keyring.load(settings.keyring))
    (settings.data_dir / group).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        group,
        broker=f"kafka://{settings.broker}",
        store="memory://",
        web_enabled=False,
        datadir=str(settings.data_dir / group),
        topic_allow_declare=True,
    )
    n = topo.source.partitions
    source = app.topic(topo.source.topic, key_serializer="raw", value_serializer="raw")
    sink = app.topic(topo.sink.topic, key_serializer="raw", value_serializer="raw", partitions=n)
    dlq = app.topic(topo.dead_letter, key_serializer="raw", value_serializer="raw", partitions=n)

    @app.agent(source)
    async def sanitize(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            ts = int(m.timestamp * 1000) if m.timestamp else None
            out = flow.process(
                m.value,
                key=m.key,
                topic=m.topic,
                partition=m.partition,
                offset=m.offset,
                timestamp_ms=ts,
            )
            target = sink if isinstance(out, Sanitized) else dlq
            await target.send(
                key=out.key,
                value=out.value,
                headers=out.headers,
                partition=m.partition,
                timestamp=m.timestamp,  # the source's: latency is measured from it
            )

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
