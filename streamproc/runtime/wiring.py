"""Build a worker from topology files (compile everything once, at start-up).

Two steps, so that the hot path runs before Faust is even imported: :func:`prepare_topologies`
(compile, start the hot path) and :func:`add_topologies` (the Faust side).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamproc.audit import (
    AuditKind,
    AuditLog,
    CheckpointSigner,
    FileSink,
    KafkaSink,
    create_audit_topic,
    trail_topic,
)
from streamproc.config.settings import Settings
from streamproc.config.topology import Topology, load_topology
from streamproc.errors import ConfigError
from streamproc.keys import Keyring
from streamproc.metrics import WorkerMetrics
from streamproc.pipeline.build import build_flow
from streamproc.pipeline.sanitize import SanitizeFlow
from streamproc.runtime.hotapp import EarlySignals, StartedHotPath, attach_hot_path, start_hot_path
from streamproc.runtime.offload import FlowProcess

if TYPE_CHECKING:
    import faust

    from streamproc.runtime.detecthot import StartedDetect

log = logging.getLogger("streamproc.worker")


def open_audit(settings: Settings, app_id: str) -> AuditLog | None:
    """The worker's audit log, or None when no signing key is configured.

    One writer per trail: the default topic is ``streamproc.audit.<app id>``; a deployment
    with several instances of one app gives each its own ``STREAMPROC_AUDIT_TOPIC`` or file.
    """
    if settings.audit_signing_key is None:
        log.warning("audit trail off: set STREAMPROC_AUDIT_SIGNING_KEY to record it")
        return None
    sink: Any
    if settings.audit_file is not None:
        sink = FileSink(settings.audit_file)
    else:
        topic = settings.audit_topic or trail_topic(app_id)
        conf = settings.kafka_config()
        create_audit_topic(conf, topic)
        sink = KafkaSink(topic, conf)
    return AuditLog(
        sink,
        CheckpointSigner.from_file(settings.audit_signing_key),
        checkpoint_every=settings.audit_checkpoint_every,
    )


@dataclass
class Prepared:
    """A worker's topologies, compiled, with its hot paths already running (no Faust yet)."""

    app_id: str
    topologies: list[Topology]
    flows: list[SanitizeFlow]
    metrics: WorkerMetrics
    audit: AuditLog | None
    engine: str
    offload_processes: int
    hot: StartedHotPath | None = None
    detect: list[StartedDetect] = field(default_factory=list)
    signals: EarlySignals | None = None  # held until Faust takes over (a hot path runs)

    def abandon(self) -> None:
        """The worker did not get as far as Faust: stop the hot paths (they commit what is
        done and leave their groups) and give the signals back."""
        for d in self.detect:
            d.stop()
        if self.hot is not None:
            self.hot.stop()
        if self.signals is not None:
            self.signals.restore()


def prepare_topologies(
    settings: Settings,
    paths: Sequence[str | Path],
    app_id: str,
    *,
    metrics: WorkerMetrics | None = None,
    audit: AuditLog | None = None,
    offload_processes: int = 0,
    engine: str = "hotpath",
    instance: str | None = None,
    commit_when_caught_up: bool = False,
) -> Prepared:
    """Load, validate and compile every topology; start the hot paths.

    ``engine``: ``hotpath`` (default) runs every sanitize topology on the worker's batch hot
    path (:mod:`streamproc.runtime.hotpath`) and every detect topology on a detect hot path
    (:mod:`streamproc.runtime.detecthot`), started here, before Faust is imported (their
    group joins and first fetches overlap Faust's start); ``agent`` on the earlier Faust
    agents (added by :func:`add_topologies`).
    """
    metrics = metrics or WorkerMetrics()
    topologies = [load_topology(p) for p in paths]
    names = [t.name for t in topologies]
    if len(set(names)) != len(names):
        raise ConfigError("two topologies share a name: " + ", ".join(sorted(names)))
    if audit is not None:
        audit.append(
            AuditKind.WORKER_START,
            worker=app_id,
            host=socket.gethostname().split(".")[0],
            pid=os.getpid(),
            topologies=[t.name for t in topologies],
            topics=sorted({t.source.topic for t in topologies}),
        )
    sanitize = [t for t in topologies if t.kind != "detect"]
    flows = _sanitize_flows(app_id, settings, sanitize, audit, engine)
    prepared = Prepared(app_id, topologies, flows, metrics, audit, engine, offload_processes)
    if engine != "hotpath":
        return prepared
    try:
        if flows:
            prepared.hot = start_hot_path(
                app_id, settings, flows, metrics, instance=instance, audit=audit,
                offload=offload_processes, commit_when_caught_up=commit_when_caught_up,
            )  # fmt: skip
            prepared.signals = prepared.hot.signals
        for topo in topologies:
            if topo.kind == "detect":
                # Imported here: scikit-learn and scipy (seconds), for detect topologies only.
                from streamproc.runtime.detecthot import start_detect

                if prepared.signals is None:
                    prepared.signals = EarlySignals()
                    prepared.signals.install()
                prepared.detect.append(start_detect(app_id, settings, topo, metrics, audit))
    except BaseException:
        prepared.abandon()
        raise
    return prepared


def add_topologies(app: faust.App, settings: Settings, prepared: Prepared) -> WorkerMetrics:
    """Add the prepared topologies to ``app``: the ``agent`` engine's detectors and
    sanitizers, the hot paths' shutdown, the audit timer and the lineage events."""
    metrics, audit = prepared.metrics, prepared.audit
    for topo in prepared.topologies:
        if topo.kind == "detect" and prepared.engine != "hotpath":
            # Imported here: scikit-learn and scipy (seconds), for detect topologies only.
            from streamproc.runtime.detector import add_detector

            add_detector(app, topo, settings, metrics, audit)
    if prepared.engine != "hotpath":
        from streamproc.runtime.sanitizer import add_sanitizer  # Faust's agent engine only

        n = prepared.offload_processes
        for flow in prepared.flows:
            topo = flow.topology
            offload = FlowProcess(topo.path, settings, flow) if n else None
            add_sanitizer(
                app, flow, metrics, partitions=topo.source.partitions, audit=audit, offload=offload
            )
    for started in (*prepared.detect, prepared.hot):
        if started is not None:
            attach_hot_path(app, started)
    if audit is not None:
        _add_audit_tasks(app, audit, metrics)
    events = [(f.topology, _lineage_event(settings, f.topology, f)) for f in prepared.flows]
    _add_lineage_task(app, events)
    return metrics


def _sanitize_flows(
    app_id: str,
    settings: Settings,
    topologies: Sequence[Topology],
    audit: AuditLog | None,
    engine: str,
) -> list[SanitizeFlow]:
    """Compile each sanitize topology (and audit what was loaded)."""
    if not topologies:
        return []
    if settings.keyring is None:
        raise ConfigError("a sanitize topology needs a keyring (--keyring or STREAMPROC_KEYRING)")
    keyring = Keyring.load(settings.keyring)
    flows = []
    for topo in topologies:
        flow = build_flow(topo, settings, keyring)
        if engine != "hotpath" and flow.budget is not None:
            # The agent keeps its ledger in memory only: a restart would grant every subject
            # a fresh budget. Fail closed.
            raise ConfigError(
                f"topology {topo.path}: per-subject DP budgets ({topo.source.schema}) need "
                "the hot path engine, which keeps the ledger durable; drop --engine agent"
            )
        if audit is not None:
            _audit_loaded(audit, app_id, topo, flow)
        log.info(
            "topology %s loaded: %s -> %s (policy %s)",
            topo.name,
            topo.source.topic,
            topo.sink.topic,
            flow.plan.fingerprint,
        )
        flows.append(flow)
    return flows


def _lineage_event(settings: Settings, topo: Topology, flow: SanitizeFlow) -> str:
    """The OpenLineage START event of one sanitize flow, as JSON."""
    # Imported here: the OpenLineage client is a large import, done while the hot path
    # (started before it) joins its group.
    from streamproc.lineage import run_event, to_json

    event = run_event(
        topology_name=topo.name,
        namespace=settings.broker,
        source_topic=topo.source.topic,
        sink_topic=topo.sink.topic,
        lineage=flow.plan.lineage,
        policy_fingerprint=flow.plan.fingerprint,
        key_versions=flow.plan.key_versions,
        run_id=str(uuid.uuid4()),
        anonymity=_stream_anonymity(topo, flow),
    )
    return to_json(event)


def _stream_anonymity(topo: Topology, flow: SanitizeFlow) -> dict[str, Any] | None:
    """The facet's bound for the worker: the schema's, with the delay the deployment runs
    (measured figures are metrics in a stream: streamproc_information_loss and others)."""
    spec = flow.anonymity
    if spec is None:
        return None
    delay = spec.privacy.max_delay_ms
    if topo.anonymity.max_delay_ms is not None:
        delay = min(delay, topo.anonymity.max_delay_ms)
    return {**spec.facet(), "maxDelayMs": delay, "maxBuffered": topo.anonymity.max_buffered}


def _add_audit_tasks(app: faust.App, audit: AuditLog, metrics: WorkerMetrics) -> None:
    """Checkpoint the audit trail every 5 s; record the worker's stop and close it."""
    metrics.watch_audit(audit, str(app.conf.id))

    @app.timer(5.0)
    async def audit_checkpoint() -> None:
        audit.maybe_checkpoint()

    async def audit_stop(app: Any, **kwargs: Any) -> None:
        audit.append(AuditKind.WORKER_STOP, worker=str(app.conf.id), reason="shutdown")
        audit.close()

    app.on_before_shutdown.connect(audit_stop)  # type: ignore[arg-type]


def _add_lineage_task(app: faust.App, lineage_events: list[tuple[Topology, str]]) -> None:
    """Once the app runs: each flow's lineage event to its file and/or topic."""

    @app.task
    async def emit_lineage() -> None:
        for topo, doc in lineage_events:
            if topo.lineage_file is not None:
                topo.lineage_file.parent.mkdir(parents=True, exist_ok=True)
                with topo.lineage_file.open("a") as fh:
                    fh.write(doc + "\n")
            if topo.lineage_topic:
                topic = app.topic(topo.lineage_topic, value_serializer="raw", partitions=1)
                await topic.send(key=topo.name.encode(), value=doc.encode())


def _audit_loaded(audit: AuditLog, worker: str, topo: Topology, flow: SanitizeFlow) -> None:
    """Topology, policy and key versions of one flow, as audit entries."""
    plan = flow.plan
    topo_fp = hashlib.sha256(topo.path.read_bytes()).hexdigest()[:32]
    audit.append(
        AuditKind.TOPOLOGY_LOAD,
        topology=topo.name,
        fingerprint=topo_fp,
        source_topic=topo.source.topic,
        sink_topic=topo.sink.topic,
        worker=worker,
    )
    audit.append(
        AuditKind.POLICY_LOAD,
        schema=topo.source.schema.stem,
        fingerprint=plan.fingerprint,
        topology=topo.name,
        fields=len(plan.lineage),
        strict=plan.strict,
        worker=worker,
    )
    for key, version in sorted(plan.key_versions.items()):
        audit.append(
            AuditKind.KEY_VERSIONS,
            key=key,
            versions=[version],
            active=version,
            worker=worker,
            topology=topo.name,
        )
