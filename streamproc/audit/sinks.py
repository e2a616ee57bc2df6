"""Where audit records go and where they are read back: a JSON-lines file or a Kafka topic.

A sink appends records and can return the tail from its last checkpoint, so a writer resumes
the chain after a restart. Readers yield ``(position, bytes)``: 1-based line numbers for a
file, offsets for a topic.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from streamproc.errors import AuditError

FsyncPolicy = Literal["always", "checkpoint", "never"]
CHECKPOINT_MARK = b'"type":"checkpoint"'


class AuditSink(Protocol):
    """Append-only destination of audit records."""

    name: str

    def write(self, record: bytes, *, checkpoint: bool) -> None:
        """Append one record; a checkpoint is made durable before this returns."""

    def tail(self) -> list[bytes]:
        """Records from the last checkpoint (inclusive) to the end; all if there is none."""

    def recent(self, limit: int) -> list[bytes]:
        """The last ``limit`` records (what an idempotent append checks against)."""

    def close(self) -> None: ...


def _last_checkpoint(records: list[bytes]) -> list[bytes]:
    for i in range(len(records) - 1, -1, -1):
        if CHECKPOINT_MARK in records[i]:
            return records[i:]
    return records


class FileSink:
    """JSON lines appended with ``O_APPEND``; ``fsync`` per record, per checkpoint, or never."""

    def __init__(self, path: Path, *, fsync: FsyncPolicy = "checkpoint", mode: int = 0o640):
        self.path = Path(path)
        self.name = str(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        except OSError as exc:
            raise AuditError(f"audit file {path}: cannot open ({exc.strerror})") from None

    def write(self, record: bytes, *, checkpoint: bool) -> None:
        data = record + b"\n"
        try:
            while data:
                data = data[os.write(self._fd, data) :]
            if self.fsync == "always" or (checkpoint and self.fsync == "checkpoint"):
                os.fsync(self._fd)
        except OSError as exc:
            raise AuditError(f"audit file {self.name}: write failed ({exc.strerror})") from None

    def tail(self) -> list[bytes]:
        return _last_checkpoint(list(tail_lines(self.path)))

    def recent(self, limit: int) -> list[bytes]:
        return last_lines(self.path, limit)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1


def tail_lines(path: Path, block: int = 1 << 16) -> Iterator[bytes]:
    """Lines of ``path`` from the last one holding a checkpoint, reading backwards."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        f.seek(end - 1)
        if f.read(1) != b"\n":
            raise AuditError(
                f"audit file {path} ends in a partial record; check it with "
                "`streamproc audit verify` and remove the partial last line"
            )
        buf = b""
        pos = end
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            cut = buf.rfind(CHECKPOINT_MARK)
            if cut >= 0:
                start = buf.rfind(b"\n", 0, cut) + 1
                if start > 0 or pos == 0:
                    buf = buf[start:]
                    break
        yield from buf.splitlines()


def last_lines(path: Path, limit: int, block: int = 1 << 16) -> list[bytes]:
    """The last ``limit`` complete lines of ``path``, reading backwards."""
    with open(path, "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        buf = b""
        while pos > 0 and buf.count(b"\n") <= limit:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
    lines = buf.splitlines()
    if pos > 0:
        lines = lines[1:]  # the first one may be cut
    return lines[-limit:] if limit > 0 else []


def read_file(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, record)`` for every line of an audit file."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - a generator owns the handle
    except OSError as exc:
        raise AuditError(f"audit file {path}: cannot open ({exc.strerror})") from None
    with f:
        for no, line in enumerate(f, start=1):
            yield no, line.rstrip(b"\n")


# --- Kafka ---------------------------------------------------------------------------------

AUDIT_TOPIC_CONFIG = {
    "cleanup.policy": "delete",
    "retention.ms": "-1",
    "retention.bytes": "-1",
}
"""An audit topic keeps everything: retention would cut the start of the chain."""


def trail_topic(app_id: str) -> str:
    """A worker's default audit topic (``STREAMPROC_AUDIT_TOPIC`` unset): one per app id,
    since a trail has one writer (its hash chain and sequence numbers are that writer's)."""
    return f"streamproc.audit.{app_id}"


def create_audit_topic(client_config: dict[str, Any], topic: str, *, replication: int = 1) -> bool:
    """Create the single-partition audit topic if absent; True if it was created."""

    admin = AdminClient(client_config)
    fut = admin.create_topics([NewTopic(topic, 1, replication, config=AUDIT_TOPIC_CONFIG)])[topic]
    try:
        fut.result(timeout=30)
    except KafkaException as exc:
        if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise AuditError(f"cannot create audit topic {topic}: {exc.args[0].str()}") from None
    return True


class KafkaSink:
    """Idempotent producer (acks=all) to partition 0 of a single-partition topic.

    Entries are sent asynchronously; a checkpoint waits until everything before it is
    acknowledged, and any delivery failure makes every later write fail.
    """

    def __init__(
        self, topic: str, client_config: dict[str, Any], *, flush_timeout: float = 30.0
    ) -> None:
        self.topic = topic
        self.name = f"topic {topic}"
        self._client_config = dict(client_config)
        self._flush_timeout = flush_timeout
        self._failed: str | None = None
        conf = {
            **client_config,
            "enable.idempotence": True,
            "acks": "all",
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 5,
        }
        self._producer = Producer(conf)
        _check_single_partition(client_config, topic)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None and self._failed is None:
            self._failed = err.str()

    def write(self, record: bytes, *, checkpoint: bool) -> None:
        if self._failed is not None:
            raise AuditError(f"audit {self.name}: an earlier delivery failed ({self._failed})")
        try:
            self._producer.produce(
                self.topic, value=record, partition=0, on_delivery=self._delivered
            )
        except BufferError:
            self._producer.flush(self._flush_timeout)
            self._producer.produce(
                self.topic, value=record, partition=0, on_delivery=self._delivered
            )
        self._producer.poll(0)
        if checkpoint:
            self.flush()

    def flush(self) -> None:
        left = self._producer.flush(self._flush_timeout)
        if left:
            self._failed = self._failed or f"{left} record(s) not acknowledged"
        if self._failed is not None:
            raise AuditError(f"audit {self.name}: delivery failed ({self._failed})")

    def tail(self) -> list[bytes]:
        window = 4096
        while True:
            records = list(read_topic(self.topic, self._client_config, last=window))
            values = [v for _, v in records]
            for i in range(len(values) - 1, -1, -1):
                if CHECKPOINT_MARK in values[i]:
                    return values[i:]
            if not records or len(records) < window:
                return values
            window *= 4

    def recent(self, limit: int) -> list[bytes]:
        return [v for _, v in read_topic(self.topic, self._client_config, last=limit)]

    def close(self) -> None:
        self.flush()


METADATA_WAIT_S = 10.0


def _check_single_partition(client_config: dict[str, Any], topic: str) -> None:
    admin = AdminClient(client_config)
    # A topic created a moment ago may not have a leader in the metadata yet: ask again for
    # a few seconds before calling it missing.
    deadline = time.monotonic() + METADATA_WAIT_S
    while True:
        t = admin.list_topics(topic, timeout=30).topics.get(topic)
        if (t is not None and t.error is None) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if t is None or t.error is not None:
        raise AuditError(f"audit topic {topic} does not exist; create it with one partition")
    if len(t.partitions) != 1:
        raise AuditError(
            f"audit topic {topic} has {len(t.partitions)} partitions; a trail needs exactly one"
        )


def read_topic(
    topic: str,
    client_config: dict[str, Any],
    *,
    last: int | None = None,
    timeout: float = 30.0,
) -> Iterator[tuple[int, bytes]]:
    """``(offset, value)`` of partition 0 from the start (or the ``last`` N) to the current end."""
    _check_single_partition(client_config, topic)
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"streamproc-audit-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
        if high <= low:
            return
        start = max(low, high - last) if last is not None else OFFSET_BEGINNING
        consumer.assign([TopicPartition(topic, 0, start)])
        deadline = time.monotonic() + timeout
        while True:
            # consume() waits for a full batch or its timeout: keep the wait short.
            msgs = consumer.consume(1000, timeout=0.2)
            if not msgs:
                if time.monotonic() > deadline:
                    raise AuditError(f"audit topic {topic}: no data within {timeout:.0f} s")
                continue
            deadline = time.monotonic() + timeout
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if (m.offset() or 0) >= high:
                            return
                        continue
                    raise AuditError(f"audit topic {topic}: read failed ({err.str()})")
                offset = m.offset()
                assert offset is not None
                yield offset, m.value() or b""
                if offset >= high - 1:
                    return
    finally:
        consumer.close()
