"""``streamproc worker``: a Faust worker running one agent per topology."""

from __future__ import annotations

import argparse
import gc
import logging
import os

from streamproc.config import load_settings
from streamproc.errors import ConfigError

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
        choices=("auto", "0", "1"),
        default="auto",
        help="sanitize in a helper process beside the event loop: 1, 0 (inline) or auto "
        "(on when the worker may use 2 or more CPUs)",
    )
    p.add_argument("--broker", help="bootstrap servers (default STREAMPROC_BROKER)")
    p.add_argument("--keyring", help="keyring file (default STREAMPROC_KEYRING)")
    p.add_argument("--app-id", default="streamproc", help="Faust app id = consumer group")
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
    # Faust and the runtime are imported here, not at the top: every other CLI command
    # starts without loading them (start-up time of `streamproc --help`, `sanitize`, ...).
    import faust

    from streamproc.metrics import WorkerMetrics
    from streamproc.runtime.app import create_app
    from streamproc.runtime.wiring import add_topologies, open_audit

    metrics = WorkerMetrics()
    app = create_app(args.app_id, settings)
    audit = open_audit(settings, args.app_id)
    add_topologies(
        app,
        settings,
        args.topology,
        metrics=metrics,
        audit=audit,
        offload_processes=_offload(args.offload),
    )
    metrics.serve(settings.metrics_port, settings.metrics_addr)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    # The app, its compiled plans and imported modules live as long as the process: freeze
    # them so that full collections do not walk them (tail latency; docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    worker.execute_from_commandline()
    return 0


def _offload(choice: str) -> int:
    if choice == "auto":
        return 1 if len(os.sched_getaffinity(0)) >= 2 else 0
    return int(choice)
