"""``streamproc`` command: dispatches to the command groups in this package.

Each group module defines ``register(subparsers)`` which adds its sub-command(s) and sets
``func`` on the parser to a callable ``(args) -> int``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from streamproc.cli import (
    acl,
    audit,
    containment,
    demo,
    detector,
    dlq,
    kafka,
    keys,
    observe,
    report,
    reveal,
    risk,
    sanitize,
    schema,
    worker,
)
from streamproc.errors import StreamprocError

# Command groups, in the order they appear in --help.
GROUPS: tuple[ModuleType, ...] = (
    kafka,
    observe,
    keys,
    schema,
    sanitize,
    report,
    reveal,
    risk,
    worker,
    dlq,
    detector,
    audit,
    acl,
    containment,
    demo,
)

log = logging.getLogger("streamproc")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamproc", description="A streaming privacy gateway for ML data on Kafka."
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in GROUPS:
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
