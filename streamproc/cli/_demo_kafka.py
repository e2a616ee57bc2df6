"""Broker and worker plumbing of ``streamproc demo``: topics, worker processes, produce,
collect, metrics. Kept apart so that ``demo.py`` reads as the story it tells."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from fastavro import schemaless_reader

from streamproc.avro.framing import crc64_fingerprint

READY_MARK = "[^Worker]: Ready"


def free_port() -> int:
    """A loopback TCP port nobody listens on (for the worker's /metrics)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_topics(conf: dict[str, Any], topics: Iterable[str], partitions: int = 3) -> None:
    admin = AdminClient(conf)
    for fut in admin.create_topics([NewTopic(t, partitions, 1) for t in topics]).values():
        fut.result(30)


def producer(conf: dict[str, Any]) -> Producer:
    return Producer({**conf, "enable.idempotence": True, "linger.ms": 10})


def produce(p: Producer, topic: str, key: bytes, value: bytes) -> None:
    """Produce, waiting for room when the local queue is full."""
    while True:
        try:
            p.produce(topic, key=key, value=value)
            return
        except BufferError:
            p.poll(0.05)


def read_framed(schema: Any, framed: bytes | None) -> dict[str, Any]:
    """Decode a single-object framed record (the demo's own data)."""
    rec = schemaless_reader(io.BytesIO((framed or b"")[10:]), schema, None)
    assert isinstance(rec, dict)
    return rec


class Worker:
    """A ``streamproc worker`` process in its own session, output to a log file."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamproc.cli.main", "worker", *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_MARK in self.log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"worker exited during start-up; see {self.log_path}")
            time.sleep(0.2)
        raise SystemExit(f"worker not ready in {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def collect(conf: dict[str, Any], topic: str, expect: int, timeout: float) -> list[Any]:
    """Up to ``expect`` messages of ``topic`` from the beginning (read_committed)."""
    c = Consumer(
        {
            **conf,
            "group.id": f"demo-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.subscribe([topic])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expect and time.monotonic() < deadline:
            got.extend(m for m in c.consume(1000, 0.5) if m.error() is None)
    finally:
        c.close()
    return got


def raw_twin(
    conf: dict[str, Any], topic: str, coords: tuple[int, int], v2: Any, v1: Any
) -> dict[str, Any] | None:
    """The raw record at (partition, offset), decoded with whichever version wrote it."""
    c = Consumer({**conf, "group.id": f"demo-{uuid.uuid4()}", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, coords[0], coords[1])])
        for _ in range(20):
            msg = c.poll(1.0)
            if msg is not None and msg.error() is None:
                value = msg.value() or b""
                fp = int.from_bytes(value[2:10], "little")
                return read_framed(v2 if fp == crc64_fingerprint(v2) else v1, value)
    finally:
        c.close()
    return None


def scrape(port: int) -> str:
    """The worker's /metrics text ('' while it does not answer)."""
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return ""


def metric_total(port: int, name: str) -> float:
    """The sum of one metric family's samples over all its label sets."""
    total = 0.0
    for line in scrape(port).splitlines():
        if line.startswith((name + "{", name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total
