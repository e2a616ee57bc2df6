"""What a worker does beside producing a message: dead-letter and containment reports,
DENY ACLs, the detector's model-load entry.

Shared by the detect hot path (:mod:`streamproc.runtime.detecthot`, blocking calls in its
thread) and the Faust agents (:mod:`streamproc.runtime.detector`, enforcement in an
executor); Faust-free, so a hot path starts before Faust is imported.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from confluent_kafka.admin import AdminClient

from streamproc.acl import Enforcer, load_principals
from streamproc.audit import AuditKind, AuditLog
from streamproc.config.settings import Settings
from streamproc.config.topology import Topology, lexical_path, load_topology
from streamproc.errors import ConfigError, StreamprocError
from streamproc.metrics import WorkerMetrics

if TYPE_CHECKING:  # the detector loads scikit-learn (seconds); the sanitizer agents need none
    from streamproc.detector import Containment
    from streamproc.pipeline.detect import DetectFlow

log = logging.getLogger("streamproc.runtime.detector")
_dlog = logging.getLogger("streamproc.runtime")

ENFORCED_BY = "streamproc-detector"


def source_partitions(topology: Topology, settings: Settings) -> int:
    """Partitions of the source topic: the topology's, else the broker's."""
    if topology.source.partitions:
        return topology.source.partitions
    md = AdminClient(settings.kafka_config()).list_topics(topology.source.topic, timeout=10)
    topic = md.topics.get(topology.source.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        raise ConfigError(
            f"{topology.path}: key 'source.partitions': is required while topic "
            f"{topology.source.topic} does not exist (the state table is partitioned like it)"
        )
    return len(topic.partitions)


def make_enforcer(topology: Topology, settings: Settings, audit: AuditLog | None) -> Enforcer:
    """The ACL enforcer for ``--enforce``: DENY on the data topics of every topology beside
    this one (like ``streamproc containment enforce``), never on the worker itself."""
    topologies = [topology]
    principals_file = topology.path.parent / "principals.yaml"
    for path in sorted(topology.path.parent.glob("*.yaml")):
        if lexical_path(path) in (topology.path, lexical_path(principals_file)):
            continue
        try:
            topologies.append(load_topology(path))
        except StreamprocError:
            log.warning("--enforce: %s is not a topology; its topics are not denied", path)
    protected: list[str] = []
    if principals_file.is_file():
        declared = load_principals(principals_file)
        protected.append(declared.worker.principal)
        if declared.detect_worker is not None:
            protected.append(declared.detect_worker.principal)
    if settings.sasl_username:
        protected.append(settings.sasl_username)
    return Enforcer.from_settings(
        settings, topologies, protected=protected, audit=audit, by=ENFORCED_BY
    )


class Containments:
    """The side effects of a containment: metric, log line, DENY ACLs or an audit entry."""

    def __init__(
        self,
        name: str,
        sink_topic: str,
        metrics: WorkerMetrics,
        audit: AuditLog | None,
        enforcer: Enforcer | None,
    ) -> None:
        self.name, self.sink_topic = name, sink_topic
        self.metrics, self.audit, self.enforcer = metrics, audit, enforcer

    def apply(self, c: Containment) -> None:
        """All of it, blocking (the enforcer's admin calls included)."""
        self._record(c)
        if self.enforcer is not None and self._enforce(c):
            return  # the enforcer wrote the audit entries itself
        self._audit(c)

    async def apply_async(self, c: Containment) -> None:
        """All of it, the enforcer's admin calls in the loop's executor."""
        self._record(c)
        if self.enforcer is not None:
            loop = asyncio.get_running_loop()
            if await loop.run_in_executor(None, self._enforce, c):
                return
        self._audit(c)

    def _record(self, c: Containment) -> None:
        self.metrics.containments.labels(self.name, c.action.value).inc()
        # Principal, action and score: access metadata; the reasons stay in the message.
        log.warning(
            "containment: topology=%s principal=%s action=%s score=%.3f threshold=%.3f id=%s",
            self.name,
            c.principal,
            c.action.value,
            c.score,
            c.threshold,
            c.containment_id,
        )

    def _audit(self, c: Containment) -> None:
        if self.audit is None:
            return
        try:
            self.audit.append(
                AuditKind.CONTAINMENT,
                principal=c.principal,
                reason=c.action.value.lower(),
                incident=c.containment_id,
                score=c.score,
                threshold=c.threshold,
                enforced=False,
                topics=[self.sink_topic],
                by=ENFORCED_BY,
            )
        except StreamprocError as exc:
            # e.g. a principal name the audit trail cannot hold; never log the fields
            log.error("containment %s not audited: %s", c.containment_id, exc)

    def _enforce(self, c: Containment) -> bool:
        assert self.enforcer is not None
        try:
            self.enforcer.enforce(
                c.principal,
                reason=c.action.value.lower(),
                incident=c.containment_id,
                score=c.score,
                threshold=c.threshold,
            )
            return True
        except StreamprocError as exc:
            log.error(
                "containment not enforced: principal=%s id=%s: %s",
                c.principal,
                c.containment_id,
                exc,
            )
            return False


class DeadLetterReporter:
    """What every agent does beside producing a dead letter: count it by reason, audit it,
    log it with its coordinates (never its payload)."""

    def __init__(
        self, name: str, dlq_topic: str, metrics: WorkerMetrics, audit: AuditLog | None
    ) -> None:
        self.name, self.dlq_topic = name, dlq_topic
        self.metrics, self.audit = metrics, audit
        self._counters: dict[str, Any] = {}

    def report(self, reason: str, topic: str, partition: int, offset: int) -> None:
        counter = self._counters.get(reason)
        if counter is None:
            counter = self._counters[reason] = self.metrics.dead_letters.labels(self.name, reason)
        counter.inc()
        if self.audit is not None:
            # Idempotent per source coordinate: a record delivered again is audited once.
            self.audit.append_once(
                AuditKind.DEAD_LETTER,
                reason=reason,
                topic=topic,
                partition=partition,
                offset=offset,
                dlq_topic=self.dlq_topic,
                worker=self.name,
            )
        _dlog.warning(
            "dead letter: topology=%s reason=%s source=%s/%d/%d",
            self.name,
            reason,
            topic,
            partition,
            offset,
        )


def announce_model(flow: DetectFlow, worker: str, audit: AuditLog | None, *, enforce: bool) -> None:
    """Log which model judges the topology and write it to the audit trail (a change shows
    as a new version between two runs' entries)."""
    topo = flow.topology
    log.info(
        "topology %s loaded: %s -> %s (model %s, threshold %.4f, enforce=%s)",
        topo.name,
        topo.source.topic,
        topo.sink.topic,
        flow.detector.model_version,
        flow.scorer.decider.threshold,
        enforce,
    )
    if audit is not None:
        audit.append(
            AuditKind.MODEL_LOAD,
            topology=topo.name,
            model_version=str(flow.detector.model_version),
            worker=worker,
            states=len(flow.detector.states),
            threshold=float(flow.scorer.decider.threshold),
        )
