"""``streamproc observe up|down|status``: a local Prometheus and Alertmanager on loopback."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamproc.localobserve import (
    DEFAULT_ALERTMANAGER_PORT,
    DEFAULT_PROMETHEUS_PORT,
    LocalObserve,
    ObserveSpec,
)
from streamproc.localobserve.servers import DEFAULT_TARGET, DEFAULT_WEBHOOK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "observe", help="run a local Prometheus + Alertmanager (loopback) for the worker"
    )
    os_ = p.add_subparsers(dest="observe_command", metavar="ACTION", required=True)
    up = os_.add_parser("up", help="render the configs, start both servers, wait until ready")
    up.add_argument(
        "--config",
        type=Path,
        required=True,
        help="scrape config (deploy/prometheus/prometheus.yml)",
    )
    up.add_argument(
        "--rules", type=Path, action="append", required=True, help="rule file (repeatable)"
    )
    up.add_argument(
        "--alertmanager-config",
        type=Path,
        required=True,
        help="Alertmanager route (deploy/alertmanager/alertmanager.yml)",
    )
    up.add_argument(
        "--target",
        action="append",
        default=[],
        help=f"worker /metrics address (repeatable; default {DEFAULT_TARGET})",
    )
    up.add_argument("--webhook", default=DEFAULT_WEBHOOK, help="URL Alertmanager delivers to")
    up.set_defaults(func=_up)
    for name, func, text in (
        ("down", _down, "stop both servers"),
        ("status", _status, "say whether both servers run and answer"),
    ):
        a = os_.add_parser(name, help=text)
        a.set_defaults(func=func)
    for a in os_.choices.values():
        a.add_argument("--name", default="default", help="instance name (.cache/observe/NAME)")
        a.add_argument("--prometheus-port", type=int, default=DEFAULT_PROMETHEUS_PORT)
        a.add_argument("--alertmanager-port", type=int, default=DEFAULT_ALERTMANAGER_PORT)


def _spec(args: argparse.Namespace) -> ObserveSpec:
    return ObserveSpec(
        prometheus_config=getattr(args, "config", None) or Path("."),
        rules=tuple(getattr(args, "rules", None) or ()),
        alertmanager_config=getattr(args, "alertmanager_config", None) or Path("."),
        name=args.name,
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
        targets=tuple(getattr(args, "target", None) or (DEFAULT_TARGET,)),
        webhook_url=getattr(args, "webhook", DEFAULT_WEBHOOK),
    )


def _up(args: argparse.Namespace) -> int:
    obs = LocalObserve(_spec(args))
    took = obs.start()
    s = obs.spec
    print(f"Prometheus {s.prometheus_url} and Alertmanager {s.alertmanager_url} ({took:.1f} s)")
    print(f"scraping {', '.join(s.targets)}; alerts to {s.webhook_url}; files in {obs.home}")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = LocalObserve(_spec(args)).stop()
    print("Prometheus and Alertmanager stopped" if stopped else "they were not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    obs = LocalObserve(_spec(args))
    pids = obs.pids()
    if len(pids) == 2 and obs.ready():
        s = obs.spec
        print(f"running: Prometheus {s.prometheus_url}, Alertmanager {s.alertmanager_url}")
        return 0
    print("not running" if not pids else f"partly running: {', '.join(sorted(pids))}")
    return 1
