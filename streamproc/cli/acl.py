"""``streamproc acl plan|apply``: least-privilege ACLs derived from topologies + principals."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from streamproc.acl import apply_plan, plan_acls
from streamproc.cli._acl_args import (
    add_admin_args,
    add_source_args,
    admin_from_args,
    audit_from_args,
    load_principals_arg,
    load_topologies,
    operator,
)

if TYPE_CHECKING:
    from streamproc.acl import AclPlan


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("acl", help="least-privilege Kafka ACLs derived from the topologies")
    acts = p.add_subparsers(dest="acl_command", metavar="ACTION", required=True)

    plan = acts.add_parser("plan", help="print the ACL bindings the topologies imply")
    add_source_args(plan)
    plan.add_argument("--json", action="store_true", help="one JSON object per binding")
    plan.set_defaults(func=_plan)

    apply = acts.add_parser(
        "apply", help="create missing bindings, delete stale managed ones (idempotent)"
    )
    add_source_args(apply)
    add_admin_args(apply)
    apply.add_argument("--dry-run", action="store_true", help="print the changes only")
    apply.set_defaults(func=_apply)


def _make_plan(args: argparse.Namespace) -> AclPlan:
    return plan_acls(load_topologies(args), load_principals_arg(args))


def _plan(args: argparse.Namespace) -> int:
    plan = _make_plan(args)
    for b in plan.sorted():
        print(json.dumps(b.as_dict(), sort_keys=True) if args.json else str(b))
    if not args.json:
        print(f"{len(plan.bindings)} bindings for {len(plan.managed)} managed principals")
    return 0


def _apply(args: argparse.Namespace) -> int:
    plan = _make_plan(args)
    admin = admin_from_args(args)
    audit = None if args.dry_run else audit_from_args(args)
    try:
        diff = apply_plan(
            admin, plan, dry_run=args.dry_run, audit=audit, by=operator(), timeout=args.timeout
        )
    finally:
        if audit is not None:
            audit.close()
    verb = "would " if args.dry_run else ""
    for b in diff.create:
        print(f"{verb}create  {b}")
    for b in diff.delete:
        print(f"{verb}delete  {b}")
    print(
        f"{verb}create {len(diff.create)}, {verb}delete {len(diff.delete)}, "
        f"unchanged {diff.unchanged}"
    )
    return 0
