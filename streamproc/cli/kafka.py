"""``streamproc kafka fetch|up|down|status``: the project's local broker."""

from __future__ import annotations

import argparse
import time

from streamproc.localkafka import KAFKA_VERSION, BrokerSpec, LocalKafka, fetch_jars


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kafka", help="run the local Apache Kafka broker (KRaft, loopback)")
    ks = p.add_subparsers(dest="kafka_command", metavar="ACTION", required=True)

    f = ks.add_parser("fetch", help="resolve the broker jars from Maven Central")
    f.set_defaults(func=_fetch)

    for name, func, text in (
        ("up", _up, "start the broker (no-op if it runs) and wait until it answers"),
        ("down", _down, "stop the broker cleanly"),
        ("status", _status, "say whether the broker runs and answers"),
        ("wipe", _wipe, "stop the broker and delete its data"),
    ):
        a = ks.add_parser(name, help=text)
        a.add_argument("--name", default="default", help="instance name (folder under .cache)")
        a.add_argument("--port", type=int, default=9092)
        a.add_argument("--controller-port", type=int, default=9093)
        a.add_argument("--timeout", type=float, default=60.0)
        a.set_defaults(func=func)


def _broker(args: argparse.Namespace) -> LocalKafka:
    return LocalKafka(
        BrokerSpec(name=args.name, port=args.port, controller_port=args.controller_port)
    )


def _fetch(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    libs = fetch_jars()
    print(f"Kafka {KAFKA_VERSION} jars in {libs} ({time.monotonic() - t0:.1f} s)")
    return 0


def _up(args: argparse.Namespace) -> int:
    broker = _broker(args)
    took = broker.start(timeout=args.timeout)
    state = "already running" if took == 0.0 else f"started in {took:.1f} s"
    print(f"Kafka {KAFKA_VERSION} {state}; bootstrap: {broker.spec.bootstrap}")
    return 0


def _down(args: argparse.Namespace) -> int:
    broker = _broker(args)
    print("Kafka stopped" if broker.stop(timeout=args.timeout) else "Kafka was not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    broker = _broker(args)
    if broker.is_running() and broker.ready():
        print(f"Kafka runs (pid {broker.pid()}); bootstrap: {broker.spec.bootstrap}")
        return 0
    print("Kafka is not running")
    return 1


def _wipe(args: argparse.Namespace) -> int:
    _broker(args).wipe()
    print("Kafka stopped and its data removed")
    return 0
