"""Build a worker's agents from topology files (compile everything once, at start-up)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust

from streamproc.config import Settings
from streamproc.errors import ConfigError
from streamproc.metrics import WorkerMetrics
from streamproc.topology import Topology, load_topology

log = logging.getLogger("streamproc.worker")


def registry_client(url: str | None) -> Any | None:
    """A Confluent Schema Registry client (``mock://`` gives confluent-kafka's in-memory one)."""
    if not url:
        return None
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient.new_client({"url": url})


def build_flow(topology: Topology, settings: Settings, keyring: Any) -> Any:
    """Compile one sanitize topology into a SanitizeFlow (plan, codecs, registry)."""
    from fastavro import parse_schema

    from streamproc.avro.schema import read_schema_json
    from streamproc.flow import SanitizeFlow
    from streamproc.policy import compile_plan

    plan = compile_plan(
        topology.source.schema, keyring, strict=topology.strict, tag_actions=topology.tags or None
    )
    history = tuple(parse_schema(read_schema_json(p)[0]) for p in topology.source.history)
    registry = registry_client(topology.registry_url or settings.schema_registry_url)
    sink_id = None
    if topology.write_framing == "confluent":
        if registry is None:
            raise ConfigError(
                f"{topology.path}: key 'write_framing': confluent needs a registry "
                "(key 'registry.url' or STREAMPROC_SCHEMA_REGISTRY_URL)"
            )
        from confluent_kafka.schema_registry import Schema

        sink_id = registry.register_schema(
            f"{topology.sink.topic}-value", Schema(json.dumps(plan.derived_schema_json), "AVRO")
        )
    return SanitizeFlow(
        topology, plan, keyring, history=history, registry=registry, sink_schema_id=sink_id
    )


def open_audit(settings: Settings, app_id: str) -> Any | None:
    """The worker's audit log, or None when no signing key is configured.

    One writer per trail: the default topic is ``streamproc.audit.<app id>``; a deployment
    with several instances of one app gives each its own ``STREAMPROC_AUDIT_TOPIC`` or file.
    """
    if settings.audit_signing_key is None:
        log.warning("audit trail off: set STREAMPROC_AUDIT_SIGNING_KEY to record it")
        return None
    from streamproc.audit import (
        AuditLog,
        CheckpointSigner,
        FileSink,
        KafkaSink,
        create_audit_topic,
    )

    sink: Any
    if settings.audit_file is not None:
        sink = FileSink(settings.audit_file)
    else:
        topic = settings.audit_topic or f"streamproc.audit.{app_id}"
        conf = settings.kafka_config()
        create_audit_topic(conf, topic)
        sink = KafkaSink(topic, conf)
    return AuditLog(
        sink,
        CheckpointSigner.from_file(settings.audit_signing_key),
        checkpoint_every=settings.audit_checkpoint_every,
    )


def add_topologies(
    app: faust.App,
    settings: Settings,
    paths: Sequence[str | Path],
    *,
    metrics: WorkerMetrics | None = None,
    audit: Any | None = None,
    offload_processes: int = 0,
    engine: str = "hotpath",
    instance: str | None = None,
) -> WorkerMetrics:
    """Load, validate and compile every topology, then add its agent to ``app``.

    ``engine``: ``hotpath`` (default) runs every sanitize topology on the worker's batch hot
    path (:mod:`streamproc.agents.hotpath`); ``agent`` on the earlier Faust agent.
    """
    from streamproc.agents.sanitizer import add_sanitizer
    from streamproc.keys import Keyring
    from streamproc.lineage import run_event, to_json

    metrics = metrics or WorkerMetrics()
    topologies = [load_topology(p) for p in paths]
    names = [t.name for t in topologies]
    if len(set(names)) != len(names):
        raise ConfigError("two topologies share a name: " + ", ".join(sorted(names)))
    if audit is not None:
        import os
        import socket

        from streamproc.audit import AuditKind

        audit.append(
            AuditKind.WORKER_START,
            worker=str(app.conf.id),
            host=socket.gethostname().split(".")[0],
            pid=os.getpid(),
            topologies=[t.name for t in topologies],
            topics=sorted({t.source.topic for t in topologies}),
        )

    keyring = None
    lineage_events: list[tuple[Topology, str]] = []
    hot_flows: list[Any] = []
    for topo in topologies:
        if topo.kind == "detect":
            from streamproc.agents.detector import add_detector

            add_detector(app, topo, settings, metrics, audit)
            continue
        if keyring is None:
            if settings.keyring is None:
                raise ConfigError(
                    "a sanitize topology needs a keyring (--keyring or STREAMPROC_KEYRING)"
                )
            keyring = Keyring.load(settings.keyring)
        flow = build_flow(topo, settings, keyring)
        if engine == "hotpath":
            hot_flows.append(flow)
        else:
            offload = None
            if offload_processes:
                from streamproc.agents.offload import FlowProcess

                offload = FlowProcess(topo.path, settings, flow)
            add_sanitizer(
                app, flow, metrics, partitions=topo.source.partitions, audit=audit, offload=offload
            )
        if audit is not None:
            _audit_loaded(audit, app.conf.id, topo, flow)
        event = run_event(
            topology_name=topo.name,
            namespace=settings.broker,
            source_topic=topo.source.topic,
            sink_topic=topo.sink.topic,
            lineage=flow.plan.lineage,
            policy_fingerprint=flow.plan.fingerprint,
            key_versions=flow.plan.key_versions,
            run_id=str(uuid.uuid4()),
        )
        lineage_events.append((topo, to_json(event)))
        log.info(
            "topology %s loaded: %s -> %s (policy %s)",
            topo.name,
            topo.source.topic,
            topo.sink.topic,
            flow.plan.fingerprint,
        )

    if hot_flows:
        from streamproc.agents.hotapp import add_hot_path

        add_hot_path(
            app,
            settings,
            hot_flows,
            metrics,
            instance=instance,
            audit=audit,
            offload=offload_processes,
        )

    if audit is not None:

        @app.timer(5.0)
        async def audit_checkpoint() -> None:
            audit.maybe_checkpoint()

        async def audit_stop(app: Any, **kwargs: Any) -> None:
            audit.append(AuditKind.WORKER_STOP, worker=str(app.conf.id), reason="shutdown")
            audit.close()

        app.on_before_shutdown.connect(audit_stop)  # type: ignore[arg-type]

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

    return metrics


def _audit_loaded(audit: Any, worker: str, topo: Topology, flow: Any) -> None:
    """Topology, policy and key versions of one flow, as audit entries."""
    import hashlib

    from streamproc.audit import AuditKind

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
