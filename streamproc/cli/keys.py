"""``streamproc keys init|rotate|list``: create and rotate the keyring (material never printed)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from streamproc.config import load_keyring
from streamproc.errors import KeyringError
from streamproc.keys import DEFAULT_NAMES, Keyring

log = logging.getLogger("streamproc.keys")


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, rotate and list keyring keys")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    init = ksub.add_parser("init", help="write a new keyring file (mode 0600)")
    init.add_argument("--out", required=True, type=Path, help="keyring file to create")
    init.add_argument(
        "--name",
        action="append",
        default=[],
        help=f"extra key name (always created: {', '.join(DEFAULT_NAMES)}); repeatable",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=_init)

    rotate = ksub.add_parser("rotate", help="add a new current version of key(s)")
    rotate.add_argument("--keyring", type=Path, default=None, help="or STREAMPROC_KEYRING")
    rotate.add_argument(
        "--name", action="append", default=[], help="key to rotate (default: every key)"
    )
    rotate.add_argument(
        "--create",
        action="store_true",
        help="add a --name that is not in the keyring yet (without it, an unknown name is an "
        "error: a typo must not create a key)",
    )
    rotate.set_defaults(func=_rotate)

    lst = ksub.add_parser("list", help="key names and versions (never material)")
    lst.add_argument("--keyring", type=Path, default=None, help="or STREAMPROC_KEYRING")
    lst.set_defaults(func=_list)


def _init(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and not args.force:
        raise KeyringError(f"keyring {out} exists; use --force to replace it")
    keyring = Keyring.generate(names=args.name)
    keyring.save(out)
    log.info("keyring created: %s (%s)", out, ", ".join(keyring.names()))
    print(f"wrote keyring {out}: {', '.join(f'{n} v1' for n in keyring.names())}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    keyring = load_keyring(args.keyring)
    names = args.name or list(keyring.names())
    unknown = [n for n in names if n not in keyring]
    if unknown and not args.create:
        raise KeyringError(
            f"keyring {keyring.path} has no key {', '.join(map(repr, unknown))} "
            f"(keys: {', '.join(keyring.names())}); add --create to create it"
        )
    rotated = [(n, keyring.rotate(n)) for n in names]
    keyring.save()
    summary = ", ".join(f"{n} -> v{v}" for n, v in rotated)
    log.info("keys rotated in %s: %s", keyring.path, summary)
    print(f"rotated {summary} in {keyring.path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    keyring = load_keyring(args.keyring)
    for name in keyring.names():
        versions = ",".join(str(v) for v in keyring.versions(name))
        print(f"{name}\tcurrent=v{keyring.current_version(name)}\tversions={versions}")
    return 0
