"""``streamproc schema derive SCHEMA.avsc``: print the sanitized (derived) schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streamproc.cli._policy_args import add_policy_args, load_tag_actions
from streamproc.config import load_keyring, load_settings
from streamproc.keys import Keyring
from streamproc.policy import derive_schema


def register(sub: Any) -> None:
    schema = sub.add_parser("schema", help="work with annotated Avro schemas")
    ssub = schema.add_subparsers(dest="schema_command", metavar="ACTION", required=True)
    derive = ssub.add_parser("derive", help="print the derived (sanitized) schema")
    derive.add_argument("schema", type=Path, help="annotated .avsc file")
    derive.add_argument(
        "--keyring",
        type=Path,
        default=None,
        help="check key names against this keyring (or STREAMPROC_KEYRING); optional",
    )
    derive.add_argument("--out", type=Path, default=None, help="write to a file, not stdout")
    derive.add_argument(
        "--lineage", action="store_true", help="print the field lineage table to stderr"
    )
    add_policy_args(derive)
    derive.set_defaults(func=_derive)


def _derive(args: argparse.Namespace) -> int:
    keyring: Keyring | None = None
    if args.keyring is not None or load_settings().keyring is not None:
        keyring = load_keyring(args.keyring)
    plan = derive_schema(
        args.schema, keyring, strict=args.strict, tag_actions=load_tag_actions(args.tags)
    )
    text = json.dumps(plan.derived_schema_json, indent=2) + "\n"
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if args.lineage:
        for item in plan.lineage:
            if item.origin == "container":
                continue
            out = item.output_path or "-"
            print(
                f"{item.source_path}\t{out}\t{item.action}\t{item.privacy_class or '-'}\t"
                f"{item.origin}",
                file=sys.stderr,
            )
    return 0
