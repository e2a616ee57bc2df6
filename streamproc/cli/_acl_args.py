"""Arguments shared by ``streamproc acl`` and ``streamproc containment``."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamproc.acl import admin_client, load_principals
from streamproc.audit import AuditLog, CheckpointSigner, FileSink
from streamproc.config import load_settings
from streamproc.config.topology import load_topology
from streamproc.errors import ConfigError

if TYPE_CHECKING:
    from streamproc.acl import Principals
    from streamproc.audit import AuditLog
    from streamproc.config.topology import Topology

DEFAULT_PRINCIPALS = Path("topologies/principals.yaml")


def add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--topology",
        action="append",
        default=[],
        metavar="T.yaml",
        help="topology file (repeatable; default: every *.yaml beside the principals file)",
    )
    p.add_argument(
        "--principals",
        type=Path,
        default=DEFAULT_PRINCIPALS,
        help="principals file (default %(default)s)",
    )


def add_admin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", help="bootstrap servers (default STREAMPROC_BROKER)")
    p.add_argument("--timeout", type=float, default=30.0, help="Admin API timeout, seconds")
    p.add_argument("--audit-file", type=Path, help="append ACL changes to this audit trail file")
    p.add_argument("--audit-key", type=Path, help="Ed25519 key signing audit checkpoints")


def topology_paths(args: argparse.Namespace) -> list[Path]:
    if args.topology:
        return [Path(t) for t in args.topology]
    principals = Path(args.principals).resolve()
    paths = sorted(p for p in principals.parent.glob("*.yaml") if p.resolve() != principals)
    if not paths:
        raise ConfigError(f"no topology files beside {args.principals}; pass --topology")
    return paths


def load_topologies(args: argparse.Namespace) -> list[Topology]:
    return [load_topology(p) for p in topology_paths(args)]


def load_principals_arg(args: argparse.Namespace) -> Principals:
    return load_principals(args.principals)


def admin_from_args(args: argparse.Namespace) -> Any:
    settings = load_settings(broker=args.broker)
    return admin_client(settings.kafka_config())


def audit_from_args(args: argparse.Namespace) -> AuditLog | None:
    if args.audit_file is None:
        if args.audit_key is not None:
            raise ConfigError("--audit-key needs --audit-file")
        return None

    signer = CheckpointSigner.from_file(args.audit_key) if args.audit_key else None
    return AuditLog(FileSink(args.audit_file), signer)


def operator() -> str:
    """Who runs the command, for the audit trail (``by``)."""
    try:
        return f"User:{getpass.getuser()}"
    except (KeyError, OSError):
        return "User:unknown"
