"""The Faust app's producer: idempotent with acks=all (the at-least-once guarantee rests on it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streamproc.config import Settings
from streamproc.runtime.app import create_app


def test_producer_is_idempotent_and_waits_for_all_replicas(tmp_path: Path) -> None:
    async def build() -> tuple[dict, object]:
        app = create_app("idem-test", Settings(data_dir=tmp_path))
        service = app.producer
        client = service._new_producer()  # the aiokafka producer the worker sends with
        try:
            return service._settings_extra(), client
        finally:
            await client.client.close()

    extra, client = asyncio.run(build())
    assert extra["enable_idempotence"] is True and extra["acks"] == "all"
    # aiokafka keeps a producer-id/sequence manager only when idempotence is on.
    assert client._txn_manager is not None  # type: ignore[attr-defined]
    assert client._sender._acks == -1  # type: ignore[attr-defined]


def test_the_worker_logs_under_faust_s_name(tmp_path: Path) -> None:
    from streamproc.runtime.app import StreamprocWorker

    app = create_app("label-test", Settings(data_dir=tmp_path))
    worker = StreamprocWorker(app, loglevel="warning", quiet=True)
    assert worker.shortlabel == "Worker"  # "[^Worker]: Ready" in the log
