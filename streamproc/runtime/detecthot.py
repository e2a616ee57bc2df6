"""The detect hot path: one confluent-kafka consumer and producer in one thread per topology.

Faust's per-event stream path (``take_events``) held the detector agent to ~5k events/s;
this loop hands whole fetches to :class:`~streamproc.pipeline.detect.DetectFlow`::

    consume(num_messages=BATCH) -> DetectFlow.process
      -> produce dead letters (DLQ) and containment messages (sink), source partition kept
      -> containments: flush (acknowledged), then metric, log line, audit entry or DENY ACLs
      -> every commit interval: produce the touched principals' states -> flush -> commit

The order is the Faust agent's: a containment is acknowledged before any state that saw its
event is written, and a state before the offsets that pass its event are committed. State is
effectively-once (a re-delivered event is skipped by the state's last source offset);
containment messages are at-least-once with a deterministic ``containment_id``.

State stays where the Faust table kept it, so a deployment switching engines keeps it: topic
``<app id>-<topology>-principals-changelog`` (compacted, one partition per source partition),
key = the principal as Faust's JSON key serializer writes it (``b'"alice"'``), value = the
state bytes. On assignment the assigned partitions are read from the beginning; on revoke
the done work commits and those principals are dropped. The consumer group is the app id,
the agent's, so committed offsets carry over too (one engine per app at a time: the two speak
different group protocols).

A failed delivery or state read ends the worker (exit 70): the restart resumes from the
changelog and the committed offsets, never past a lost state or containment.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streamproc.audit import AuditLog
from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.detector import RecommendedAction
from streamproc.errors import ConfigError, StreamprocError
from streamproc.metrics import WorkerMetrics
from streamproc.pipeline.detect import DetectFlow, StateCache
from streamproc.pipeline.outcome import Headers
from streamproc.runtime.effects import (
    Containments,
    DeadLetterReporter,
    announce_model,
    make_enforcer,
    source_partitions,
)
from streamproc.runtime.hotpath import ensure_outputs, run_in_thread
from streamproc.runtime.statetopic import read_state

log = logging.getLogger("streamproc.runtime.detecthot")

Message = Any  # confluent-kafka's stubs type every accessor Optional (see hotpath.Message)


class DetectHotPathError(StreamprocError):
    """The detect hot path cannot go on without losing state (the worker exits)."""


def state_topic_name(app_id: str, name: str) -> str:
    """The topology's state topic, the Faust table's changelog:
    ``<app id>-<name>-principals-changelog``."""
    return f"{app_id}-{name}-principals-changelog"


def state_key(principal: str) -> bytes:
    """The changelog key of ``principal``, byte for byte what Faust's ``json`` key serializer
    writes (``json.dumps`` with compact separators, ASCII), so both engines compact alike."""
    return json.dumps(principal, separators=(",", ":")).encode()


def principal_of(key: bytes | None) -> str | None:
    """The principal of a changelog key (None: not one of ours)."""
    try:
        p = json.loads(key) if key else None
    except ValueError:
        return None
    return p if isinstance(p, str) else None


@dataclass(slots=True)
class Received:
    """A consumed message as the flow reads it (a ``SourceMessage``)."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: float | None  # seconds, like Faust's


def received(msgs: Sequence[Message]) -> list[Received]:
    """The records of a fetch (errors logged by name and dropped, partition EOF silently)."""
    out = []
    for m in msgs:
        err = m.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer: %s", err.name())
            continue
        ts = m.timestamp()[1]
        out.append(
            Received(
                m.key(),
                m.value(),
                m.topic(),
                m.partition(),
                m.offset(),
                ts / 1000 if ts > 0 else None,
            )
        )
    return out


@dataclass(frozen=True)
class DetectSpec:
    """How one detect hot path consumes, commits and paces itself."""

    group: str
    state_topic: str
    sink_partitions: int = 1
    dlq_partitions: int = 1
    batch: int = 1024
    poll_s: float = 0.01
    # States are serialized and written once per interval (not per batch); containments are
    # flushed per batch regardless, so the interval does not delay them.
    commit_interval_s: float = 0.5
    max_queued: int = 100_000
    session_timeout_ms: int = 10_000
    flush_timeout_s: float = 30.0


@dataclass
class _Metrics:
    events: Any
    anomalies: Any
    latency: Any
    lag: Any
    name: str
    last_offset: dict[int, int] = field(default_factory=dict)


class DetectHotPath:
    """The consume -> detect -> produce -> commit loop of one detect topology."""

    def __init__(
        self,
        spec: DetectSpec,
        flow: DetectFlow,
        kafka_conf: dict[str, Any],
        metrics: WorkerMetrics,
        contain: Containments,
        dead: DeadLetterReporter,
    ) -> None:
        self.spec, self.flow, self.conf = spec, flow, kafka_conf
        self.contain, self.dead = contain, dead
        topo = flow.topology
        self.source, self.sink, self.dlq = topo.source.topic, topo.sink.topic, topo.dead_letter
        name = topo.name
        self.m = _Metrics(
            metrics.access_events.labels(name),
            metrics.anomalies.labels(name),
            metrics.processing.labels(name),
            metrics.consumer_lag,
            name,
        )
        # Every action's counter exists from start (at 0): the first containment is an increase.
        for action in RecommendedAction:
            metrics.containments.labels(name, action.value)
        self.store: dict[str, Any] = {}  # principal -> state bytes (the changelog's last)
        self.cache = StateCache(self.store, defer=True)
        self.owner: dict[str, int] = {}  # principal -> state (= source) partition
        self._offsets: dict[int, int] = {}  # source partition -> next offset, not committed
        self._interval_start = 0.0
        self._delivery_failed = False
        self._failed = False
        self._stop = threading.Event()
        self._lag_at = 0.0
        self.commits = 0
        self.consumer: Any = None
        self.producer: Any = None

    # -- clients ---------------------------------------------------------------------------

    def _new_consumer(self) -> Any:
        return Consumer(
            {
                **self.conf,
                "group.id": self.spec.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "session.timeout.ms": self.spec.session_timeout_ms,
                "heartbeat.interval.ms": max(1000, self.spec.session_timeout_ms // 3),
                "fetch.wait.max.ms": 20,
                "queued.max.messages.kbytes": 64 * 1024,
            }
        )

    def _new_producer(self) -> Any:
        return Producer(
            {
                **self.conf,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "queue.buffering.max.messages": self.spec.max_queued * 2,
                "delivery.report.only.error": True,
                "on_delivery": self._on_delivery_error,
            }
        )

    def _on_delivery_error(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._delivery_failed = True
            log.error("delivery failed to %s/%s: %s", msg.topic(), msg.partition(), err.name())

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """The thread body: until :meth:`stop`, then commit what is done and leave the group."""
        self.consumer = self._new_consumer()
        self.consumer.subscribe(
            [self.source], on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )  # fmt: skip
        self.producer = self._new_producer()
        log.info(
            "detect hot path running: topology=%s group=%s state=%s",
            self.m.name,
            self.spec.group,
            self.spec.state_topic,
        )
        try:
            while not self._stop.is_set():
                self._step()
            self._commit()
        except BaseException:
            self._failed = True  # closing the consumer below commits nothing more
            raise
        finally:
            try:
                self.consumer.close()  # serves on_revoke a last time (nothing left to commit)
                self.producer.flush(10)
            except Exception as exc:  # keep the original failure the one that is reported
                log.warning("closing the clients: %s", type(exc).__name__)
        log.info("detect hot path stopped: %d commits", self.commits)

    def _step(self) -> None:
        msgs = self.consumer.consume(self.spec.batch, self.spec.poll_s)
        if msgs:
            self._handle(received(msgs))
        self.producer.poll(0)
        if self._offsets and time.monotonic() - self._interval_start >= self.spec.commit_interval_s:
            self._commit()
        if len(self.producer) > self.spec.max_queued:
            self._back_pressure()
        if time.monotonic() - self._lag_at > 5.0:
            self._report_lag()

    # -- the data path ---------------------------------------------------------------------

    def _handle(self, batch: list[Received]) -> None:
        """One fetch: the flow, then its outputs in the documented order."""
        if not batch:
            return
        if not self._offsets:
            self._interval_start = time.monotonic()
        res = self.flow.process(batch, self.cache)
        n_sink, n_dlq = self.spec.sink_partitions, self.spec.dlq_partitions
        for partition, letter, msg in res.dead:
            self._produce(self.dlq, partition % n_dlq, None, letter.value, letter.headers)
            self.dead.report(letter.reason, msg.topic, msg.partition, msg.offset)
        for c in res.contained:
            self._produce(self.sink, c.partition % n_sink, c.key, c.value, c.headers)
        if res.contained:
            # Acknowledged before the state that saw the triggering event is written.
            self._flush("containment messages")
            for c in res.contained:
                self.contain.apply(c.containment)
        for p, o in res.last_offsets.items():
            self._offsets[p] = o + 1
            self.m.last_offset[p] = o
        now = time.time()
        observe = self.m.latency.observe
        for ts in res.timestamps:
            observe(max(0.0, now - ts))
        self.m.events.inc(res.scored)
        if res.flagged:
            self.m.anomalies.inc(res.flagged)

    def _produce(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        try:
            self.producer.produce(topic, value, key, partition, headers=headers)
        except BufferError:
            self._wait_for_queue()
            self.producer.produce(topic, value, key, partition, headers=headers)
        except KafkaException as exc:
            raise DetectHotPathError(f"produce to {topic} refused: {exc.args[0].name()}") from None

    def _flush(self, what: str) -> None:
        """Wait until everything sent is acknowledged; a loss ends the worker."""
        if self.producer.flush(self.spec.flush_timeout_s) > 0 or self._delivery_failed:
            raise DetectHotPathError(f"{what} not delivered; exiting to resume from the changelog")

    def _commit(self) -> None:
        """The interval's states, acknowledged, then its source offsets."""
        states = self.cache.take_dirty()
        for principal, partition, raw in states:
            self._produce(self.spec.state_topic, partition, state_key(principal), raw, [])
            self.owner[principal] = partition
        if not self._offsets:
            if states:
                self._flush("principal states")
            return
        self._flush("principal states")
        offsets = [TopicPartition(self.source, p, o) for p, o in self._offsets.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The states are durable: the events delivered again are skipped by them.
            log.warning("offset commit failed: %s", exc.args[0].name())
        self.commits += 1
        self._offsets.clear()

    def _wait_for_queue(self) -> None:
        while len(self.producer) > self.spec.max_queued // 2:
            self.producer.poll(0.05)

    def _back_pressure(self) -> None:
        """Pause fetching while the producer drains; keep polling for group membership."""
        self.consumer.pause(self.consumer.assignment())
        try:
            while len(self.producer) > self.spec.max_queued // 2 and not self._stop.is_set():
                self.producer.poll(0.05)
                msgs = self.consumer.consume(self.spec.batch, 0)
                if msgs:  # fetched before the pause took effect
                    self._handle(received(msgs))
        finally:
            self.consumer.resume(self.consumer.assignment())

    # -- rebalances ------------------------------------------------------------------------

    def load(self, partitions: list[int]) -> int:
        """Read the state of the source ``partitions`` from the state topic; how many
        principals it holds."""
        got = read_state(
            self.conf, self.spec.group, self.spec.state_topic, partitions, b"",
            lambda marks: True, f"detect hot path {self.m.name}",
        )  # fmt: skip
        fresh = [p for p, sp in self.owner.items() if sp in got]
        self.cache.forget(fresh)
        skipped = 0
        for sp, records in got.items():
            for key, value in records:
                principal = principal_of(key)
                if principal is None:
                    skipped += 1
                elif value is None:
                    self.store.pop(principal, None)
                    self.owner.pop(principal, None)
                else:
                    self.store[principal] = value
                    self.owner[principal] = sp
        if skipped:
            log.warning(
                "%s: %d records without a principal key skipped", self.spec.state_topic, skipped
            )
        return sum(1 for sp in self.owner.values() if sp in got)

    def drop(self, partitions: list[int]) -> None:
        """Forget the principals of ``partitions`` (another worker owns them now)."""
        gone = set(partitions)
        principals = {p for p, sp in self.owner.items() if sp in gone}
        principals.update(p for p, sp in self.cache.pending().items() if sp in gone)
        self.cache.forget(principals)
        for p in principals:
            self.owner.pop(p, None)
        for sp in gone:
            self._offsets.pop(sp, None)
            self.m.last_offset.pop(sp, None)

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        mine = [tp.partition for tp in partitions if tp.topic == self.source]
        t0 = time.monotonic()
        n = self.load(mine)
        log.info(
            "assigned %s/%s: %d principal states read in %.1f s",
            self.source,
            ",".join(map(str, mine)) or "-",
            n,
            time.monotonic() - t0,
        )

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Commit while the partitions are still ours, then forget their principals."""
        log.info("revoked %s/%s", self.source, ",".join(str(tp.partition) for tp in partitions))
        if not self._failed:
            self._commit()
        self.drop([tp.partition for tp in partitions])

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """The group moved on without us: its next owner redoes the uncommitted tail."""
        log.warning("partitions lost: %s", ",".join(str(tp.partition) for tp in partitions))
        self.drop([tp.partition for tp in partitions])

    def _report_lag(self) -> None:
        self._lag_at = time.monotonic()
        parts = self.consumer.assignment()
        if not parts:
            return
        for tp in self.consumer.position(parts):
            if tp.offset < 0:
                continue
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                self.m.lag.labels(self.m.name, str(tp.partition)).set(max(0, high - tp.offset))


@dataclass
class StartedDetect:
    """A running detect hot path and its thread."""

    hot: DetectHotPath
    thread: threading.Thread

    def stop(self, timeout: float = 60.0) -> None:
        """Stop and wait (commit what is done, leave the group)."""
        self.hot.stop()
        self.thread.join(timeout)


def start_detect(
    app_id: str,
    settings: Settings,
    topology: Topology,
    metrics: WorkerMetrics,
    audit: AuditLog | None = None,
    *,
    enforce: bool | None = None,
) -> StartedDetect:
    """The detect hot path of one ``kind: detect`` topology, its thread started now.

    Fails at start (:class:`ConfigError`) without a model file or a keyring, or when the
    state topic's partitions do not match the source's.
    """
    # Imported here: the detector loads scikit-learn and scipy (seconds).
    from streamproc.pipeline.build import build_detect_flow

    flow = build_detect_flow(topology, settings)
    if enforce is None:
        enforce = settings.enforce
    enforcer = make_enforcer(topology, settings, audit) if enforce else None
    n = source_partitions(topology, settings)
    state = state_topic_name(app_id, topology.name)
    counts = ensure_outputs(settings.kafka_config(), [flow], {topology.name: [state]})
    if counts[state] != n:
        raise ConfigError(
            f"state topic {state} has {counts[state]} partitions, source "
            f"{topology.source.topic} {n}: one state partition per source partition"
        )
    spec = DetectSpec(
        group=app_id,
        state_topic=state,
        sink_partitions=counts[topology.sink.topic],
        dlq_partitions=counts[topology.dead_letter],
    )
    name, sink = topology.name, topology.sink.topic
    hot = DetectHotPath(
        spec,
        flow,
        settings.kafka_config(),
        metrics,
        Containments(name, sink, metrics, audit, enforcer),
        DeadLetterReporter(name, topology.dead_letter, metrics, audit),
    )
    announce_model(flow, app_id, audit, enforce=enforce)
    return StartedDetect(hot, run_in_thread(hot, name=f"streamproc-detect-{name}"))
