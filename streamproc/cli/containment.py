"""``streamproc containment enforce|release|status``: DENY ACLs on the data topics."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamproc.acl import contained, data_topics, enforce, release
from streamproc.cli._acl_args import (
    DEFAULT_PRINCIPALS,
    add_admin_args,
    admin_from_args,
    audit_from_args,
    load_topologies,
    operator,
)


def _add_topology_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--topology",
        action="append",
        default=[],
        metavar="T.yaml",
        help="topology whose raw, sanitized and dead-letter topics are denied (repeatable; "
        "default: every topology beside the principals file)",
    )
    p.add_argument("--principals", type=Path, default=DEFAULT_PRINCIPALS, help=argparse.SUPPRESS)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("containment", help="contain a principal with DENY ACLs, or release it")
    acts = p.add_subparsers(dest="containment_command", metavar="ACTION", required=True)

    e = acts.add_parser("enforce", help="deny PRINCIPAL READ and WRITE on the data topics")
    e.add_argument("principal", metavar="PRINCIPAL", help="alice or User:alice")
    _add_topology_args(e)
    add_admin_args(e)
    e.add_argument("--reason", default="manual", help="identifier for the audit trail")
    e.add_argument("--incident", help="incident id (e.g. the containment message's id)")
    e.set_defaults(func=_enforce)

    r = acts.add_parser("release", help="lift the containment of PRINCIPAL")
    r.add_argument("principal", metavar="PRINCIPAL", help="alice or User:alice")
    r.add_argument(
        "--topology",
        action="append",
        default=[],
        metavar="T.yaml",
        help="release only these topologies' topics (default: every denied topic)",
    )
    add_admin_args(r)
    r.add_argument("--why", help="justification for the audit trail")
    r.add_argument("--incident", help="incident id")
    r.set_defaults(func=_release, principals=DEFAULT_PRINCIPALS)

    s = acts.add_parser("status", help="list contained principals and their denied topics")
    s.add_argument("principal", nargs="?", metavar="PRINCIPAL")
    add_admin_args(s)
    s.set_defaults(func=_status)


def _enforce(args: argparse.Namespace) -> int:
    topics = data_topics(load_topologies(args))
    admin = admin_from_args(args)
    audit = audit_from_args(args)
    try:
        res = enforce(
            admin,
            args.principal,
            topics,
            reason=args.reason,
            incident=args.incident,
            by=operator(),
            audit=audit,
            timeout=args.timeout,
        )
    finally:
        if audit is not None:
            audit.close()
    print(
        f"{res.principal} contained: READ and WRITE denied on {', '.join(res.topics)} "
        f"({res.changes} new bindings)"
    )
    return 0


def _release(args: argparse.Namespace) -> int:
    topics = data_topics(load_topologies(args)) if args.topology else None
    admin = admin_from_args(args)
    audit = audit_from_args(args)
    try:
        res = release(
            admin,
            args.principal,
            topics,
            by=operator(),
            why=args.why,
            incident=args.incident,
            audit=audit,
            timeout=args.timeout,
        )
    finally:
        if audit is not None:
            audit.close()
    if res.changes:
        print(f"{res.principal} released on {', '.join(res.topics)} ({res.changes} bindings)")
    else:
        print(f"{res.principal} was not contained")
    return 0


def _status(args: argparse.Namespace) -> int:
    found = contained(admin_from_args(args), args.principal, timeout=args.timeout)
    for principal, topics in found.items():
        print(f"{principal}: {', '.join(topics)}")
    if not found:
        print("no principal is contained")
    return 0
