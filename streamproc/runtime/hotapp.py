"""Wire the batch hot path into the Faust app: start it before the app, stop it with the app.

Faust keeps the lifecycle (signals, ``on_before_shutdown``), the metrics server, the audit
timer and any detector agents; the hot path's thread owns the sanitize data path. Audit
entries for dead letters are written by the hot path's thread just before their interval
commits, with ``AuditLog.append_once``: an interval that aborts, or that a crash makes the
next owner process again, writes each entry once (the same source coordinate is skipped).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

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

if TYPE_CHECKING:
    import faust

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


def start_hot_path(
    app_id: str,
    settings: Any,
    flows: Sequence[SanitizeFlow],
    metrics: WorkerMetrics,
    *,
    instance: str | None = None,
    audit: Any | None = None,
    offload: int = 0,
    commit_when_caught_up: bool = False,
) -> StartedHotPath:
    """One hot path for all sanitize ``flows`` of the worker, its thread started now.

    Called before Faust is imported (docs/pipeline.md, "Start-up"): the hot path joins its
    group and fetches while the main thread imports and starts Faust; :func:`attach_hot_path`
    then hands its shutdown to the app.
    """
    topos = [f.topology for f in flows]
    sources = [t.source.topic for t in topos]
    if len(set(sources)) != len(sources):
        raise ConfigError("two sanitize topologies of one worker read the same source topic")
    guarantee = guarantee_of(topos)
    spec = HotPathSpec(
        # Its own group: Faust's members (the detect agents, tables) speak another assignment
        # protocol, and one group cannot mix the two (INCONSISTENT_GROUP_PROTOCOL).
        group=hot_path_group(app_id),
        guarantee=guarantee,  # type: ignore[arg-type]
        transactional_id=f"{app_id}-{instance or default_instance()}"
        if guarantee == "exactly_once"
        else None,
        commit_when_caught_up=commit_when_caught_up,
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
    # Until Faust listens for signals, a stop request is held here (and re-sent then):
    # the default SIGTERM would end the process in the middle of an interval.
    signals = EarlySignals()
    signals.install()
    return StartedHotPath(hot, run_in_thread(hot), signals)


class EarlySignals:
    """SIGTERM/SIGINT that arrive before Faust installs its handlers: held, then re-sent
    to the process once it has (Faust's handlers run the graceful shutdown)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.installed = False

    def install(self) -> None:
        """Hold the signals (main thread only; elsewhere they keep their handlers)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            signal.signal(sig, self._hold)
        self.installed = True

    def _hold(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)

    def redeliver(self) -> None:
        """Re-send what was held; called once Faust's handlers are in place."""
        held, self.pending = self.pending, []
        for sig in dict.fromkeys(held):
            os.kill(os.getpid(), sig)

    def restore(self) -> None:
        """Back to the default handlers (the worker did not get as far as Faust)."""
        if self.installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.installed = False


@dataclass
class StartedHotPath:
    """A running hot path, its thread, and the signals held until Faust takes over."""

    hot: HotPath
    thread: threading.Thread
    signals: EarlySignals

    def stop(self, timeout: float = 60.0) -> None:
        """Stop and wait (commit what is done, leave the group)."""
        self.hot.stop()
        self.thread.join(timeout)


class Stoppable(Protocol):
    """A started hot path (sanitize or detect)."""

    def stop(self, timeout: float = 60.0) -> None: ...


def attach_hot_path(app: faust.App, started: Stoppable) -> None:
    """Let ``app`` stop the hot path: before Faust's shutdown, the thread commits and leaves."""

    async def stop_hot_path(app: Any, **kwargs: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, started.stop)

    app.on_before_shutdown.connect(stop_hot_path)  # type: ignore[arg-type]
