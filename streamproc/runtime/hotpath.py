"""The sanitizer's batch hot path: one confluent-kafka consumer and producer in one thread.

Faust keeps the worker (lifecycle, web/metrics, tables, the detector agent, CLI and
configuration); the sanitize data path leaves Faust's per-record stream machinery (a
conductor lock, a channel put and two tasks per record). One thread per worker runs::

    consume(num_messages=BATCH) -> SanitizeFlow (inline or in the helper process)
      -> produce to the sink / dead-letter topic, same partition number as the source
      -> every commit interval: commit

``exactly_once``: one transactional producer per worker (``transactional.id`` =
``<app id>-<instance>``, stable across restarts, so ``init_transactions`` aborts whatever a
killed predecessor left open); the sanitized records, the dead letters and the source
offsets of an interval commit in one transaction, the offsets through
``send_offsets_to_transaction`` with the consumer's group metadata (KIP-447: a zombie whose
group generation is stale is fenced by the group coordinator). On an abortable error the
transaction aborts and every assigned partition is rewound to its committed offset; on a
fatal producer error (fenced, or the coordinator expired the transaction) a new producer
is made, which re-inits under the same id, and the partitions are rewound. A rebalance
commits the open transaction in ``on_revoke`` (aborts it in ``on_lost``), so no
transaction spans two generations.

``at_least_once``: the same path with an idempotent producer; at each commit the producer
is flushed, then the offsets are committed (a failed delivery rewinds instead).

Back-pressure: when the producer's queue passes ``max_queued`` the assigned partitions are
paused (the consumer keeps polling, so group membership and rebalances continue) and
resumed once it drained to half. Shutdown: stop flag -> finish the helper batch -> commit
-> close the consumer (leaves the group) -> flush.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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

from streamproc.config.topology import Topology
from streamproc.errors import OffloadError, StreamprocError
from streamproc.metrics import WorkerMetrics, compliance_inputs
from streamproc.pipeline import Outcome, Sanitized, SanitizeFlow
from streamproc.runtime.budgeted import BudgetState
from streamproc.runtime.committimes import CommitTimes
from streamproc.runtime.grouped import Grouping
from streamproc.runtime.offload import FlowProcess, Item, _recv_exactly, decode_reply
from streamproc.runtime.offload import encode_request as _encode
from streamproc.runtime.statetopic import STATE_TOPIC_CONFIG

log = logging.getLogger("streamproc.runtime.hotpath")

# Timeout of one transactional call: short enough that a worker whose broker went away
# cycles through abort -> new producer -> wait instead of hanging in one call.
TXN_CALL_S = 10.0
# librdkafka 2.x can block in send_offsets_to_transaction past its timeout when the broker
# restarted underneath it (seen in the fault test): past this, the worker exits (code 70)
# and its restart, under the same transactional id, aborts the open transaction.
TXN_WATCHDOG_S = 45.0

Guarantee = Literal["at_least_once", "exactly_once"]
# confluent-kafka's Message stubs type every accessor Optional; the consumer hands out
# records whose topic, partition and offset are set (errors are filtered first).
Message = Any


class HotPathError(StreamprocError):
    """The hot path cannot go on (a fatal client error that a new producer did not cure)."""


@dataclass(frozen=True)
class HotPathSpec:
    """How one worker's hot path consumes, commits and paces itself."""

    group: str
    guarantee: Guarantee
    transactional_id: str | None = None
    batch: int = 2000
    poll_s: float = 0.005
    # exactly_once: read_committed consumers see a record once its transaction commits, so
    # the interval bounds their latency under load (docs/delivery.md, "Commit interval").
    commit_interval_s: float = 0.02
    # exactly_once: commit as soon as a fetch comes back short instead of at the interval's
    # end (stateless routes). Off: on this busy 2-CPU machine it showed no latency gain over
    # the interval (docs/benchmarks.md, "exactly_once latency"); to be decided on a quiet one.
    commit_when_caught_up: bool = False
    max_queued: int = 200_000
    transaction_timeout_ms: int = 10_000
    # exactly_once: the transactional producer's retry.backoff.ms. A transaction's
    # AddOffsetsToTxn that reaches the coordinator while the previous transaction is still
    # completing gets CONCURRENT_TRANSACTIONS and is retried after retry.backoff.ms
    # (librdkafka's default 100 ms; its AddPartitionsToTxn retry is fixed at 20 ms): with
    # 20 ms transactions that put ~100 ms into the tail of every such commit
    # (docs/delivery.md, "What a commit costs"). Produce retries back off exponentially
    # from this value up to retry.backoff.max.ms, so a failing broker is not hammered.
    txn_retry_backoff_ms: int = 5
    session_timeout_ms: int = 10_000
    # New producers allowed per minute before the worker gives up (fatal errors in a loop).
    max_producer_resets: int = 5

    def __post_init__(self) -> None:
        if self.guarantee == "exactly_once" and not self.transactional_id:
            raise ValueError("exactly_once needs a transactional id")


@dataclass
class Route:
    """One sanitize topology inside the hot path."""

    flow: SanitizeFlow
    # Source partition p goes to slot p % (len(helpers) + thread_share) (per-partition order
    # kept): slot i < len(helpers) is helpers[i], the last slot, when ``thread_share`` is
    # set, the hot path's thread itself, which sanitizes it inline while the helpers work
    # (one helper alone would leave the thread waiting for it; see ``share_thread``).
    helpers: list[BlockingFlowProcess] = field(default_factory=list)
    thread_share: bool = False
    sink_partitions: int = 1
    dlq_partitions: int = 1
    pending: list[tuple[list[Message], list[Item]]] | None = None  # in the helpers
    m: dict[str, Any] = field(default_factory=dict)  # metric children
    # A plan with record-level k: records wait for their group here (never offloaded).
    grouping: Grouping | None = None
    # A plan with per-subject DP budgets: the keyed ledger's state (never offloaded).
    budget: BudgetState | None = None


class BlockingFlowProcess(FlowProcess):
    """The offload helper driven with blocking calls from the hot path's thread.

    ``submit`` hands a batch over and returns at once; ``collect`` waits for its outcomes.
    Between the two the thread produces the previous batch and fetches the next one, so the
    helper's core and the thread's core overlap (one batch in flight per topology).
    """

    def __init__(self, topology_path: Any, settings: Any, flow: SanitizeFlow) -> None:
        super().__init__(topology_path, settings, flow)
        self._sock.setblocking(True)
        self._sock.settimeout(None)

    def submit(self, items: list[Item]) -> None:
        body = _encode(items)
        self._sock.sendall(len(body).to_bytes(8, "little") + body)

    def collect(self, items: list[Item]) -> list[Outcome]:
        head = _recv_exactly(self._sock, 8)
        body = _recv_exactly(self._sock, int.from_bytes(head, "little")) if head else None
        if body is None:
            raise OffloadError(f"offload helper for {self._flow.topology.name} went away")
        return decode_reply(self._flow, items, body)


def share_thread(helpers: int) -> bool:
    """Whether the hot path's thread sanitizes a share of a route's partitions itself.

    With one helper the thread would wait for it: the helper's flow costs several times the
    thread's own per-record work (consume, produce, the batch's round trip), so the thread
    takes every other partition. With two or more helpers it has their I/O to do, and with
    none it sanitizes everything anyway (figures: docs/benchmarks.md).
    """
    return helpers == 1


class HasTopology(Protocol):
    """A flow, as far as its output topics go."""

    @property
    def topology(self) -> Topology: ...


def ensure_outputs(
    conf: dict[str, Any],
    flows: Sequence[HasTopology],
    state_topics: dict[str, list[str]] | None = None,
) -> dict[str, int]:
    """Create missing sink and dead-letter topics with the source's partition count (and the
    state topics of ``state_topics``, topology name -> topics, compacted); the partition
    count of every output topic (outputs keep their source partition number)."""
    state_topics = state_topics or {}
    admin = AdminClient(conf)
    md = admin.list_topics(timeout=30)
    want: dict[str, tuple[int, dict[str, str]]] = {}
    names: list[str] = []
    for flow in flows:
        topo = flow.topology
        src = md.topics.get(topo.source.topic)
        n = topo.source.partitions or (len(src.partitions) if src and src.partitions else 1)
        outputs: list[tuple[str, dict[str, str]]] = [(topo.sink.topic, {}), (topo.dead_letter, {})]
        outputs += [(t, STATE_TOPIC_CONFIG) for t in state_topics.get(topo.name, [])]
        for name, config in outputs:
            names.append(name)
            if name not in md.topics:
                want[name] = (n, config)
    if want:
        futures = admin.create_topics(
            [NewTopic(t, n, -1, config=dict(c)) for t, (n, c) in want.items()]
        )
        for fut in futures.values():
            try:
                fut.result(30)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        # A topic just created may be missing from the next metadata for a moment.
        deadline = time.monotonic() + 30
        md = admin.list_topics(timeout=30)
        while not all(n in md.topics for n in names) and time.monotonic() < deadline:
            time.sleep(0.2)
            md = admin.list_topics(timeout=30)
    return {name: max(1, len(md.topics[name].partitions)) for name in names}


class HotPath:
    """The consume -> sanitize -> produce -> commit loop of one worker (all its topologies)."""

    def __init__(
        self,
        spec: HotPathSpec,
        routes: dict[str, Route],
        kafka_conf: dict[str, Any],
        metrics: WorkerMetrics,
        *,
        on_dead_letter: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.spec = spec
        self.routes = routes
        self.conf = kafka_conf
        self.metrics = metrics
        self.on_dead_letter = on_dead_letter
        self.eos = spec.guarantee == "exactly_once"
        # Commit when caught up (exactly_once, stateless routes only: a stateful route writes
        # its state markers at every commit, and its records wait for their group anyway).
        self._eager = (
            self.eos
            and spec.commit_when_caught_up
            and all(r.grouping is None and r.budget is None for r in routes.values())
        )
        self._stop = threading.Event()
        self._offsets: dict[tuple[str, int], int] = {}  # next offset, produced not committed
        self._dead: list[dict[str, Any]] = []  # audit entries of the open interval
        self._in_txn = False
        self._interval_start = 0.0
        self._last_commit_s = 0.0  # how long the last exactly_once commit took
        self._delivery_failed = False
        self._resets: list[float] = []
        self._lag_at = 0.0
        self.commits = 0
        self.aborts = 0
        self.commit_times = CommitTimes(histogram=metrics.commit)
        self.consumer: Any = None
        self.producer: Any = None
        self._call_since: float | None = None  # a transactional call in progress since
        for name, route in routes.items():
            label = route.flow.topology.name
            route.m = {
                "in": metrics.records_in.labels(label),
                "out": metrics.records_out.labels(label),
                "latency": metrics.processing.labels(label),
                "transforms": {
                    a: (metrics.transforms.labels(label, a), n)
                    for a, n in route.flow.actions_per_record.items()
                },
                "dead": {},
            }
            if route.grouping is not None:
                route.m["k"] = {
                    "buffered": metrics.anonymity_buffered.labels(label),
                    "released": metrics.anonymity_released.labels(label),
                    "suppressed": metrics.anonymity_suppressed.labels(label),
                    "delay": metrics.anonymity_delay.labels(label),
                    "loss": {
                        f: metrics.information_loss.labels(label, f)
                        for f in route.flow.plan.anonymity.fields
                    },
                }
            for key, version in route.flow.plan.key_versions.items():
                metrics.key_version.labels(label, key).set(version)
            metrics.health.watch(label, compliance_inputs(route.flow))
            del name

    # -- clients ---------------------------------------------------------------------------

    def _new_producer(self) -> Any:
        conf = {
            **self.conf,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "batch.size": 1024 * 1024,
            "queue.buffering.max.messages": self.spec.max_queued * 2,
            "queue.buffering.max.kbytes": 512 * 1024,
        }
        if self.eos:
            conf["transactional.id"] = self.spec.transactional_id
            conf["transaction.timeout.ms"] = self.spec.transaction_timeout_ms
            conf["retry.backoff.ms"] = self.spec.txn_retry_backoff_ms
        else:
            conf["delivery.report.only.error"] = True
            conf["on_delivery"] = self._on_delivery_error
        producer = Producer(conf)
        if self.eos:
            self._retry(lambda: producer.init_transactions(TXN_CALL_S), "init_transactions")
        return producer

    def _new_consumer(self) -> Any:
        conf = {
            **self.conf,
            "group.id": self.spec.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Sources may be written transactionally too; never read an aborted record.
            "isolation.level": "read_committed",
            "session.timeout.ms": self.spec.session_timeout_ms,
            "heartbeat.interval.ms": max(1000, self.spec.session_timeout_ms // 3),
            "fetch.wait.max.ms": 20,
            "queued.max.messages.kbytes": 64 * 1024,
        }
        return Consumer(conf)

    def _on_delivery_error(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._delivery_failed = True
            log.error("delivery failed to %s/%s: %s", msg.topic(), msg.partition(), err.name())

    def _retry(self, call: Callable[[], Any], what: str) -> Any:
        """Run a transactional call, retrying retriable errors while the worker runs."""
        delay = 0.1
        while True:
            try:
                return call()
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or (self._stop.is_set() and what == "init_transactions"):
                    raise
                log.warning("%s: %s, retrying", what, err.name())
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def _watchdog(self) -> None:
        while not self._stop.wait(1.0):
            since = self._call_since
            if since is not None and time.monotonic() - since > TXN_WATCHDOG_S:
                log.critical(
                    "a transactional call blocked for over %.0f s; exiting so that a restart "
                    "aborts the open transaction",
                    TXN_WATCHDOG_S,
                )
                logging.shutdown()
                os._exit(70)

    def run(self) -> None:
        """The thread body: until :meth:`stop`, then commit what is done and leave the group."""
        if self.eos:
            threading.Thread(
                target=self._watchdog, name="streamproc-txn-watchdog", daemon=True
            ).start()
        # Subscribe first: the group join runs in librdkafka's threads while
        # init_transactions waits for its coordinator (the first consume, which serves
        # the assignment, comes after both).
        self.consumer = self._new_consumer()
        self.consumer.subscribe(
            list(self.routes), on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )  # fmt: skip
        try:
            self.producer = self._new_producer()
            log.info(
                "hot path running: group=%s guarantee=%s transactional_id=%s topics=%s",
                self.spec.group,
                self.spec.guarantee,
                self.spec.transactional_id,
                ",".join(self.routes),
            )
            while not self._stop.is_set():
                self._step()
            self._drain_helpers()
            self._commit()
        finally:
            try:
                self.consumer.close()  # serves on_revoke / on_lost a last time
                self.producer.flush(10)
            except Exception as exc:  # keep the original failure the one that is reported
                log.warning("closing the clients: %s", type(exc).__name__)
            for route in self.routes.values():
                for helper in route.helpers:
                    helper.close()
        log.info("hot path stopped: %d commits, %d aborts", self.commits, self.aborts)
        log.info("hot path %s", self.commit_times.summary())

    def _step(self) -> None:
        try:
            msgs = self.consumer.consume(self.spec.batch, self._poll_s())
            if msgs:
                t0 = time.monotonic()
                self._handle(msgs)
                # What a batch costs next to the commit (docs/delivery.md).
                self.commit_times.add("batch", time.monotonic() - t0)
            else:
                self._drain_helpers()
            self._release_due()
            self.producer.poll(0)
            if self._offsets and self._commit_due(len(msgs)):
                self._commit()
            if len(self.producer) > self.spec.max_queued:
                self._back_pressure()
            if time.monotonic() - self._lag_at > 5.0:
                self._report_lag()
        except _Rewind:
            self._abort_and_rewind()

    def _interval(self) -> float:
        return self.spec.commit_interval_s if self.eos else max(self.spec.commit_interval_s, 0.5)

    def _commit_due(self, fetched: int) -> bool:
        """Whether the open interval commits now.

        At the interval's end; under exactly_once also as soon as the worker has caught up
        (the last fetch was short: nothing is waiting locally), since a read_committed
        consumer sees no record of the interval before its commit. Under load every fetch is
        a full batch, so the interval alone paces the commits, as before.
        """
        age = time.monotonic() - self._interval_start
        if age >= self._interval():
            return True
        # Not sooner than the last commit took: on a busy broker commits slow down, and
        # committing more often would only add to its load (at most half the time commits).
        return self._eager and fetched < self.spec.batch and age >= self._last_commit_s

    # -- the data path (hot: keep per-record work to the loop bodies) ----------------------

    def _handle(self, msgs: list[Message]) -> None:
        by_topic: dict[str, list[Message]] = {}
        for m in msgs:
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer: %s", m.error().name())
                continue
            topic = m.topic()
            group = by_topic.get(topic)
            if group is None:
                group = by_topic[topic] = []
            group.append(m)
        for topic, batch in by_topic.items():
            route = self.routes[topic]
            items: list[Item] = [
                (m.value(), m.key(), topic, m.partition(), m.offset(), _stamp(m)) for m in batch
            ]
            if route.grouping is not None:
                self._group(route, items)
                continue
            if not route.helpers:
                self._emit(route, batch, items, route.flow.process_many(items))
                continue
            self._offload(route, batch, items)

    def _offload(self, route: Route, batch: list[Message], items: list[Item]) -> None:
        """Hand ``batch`` to the helpers, emit the batch they just finished, then sanitize
        the thread's own share of ``batch`` (if it has one) while they work."""
        k = len(route.helpers)
        parts: list[tuple[list[Message], list[Item]]] = [
            ([], []) for _ in range(k + route.thread_share)
        ]
        slots = len(parts)
        for m, item in zip(batch, items, strict=True):
            part = parts[item[3] % slots]
            part[0].append(m)
            part[1].append(item)
        prev = route.pending
        done = []
        for i, helper in enumerate(route.helpers):
            if prev is not None and prev[i][1]:
                done.append((prev[i], helper.collect(prev[i][1])))
            if parts[i][1]:
                helper.submit(parts[i][1])
        route.pending = parts[:k]
        for (msgs, its), outcomes in done:
            self._emit(route, msgs, its, outcomes)
        if route.thread_share and parts[k][1]:
            own_msgs, own = parts[k]
            self._emit(route, own_msgs, own, route.flow.process_many(own))
        if len(items) < self.spec.batch // 4:
            # A light load needs no overlap for throughput: emit now instead of after the
            # next fetch (latency at 5k records/s).
            self._drain_helpers()

    def _drain_helpers(self) -> None:
        for route in self.routes.values():
            prev, route.pending = route.pending, None
            if prev is None:
                continue
            for (msgs, its), helper in zip(prev, route.helpers, strict=True):
                if its:
                    self._emit(route, msgs, its, helper.collect(its))

    def _drop_helpers(self) -> None:
        """Discard the batches in the helpers (their offsets were never recorded)."""
        for route in self.routes.values():
            prev, route.pending = route.pending, None
            if prev is None:
                continue
            for (_, its), helper in zip(prev, route.helpers, strict=True):
                if its:
                    helper.collect(its)

    def _emit(
        self, route: Route, batch: list[Message], items: list[Item], outcomes: list[Outcome]
    ) -> None:
        self._produce(route, items, outcomes)
        last: dict[int, int] = {}
        for m in batch:
            last[m.partition()] = m.offset()
        topic = route.flow.topology.source.topic
        for p, o in last.items():
            self._offsets[(topic, p)] = o + 1

    def _begin(self) -> None:
        """Open the interval (and under exactly_once its transaction) if it is not open."""
        if not self._offsets:
            self._interval_start = time.monotonic()
        if self.eos and not self._in_txn:
            self.producer.begin_transaction()
            self._in_txn = True

    def _produce(self, route: Route, items: Sequence[Item], outcomes: Sequence[Outcome]) -> None:
        """Send each outcome to the sink or the dead-letter topic (source partition kept);
        a budgeted route's charges first (durable before the rows under at_least_once)."""
        self._begin()
        if route.budget is not None:
            self._budget_out(route)
        produce = self.producer.produce
        topo = route.flow.topology
        sink, dlq = topo.sink.topic, topo.dead_letter
        n_sink, n_dlq = route.sink_partitions, route.dlq_partitions
        n_out = 0
        stamps = []
        for item, out in zip(items, outcomes, strict=True):
            partition, ts = item[3], item[5]
            if type(out) is Sanitized:
                target, part = sink, partition % n_sink
                n_out += 1
            else:
                target, part = dlq, partition % n_dlq
                self._dead_letter(route, item, out.reason)  # type: ignore[union-attr]
            try:
                produce(target, out.value, out.key, part, headers=out.headers, timestamp=ts or 0)
            except BufferError:
                self._wait_for_queue()
                produce(target, out.value, out.key, part, headers=out.headers, timestamp=ts or 0)
            except KafkaException as exc:
                self._refused(exc, "produce")
            if ts:
                stamps.append(ts)
        now_ms = time.time() * 1000
        observe = route.m["latency"].observe
        for ts in stamps:
            observe(max(0.0, now_ms - ts) / 1000)
        for _ in range(len(items) - len(stamps)):
            observe(0.0)
        route.m["in"].inc(len(items))
        route.m["out"].inc(n_out)
        for counter, n in route.m["transforms"].values():
            counter.inc(n * n_out)
        newest = max(stamps) / 1000 if stamps else None
        self.metrics.health.sanitized(topo.name, len(items), len(items) - n_out, newest)
        self.metrics.flow_state(topo.name, route.flow.combined_state())

    # -- record-level k: the grouping buffer (streamproc.runtime.grouped) -----------------

    def _poll_s(self) -> float:
        """The consume timeout; none while an exactly_once interval is open and would
        commit when caught up (take what was fetched, then commit)."""
        if self._eager and self._offsets:
            wait = self._last_commit_s - (time.monotonic() - self._interval_start)
            return min(self.spec.poll_s, max(0.0, wait))
        return self.spec.poll_s

    def _group(self, route: Route, items: list[Item]) -> None:
        grouping = route.grouping
        assert grouping is not None
        now = int(time.time() * 1000)
        ready = grouping.take(items, now)
        if ready:
            self._produce(route, [i for i, _ in ready], [o for _, o in ready])
        self._release(route, now, produced=bool(ready))

    def _release_due(self) -> None:
        now = None
        for route in self.routes.values():
            g = route.grouping
            if g is None:
                continue
            now = now or int(time.time() * 1000)
            if g.due(now):
                self._release(route, now)
            else:
                self._k_offsets(route)
            route.m["k"]["buffered"].set(g.buffered)

    def _release(self, route: Route, now_ms: int, *, produced: bool = False) -> None:
        """Produce the rows whose groups are decided, their pins no later than they."""
        g = route.grouping
        assert g is not None
        rows, pins = g.release(now_ms)
        charged = route.budget is not None and self._budget_out(route, flush=False)
        if pins:
            self._begin()
            for sp, key, value in pins:
                self._produce_state(g.state_topic, sp, key, value)
        if pins or charged:
            # at_least_once: a row may only exist once its pin is durable, so that a re-read
            # releases it again at the same cells (and once its DP charge is).
            self._flush_state("anonymity pins")
        if rows:
            self._produce(route, [r[0] for r in rows], [r[1] for r in rows])
            k = route.m["k"]
            delay = k["delay"].observe
            n_sup = 0
            for _, _, rel in rows:
                delay(max(0, rel.released_ms - rel.arrival_ms) / 1000)
                n_sup += rel.suppressed
            k["released"].inc(len(rows))
            if n_sup:
                k["suppressed"].inc(n_sup)
            for f, v in g.information_loss().items():
                k["loss"][f].set(v)
            share = n_sup / len(rows)
            if share > route.flow.plan.anonymity.privacy.max_suppressed and len(rows) >= 20:
                log.warning(
                    "topology %s: %.1f%% of %d released records suppressed (max_suppressed %.1f%%)",
                    route.flow.topology.name,
                    100 * share,
                    len(rows),
                    100 * route.flow.plan.anonymity.privacy.max_suppressed,
                )
        self._k_offsets(route, every=produced or bool(rows or pins))

    def _k_offsets(self, route: Route, *, every: bool = False) -> None:
        """Move a k route's commit offsets: never past a record still buffered."""
        g = route.grouping
        assert g is not None
        moved = g.offsets(every=every)
        if moved:
            self._begin()
            for p, off in moved.items():
                self._offsets[(g.topic, p)] = off

    def _budget_out(self, route: Route, *, flush: bool = True) -> bool:
        """Send the snapshots of the subjects charged since the last call (at_least_once,
        ``flush``: wait until they are durable); whether there were any."""
        b = route.budget
        assert b is not None
        msgs = b.dirty_messages()
        if not msgs:
            return False
        self._begin()
        for sp, key, value in msgs:
            self._produce_state(b.state_topic, sp, key, value)
        if flush:
            self._flush_state("DP budget snapshots")
        return True

    def _flush_state(self, what: str) -> None:
        """at_least_once: wait until the state just sent is acknowledged, else rewind."""
        if self.eos:
            return  # the transaction carries state and rows together
        if self.producer.flush(30) > 0 or self._delivery_failed:
            self._delivery_failed = False
            log.warning("%s not delivered: rewinding", what)
            raise _Rewind()

    def _produce_state(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None:
        try:
            self.producer.produce(topic, value, key, partition)
        except BufferError:
            self._wait_for_queue()
            self.producer.produce(topic, value, key, partition)
        except KafkaException as exc:
            self._refused(exc, "state produce")

    def _refused(self, exc: KafkaException, what: str) -> None:
        """A produce the producer refused: the transaction is in an error state (e.g. a send
        failed while the broker was away), so the whole interval goes."""
        log.warning("%s refused (%s): aborting and rewinding", what, exc.args[0].name())
        if exc.args[0].fatal():
            self._reset_producer()
        raise _Rewind() from None

    def _k_state_at_commit(self) -> list[tuple[str, int, bytes, bytes | None]]:
        out: list[tuple[str, int, bytes, bytes | None]] = []
        for route in self.routes.values():
            g = route.grouping
            if g is None:
                continue
            offs = {p: o for (t, p), o in self._offsets.items() if t == g.topic}
            out.extend((g.state_topic, sp, k, v) for sp, k, v in g.at_commit(offs))
        for route in self.routes.values():
            b = route.budget
            if b is None:
                continue
            offs = {p: o for (t, p), o in self._offsets.items() if t == b.topic}
            out.extend((b.state_topic, sp, k, v) for sp, k, v in b.at_commit(offs))
        return out

    def _k_load(self, partitions: list[TopicPartition]) -> None:
        """Adopt stateful routes' partitions at their committed offsets, with their state
        (k-anonymity buffers, DP budgets)."""
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in partitions:
            route = self.routes.get(tp.topic)
            if route is not None and (route.grouping is not None or route.budget is not None):
                by_topic.setdefault(tp.topic, []).append(tp)
        for topic, tps in by_topic.items():
            route = self.routes[topic]
            committed = self._retry(_committed_of(self.consumer, tps), "committed")
            offsets = {tp.partition: tp.offset for tp in committed}
            if route.grouping is not None:
                route.grouping.load(offsets)
            if route.budget is not None:
                route.budget.load(offsets)

    def _k_drop(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            route = self.routes.get(tp.topic)
            if route is None:
                continue
            if route.grouping is not None:
                route.grouping.drop([tp.partition])
            if route.budget is not None:
                route.budget.drop([tp.partition])

    def _dead_letter(self, route: Route, item: Item, reason: str) -> None:
        counter = route.m["dead"].get(reason)
        if counter is None:
            label = route.flow.topology.name
            counter = route.m["dead"][reason] = self.metrics.dead_letters.labels(label, reason)
        counter.inc()
        _, _, topic, partition, offset, _ = item
        # The reason and coordinates only; never the payload.
        log.warning(
            "dead letter: topology=%s reason=%s source=%s/%d/%d",
            route.flow.topology.name,
            reason,
            topic,
            partition,
            offset,
        )
        self._dead.append(
            {
                "reason": reason,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "dlq_topic": route.flow.topology.dead_letter,
                "worker": route.flow.topology.name,
            }
        )

    def _wait_for_queue(self) -> None:
        while len(self.producer) > self.spec.max_queued // 2:
            self.producer.poll(0.05)

    def _back_pressure(self) -> None:
        """Pause fetching while the producer drains; keep polling for group membership."""
        parts = self.consumer.assignment()
        self.consumer.pause(parts)
        try:
            while len(self.producer) > self.spec.max_queued // 2 and not self._stop.is_set():
                self.producer.poll(0.05)
                msgs = self.consumer.consume(self.spec.batch, 0)
                if msgs:  # fetched before the pause took effect
                    self._handle(msgs)
        finally:
            self.consumer.resume(self.consumer.assignment())

    # -- commits, aborts, rebalances -------------------------------------------------------

    def _commit(self) -> None:
        """Make the interval's outputs and source offsets durable (one transaction)."""
        if not self._offsets:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._offsets.items()]
        state = self._k_state_at_commit()
        if self.eos:
            started = time.monotonic()
            self._audit_dead()
            try:
                for topic, sp, key, value in state:
                    self._produce_state(topic, sp, key, value)
                meta = self.consumer.consumer_group_metadata()
                self._call_since = t0 = time.monotonic()
                try:
                    self.producer.send_offsets_to_transaction(offsets, meta, TXN_CALL_S)
                    # commit_transaction flushes first anyway; flushing here only splits
                    # the commit's time into its parts (docs/delivery.md).
                    t1 = time.monotonic()
                    self.producer.flush(TXN_CALL_S)
                    t2 = time.monotonic()
                finally:
                    self._call_since = None
                self._end_txn(commit=True)
                t3 = time.monotonic()
                self.commit_times.add("send_offsets", t1 - t0)
                self.commit_times.add("flush", t2 - t1)
                self.commit_times.add("commit_txn", t3 - t2)
                self.commit_times.add("total", t3 - started)
            except KafkaException as exc:
                # Whatever went wrong (the broker away, a stale generation, a timeout),
                # nothing of the interval is visible: abort and do it again.
                self._txn_failed(exc)
                raise _Rewind() from None
            self._in_txn = False
            self._last_commit_s = time.monotonic() - started
        else:
            t0 = time.monotonic()
            if self.producer.flush(30) > 0 or self._delivery_failed:
                self._delivery_failed = False
                log.warning("not every record was delivered: rewinding to the committed offsets")
                raise _Rewind()
            t1 = time.monotonic()
            self._audit_dead()
            t2 = time.monotonic()
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                t3 = time.monotonic()
                self.commit_times.add("flush", t1 - t0)
                self.commit_times.add("commit_offsets", t3 - t2)
                self.commit_times.add("total", t3 - t0)
            except KafkaException as exc:
                # Outputs are durable; the offsets are re-committed by the next owner's run
                # (at-least-once: a rebalance re-delivers the tail).
                log.warning("offset commit failed: %s", exc.args[0].name())
                state = []  # pins stay until a commit passes them
            # Retired pins go only after the commit that passed them (sent with the next
            # flush; a lost tombstone only leaves a pin that is ignored below the offset).
            for topic, sp, key, value in state:
                self._produce_state(topic, sp, key, value)
        self.commits += 1
        self._offsets.clear()
        self._dead = []

    def _audit_dead(self) -> None:
        """Audit the interval's dead letters before it commits: a crash after this and
        before the commit processes them again, and ``append_once`` writes each once."""
        if self._dead and self.on_dead_letter is not None:
            self.on_dead_letter(self._dead)

    def _end_txn(self, *, commit: bool) -> None:
        """Commit or abort; a retriable error is retried twice (librdkafka allows it)."""
        call = self.producer.commit_transaction if commit else self.producer.abort_transaction
        for attempt in range(3):
            self._call_since = time.monotonic()
            try:
                call(TXN_CALL_S)
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or attempt == 2:
                    raise
                log.warning("%s: %s, retrying", call.__name__, err.name())
            finally:
                self._call_since = None

    def _abort(self) -> None:
        """Abort the open transaction; if even that fails, a new producer (its
        ``init_transactions`` aborts the transaction broker-side)."""
        try:
            self._end_txn(commit=False)
        except KafkaException as exc:
            log.warning("abort failed (%s): new producer", exc.args[0].name())
            self._reset_producer()
        self._in_txn = False

    def _txn_failed(self, exc: KafkaException) -> None:
        err = exc.args[0]
        log.warning(
            "transaction failed (%s%s): aborting and rewinding",
            err.name(),
            ", fatal" if err.fatal() else "",
        )
        if err.fatal():
            self._reset_producer()

    def _reset_producer(self) -> None:
        """A fatal producer error: a new producer under the same id (re-init fences the old
        epoch and aborts its open transaction)."""
        now = time.monotonic()
        self._resets = [t for t in self._resets if now - t < 60] + [now]
        if len(self._resets) > self.spec.max_producer_resets:
            raise HotPathError(
                f"transactional producer {self.spec.transactional_id} failed fatally "
                f"{len(self._resets)} times in a minute (another worker with the same "
                "--instance?)"
            )
        old = self.producer
        # A fenced producer may refuse even these; it is dropped either way.
        with contextlib.suppress(KafkaException):
            old.purge()
        with contextlib.suppress(KafkaException):
            old.flush(0)
        self._in_txn = False
        self.producer = self._new_producer()

    def _abort_and_rewind(self) -> None:
        """Abort the open transaction and go back to the committed offsets."""
        self.aborts += 1
        self._drop_helpers()
        if self.eos and self._in_txn:
            self._abort()
        self._offsets.clear()
        self._dead.clear()
        parts = self.consumer.assignment()
        self._rewind(parts)
        # Buffered records are read again from the committed offsets: start their partitions
        # over from the committed state.
        self._k_drop(parts)
        self._k_load(parts)

    def _rewind(self, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        committed = self._retry(lambda: self.consumer.committed(partitions, 30), "committed")
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            for attempt in range(50):
                try:
                    self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
                    break
                except KafkaException:
                    # Not fetching yet (just assigned): let the consumer settle.
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
        log.info("rewound %d partitions to their committed offsets", len(committed))

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("assigned: %s", _fmt(partitions))
        self._k_load(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Finish and commit while the partitions are still ours (same group generation)."""
        log.info("revoked: %s", _fmt(partitions))
        try:
            self._drain_helpers()
            self._commit()
        except _Rewind:
            self._abandon()
        # Their buffered records are the next owner's to read again.
        self._k_drop(partitions)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """The group moved on without us: nothing of the interval may commit."""
        log.warning("partitions lost: %s", _fmt(partitions))
        self._drop_helpers()
        self._abandon()
        self._k_drop(partitions)

    def _abandon(self) -> None:
        if self.eos and self._in_txn:
            self._abort()
            self.aborts += 1
        self._offsets.clear()
        self._dead.clear()

    def _report_lag(self) -> None:
        self._lag_at = time.monotonic()
        parts = self.consumer.assignment()
        if not parts:
            return
        gauge = self.metrics.consumer_lag
        for tp in self.consumer.position(parts):
            route = self.routes.get(tp.topic)
            if route is None or tp.offset < 0:
                continue
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                continue
            gauge.labels(route.flow.topology.name, str(tp.partition)).set(max(0, high - tp.offset))


class _Rewind(Exception):
    """The interval failed: abort and rewind."""


def _committed_of(consumer: Any, tps: list[TopicPartition]) -> Callable[[], Any]:
    return lambda: consumer.committed(tps, 30)


def _stamp(m: Message) -> int | None:
    ts = m.timestamp()[1]
    return ts if ts > 0 else None


def _fmt(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}" for tp in partitions) or "-"


class Runnable(Protocol):
    """A hot path's loop (:class:`HotPath`, the detect hot path)."""

    def run(self) -> None: ...


def run_in_thread(hot: Runnable, *, name: str = "streamproc-hotpath") -> threading.Thread:
    """Start the hot path's thread; if it fails, end the worker before anything commits.

    The same rule as the Faust agents (:func:`streamproc.runtime.batching.stop_on_failure`):
    the uncommitted records are delivered again after the restart, never skipped.
    """

    def body() -> None:
        try:
            hot.run()
        except BaseException as exc:
            log.critical("hot path failed (%s: %s); exiting", type(exc).__name__, exc)
            logging.shutdown()
            os._exit(70)

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    return t
