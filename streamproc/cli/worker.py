"""``streamproc worker``: a Faust worker running every topology it is given.

Sanitize and detect topologies run on batch hot paths (docs/delivery.md, docs/detector.md),
or with ``--engine agent`` as Faust agents; the consumer group defaults to one derived from
the topologies.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
from typing import TYPE_CHECKING, Any

from streamproc.config import Settings, load_settings
from streamproc.config.topology import Topology, default_app_id, load_topology
from streamproc.errors import ConfigError
from streamproc.metrics import WorkerMetrics

if TYPE_CHECKING:
    from streamproc.runtime.wiring import Prepared

log = logging.getLogger("streamproc.worker")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run a streamproc Faust worker")
    p.add_argument(
        "--topology",
        action="append",
        default=[],
        metavar="T.yaml",
        help="topology file (repeatable)",
    )
    p.add_argument(
        "--offload",
        default="auto",
        help="helper processes that sanitize beside the hot path's thread, per topology: N, "
        "0 (inline) or auto (hot path: one per CPU the worker may use beyond the thread's "
        "own, when it may use 3 or more, else 0; the Faust agent engine: 1 with 2 or more). "
        "With 1 on the hot path the thread sanitizes every other partition itself",
    )
    p.add_argument(
        "--eos-commit",
        choices=("interval", "caught-up"),
        default="interval",
        help="exactly_once hot path: commit each transaction at the commit interval's end "
        "(default), or also as soon as the worker has caught up (stateless topologies; "
        "lower latency only where commits take well under the interval, docs/delivery.md)",
    )
    p.add_argument("--broker", help="bootstrap servers (default STREAMPROC_BROKER)")
    p.add_argument("--keyring", help="keyring file (default STREAMPROC_KEYRING)")
    p.add_argument(
        "--app-id",
        help="Faust app id = consumer group (default: derived from the topologies, "
        "streamproc-<names>-<hash>)",
    )
    p.add_argument(
        "--instance",
        help="this worker's name in its transactional id <app-id>-<instance> (exactly_once; "
        "default STREAMPROC_INSTANCE or the host name; unique per worker of one app)",
    )
    p.add_argument(
        "--engine",
        choices=("hotpath", "agent"),
        default="hotpath",
        help="sanitize and detect on the batch hot paths (default) or on the earlier Faust agents",
    )
    p.add_argument("--metrics-port", type=int, help="Prometheus port (0 = off)")
    p.add_argument(
        "--enforce",
        action="store_true",
        help="detector: contain principals with DENY ACLs, not only containment messages",
    )
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(
        broker=args.broker,
        keyring=args.keyring,
        metrics_port=args.metrics_port,
        enforce=args.enforce or None,
    )
    if not args.topology:
        raise ConfigError("worker needs at least one --topology")
    # The runtime is imported here, not at the top: every other CLI command starts without
    # loading it. Faust comes after the hot path is running (its group join and first fetch
    # overlap Faust's import and start; docs/pipeline.md, "Start-up").
    from streamproc.runtime.wiring import open_audit, prepare_topologies

    metrics = WorkerMetrics()
    topologies = [load_topology(p) for p in args.topology]
    app_id = args.app_id or _default_app_id(topologies)
    audit = open_audit(settings, app_id)
    prepared = prepare_topologies(
        settings,
        args.topology,
        app_id,
        metrics=metrics,
        audit=audit,
        offload_processes=_offload(args.offload, args.engine),
        commit_when_caught_up=args.eos_commit == "caught-up",
        engine=args.engine,
        instance=args.instance or os.environ.get("STREAMPROC_INSTANCE") or None,
    )
    try:
        worker = _faust_worker(args, settings, prepared)
    except BaseException:
        prepared.abandon()
        raise
    # The app, its compiled plans and imported modules live as long as the process: freeze
    # them so that full collections do not walk them (tail latency; docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    worker.execute_from_commandline()
    return 0


def _faust_worker(args: argparse.Namespace, settings: Settings, prepared: Prepared) -> Any:
    """The Faust app and worker around the prepared topologies (Faust imported here)."""
    from streamproc.runtime.app import StreamprocWorker, create_app
    from streamproc.runtime.wiring import add_topologies

    app = create_app(prepared.app_id, settings)
    if args.engine == "hotpath":
        # Every topology is on a hot path, no Faust agent reads a topic: Faust runs its
        # producer, timers and tasks only, and the detect hot paths' consumers are the
        # members of the app's group (the sanitize hot path has its own).
        app.producer_only = True
    add_topologies(app, settings, prepared)
    prepared.metrics.serve(settings.metrics_port, settings.metrics_addr)
    return StreamprocWorker(app, early_signals=prepared.signals, loglevel=args.loglevel, quiet=True)


def _default_app_id(topologies: list[Topology]) -> str:
    """streamproc-<names>-<hash> of the topologies (see ``config.topology.default_app_id``)."""
    return default_app_id(topologies) if topologies else "streamproc"


def _offload(choice: str, engine: str = "hotpath") -> int:
    """Helper processes per topology. ``auto`` leaves the hot path's thread a core of its
    own: on 2 CPUs, 2 helpers and the thread contend for the same two, which measured
    slower than inline (docs/benchmarks.md)."""
    cpus = len(os.sched_getaffinity(0))
    if choice == "auto":
        if engine != "hotpath":
            return 1 if cpus >= 2 else 0  # the agent engine uses at most one
        return cpus - 1 if cpus >= 3 else 0
    try:
        n = int(choice)
    except ValueError:
        raise ConfigError(f"--offload wants auto or a number, got {choice!r}") from None
    if n < 0:
        raise ConfigError("--offload must be >= 0")
    return n
