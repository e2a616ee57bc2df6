"""``streamproc`` command: dispatches to the command groups in this package.

Each group module defines ``register(subparsers)`` which adds its sub-command (named like
the module) and sets ``func`` on the parser to a callable ``(args) -> int``. Only the module
of the command being run is imported: the groups' dependencies differ a lot (``demo`` and
``report`` load scipy and scikit-learn, seconds of a worker's start-up; docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from streamproc.errors import StreamprocError

# Command groups (= their module in streamproc.cli), in the order they appear in --help.
GROUPS: tuple[str, ...] = (
    "kafka",
    "observe",
    "keys",
    "schema",
    "sanitize",
    "report",
    "reveal",
    "risk",
    "worker",
    "dlq",
    "detector",
    "audit",
    "acl",
    "containment",
    "demo",
)

log = logging.getLogger("streamproc")


def _command_of(argv: Sequence[str] | None) -> str | None:
    """The command group ``argv`` names, if it names one (else None: all are registered)."""
    args = iter(argv or ())
    for arg in args:
        if arg == "--log-level":
            next(args, None)  # its value
        elif not arg.startswith("-"):
            return arg if arg in GROUPS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: only its command's group, or every group (``--help``)."""
    command = _command_of(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="streamproc", description="A streaming privacy gateway for ML data on Kafka."
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (command,) if command else GROUPS:
        importlib.import_module(f"streamproc.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
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
