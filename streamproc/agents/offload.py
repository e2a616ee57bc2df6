"""Run a flow's CPU-bound work in a helper process, off the Faust event loop.

Faust's consumer machinery costs tens of microseconds per record on the event loop's core;
decode + sanitize + encode cost about as much again. With the flow in a helper process the
two overlap on two cores: while the helper sanitizes batch N, the event loop fetches batch
N+1 and produces batch N-1's outcomes. One batch is in flight per agent, so order is kept.

The helper compiles its own plan from the same topology file and keyring path (a keyring is
never pickled); it is started with ``spawn`` (librdkafka threads make ``fork`` unsafe).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from streamproc.flow import Outcome

Item = tuple[bytes | None, bytes | None, str, int, int, int | None]

_FLOW: Any = None


def _init(topology_path: str, settings_json: str) -> None:
    global _FLOW
    from streamproc.agents.wiring import build_flow
    from streamproc.config import Settings
    from streamproc.keys import Keyring
    from streamproc.topology import load_topology

    settings = Settings.model_validate_json(settings_json)
    assert settings.keyring is not None
    _FLOW = build_flow(load_topology(topology_path), settings, Keyring.load(settings.keyring))


def _process_batch(items: list[Item]) -> list[Outcome]:
    process = _FLOW.process
    return [
        process(value, key=key, topic=topic, partition=partition, offset=offset, timestamp_ms=ts)
        for value, key, topic, partition, offset, ts in items
    ]


class FlowProcess:
    """A one-process pool that runs one topology's SanitizeFlow."""

    def __init__(self, topology_path: Path, settings: Any) -> None:
        # Secrets travel as the keyring *path* inside the settings, never as key material.
        settings_json = settings.model_dump_json(
            include={
                "broker",
                "keyring",
                "schema_registry_url",
                "security_protocol",
                "sasl_mechanism",
                "sasl_username",
                "ssl_cafile",
                "ssl_certfile",
                "ssl_keyfile",
                "ssl_check_hostname",
                "allow_insecure",
            }
        )
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init,
            initargs=(str(topology_path), settings_json),
        )
        # Compile now: a bad topology fails the worker at start, not at the first batch.
        self._pool.submit(_process_batch, []).result(timeout=120)

    async def run(self, items: list[Item]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _process_batch, items)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
