"""``streamproc`` command: dispatches to the command groups in this package.

Each group module defines ``register(subparsers)`` which adds its sub-command(s) and sets
``func`` on the parser to a callable ``(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from streamproc.errors import StreamprocError

# Command-group modules under streamproc.cli, in the order they appear in --help.
GROUPS: tuple[str, ...] = (
    "kafka",
    "observe",
    "keys",
    "schema",
    "sanitize",
    "report",
    "reveal",
    "worker",
    "dlq",
    "detector",
    "audit",
    "acl",
    "containment",
    "demo",
)

log = logging.getLogger("streamproc")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamproc", description="A streaming privacy gateway for ML data on Kafka."
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in GROUPS:
        try:
            module = importlib.import_module(f"streamproc.cli.{name}")
        except ModuleNotFoundError as exc:
            # A group still being built is simply absent; any other missing module is a bug.
            if exc.name == f"streamproc.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(args.log_level or "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except StreamprocError as exc:
        # Messages of our own errors carry paths and names, never values.
        print(f"streamproc: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
