"""Wire the batch hot path into the Faust app: start it with the app, stop it with the app.

Faust keeps the lifecycle (signals, ``on_before_shutdown``), the metrics server, the audit
timer and any detector agents; the hot path's thread owns the sanitize data path. Audit
entries for dead letters are written by the hot path's thread just before their interval
commits, with ``AuditLog.append_once``: an interval that aborts, or that a crash makes the
next owner process again, writes each entry once (the same source coordinate is skipped).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Any

import faust

from streamproc.audit import AuditKind
from streamproc.config.topology import Topology, safe_name
from streamproc.errors import ConfigError
from streamproc.metrics import WorkerMetrics
from streamproc.pipeline import SanitizeFlow
from streamproc.runtime.budgeted import BudgetState, budget_topic_name
from streamproc.runtime.grouped import Grouping, state_topic_name
from streamproc.runtime.hotpath import (
    BlockingFlowProcess,
    HotPath,
    HotPathSpec,
    Route,
    ensure_outputs,
    run_in_thread,
    share_thread,
)
from streamproc.runtime.statetopic import StateTopic

log = logging.getLogger("streamproc.runtime.hotapp")


def hot_path_group(app_id: str) -> str:
    """The consumer group of a worker's sanitize hot path: ``<app id>-sanitize``."""
    return f"{app_id}-sanitize"


def default_instance() -> str:
    """This worker's instance name in its transactional id: the short host name.

    Stable across restarts on one host (a restart aborts the transaction its killed
    predecessor left open); workers sharing a host need their own ``--instance``.
    """
    return safe_name(socket.gethostname().split(".")[0]) or "worker"


def guarantee_of(topologies: Sequence[Topology]) -> str:
    """The one guarantee of a worker's sanitize topologies (one producer per worker)."""
    found = {t.processing_guarantee for t in topologies}
    if len(found) > 1:
        names = ", ".join(f"{t.path} ({t.processing_guarantee})" for t in topologies)
        raise ConfigError(
            "the sanitize topologies of one worker must share processing_guarantee "
            f"(one producer per worker): {names}; run them in separate workers"
        )
    return found.pop() if found else "at_least_once"


def add_hot_path(
    app: faust.App,
    settings: Any,
    flows: Sequence[SanitizeFlow],
    metrics: WorkerMetrics,
    *,
    instance: str | None = None,
    audit: Any | None = None,
    offload: int = 0,
) -> HotPath:
    """One hot path for all sanitize ``flows`` of the worker; started and stopped by ``app``."""
    topos = [f.topology for f in flows]
    sources = [t.source.topic for t in topos]
    if len(set(sources)) != len(sources):
        raise ConfigError("two sanitize topologies of one worker read the same source topic")
    guarantee = guarantee_of(topos)
    app_id = str(app.conf.id)
    spec = HotPathSpec(
        # Its own group: Faust's members (the detect agents, tables) speak another assignment
        # protocol, and one group cannot mix the two (INCONSISTENT_GROUP_PROTOCOL).
        group=hot_path_group(app_id),
        guarantee=guarantee,  # type: ignore[arg-type]
        transactional_id=f"{app_id}-{instance or default_instance()}"
        if guarantee == "exactly_once"
        else None,
    )
    conf = settings.kafka_config()
    state_topics: dict[str, list[str]] = {}
    for f in flows:
        name = f.topology.name
        if f.anonymity is not None:
            state_topics.setdefault(name, []).append(state_topic_name(app_id, name))
        if f.budget is not None:
            state_topics.setdefault(name, []).append(budget_topic_name(app_id, name))
    counts = ensure_outputs(conf, flows, state_topics)
    eos = guarantee == "exactly_once"

    def state(name: str) -> StateTopic:
        return StateTopic(name, counts[name], eos, conf, spec.group)

    routes = {}
    for flow in flows:
        topo = flow.topology
        # Stateful routes run in this process (never offloaded): the k-anonymity buffers,
        # and one keyed DP ledger per worker, both persisted with the route's offsets.
        grouping = None
        if flow.anonymity is not None:
            grouping = Grouping(flow, state(state_topic_name(app_id, topo.name)))
        budget = None
        if flow.budget is not None:
            budget = BudgetState(flow, state(budget_topic_name(app_id, topo.name)))
        n_helpers = 0 if grouping is not None or budget is not None else offload
        helpers = [BlockingFlowProcess(topo.path, settings, flow) for _ in range(n_helpers)]
        routes[topo.source.topic] = Route(
            flow,
            helpers,
            thread_share=share_thread(len(helpers)),
            sink_partitions=counts[topo.sink.topic],
            dlq_partitions=counts[topo.dead_letter],
            grouping=grouping,
            budget=budget,
        )

    def audit_dead_letters(entries: list[dict[str, Any]]) -> None:
        # From the hot path's thread, before the interval commits (the log is thread-safe);
        # idempotent per source coordinate, so a re-processed interval is audited once.
        assert audit is not None
        for e in entries:
            audit.append_once(AuditKind.DEAD_LETTER, **e)

    hot = HotPath(
        spec,
        routes,
        conf,
        metrics,
        on_dead_letter=audit_dead_letters if audit is not None else None,
    )
    threads = []

    @app.task
    async def start_hot_path() -> None:
        threads.append(run_in_thread(hot))

    async def stop_hot_path(app: Any, **kwargs: Any) -> None:
        hot.stop()
        if threads:
            await asyncio.get_running_loop().run_in_executor(None, threads[0].join, 60)

    app.on_before_shutdown.connect(stop_hot_path)  # type: ignore[arg-type]
    return hot
