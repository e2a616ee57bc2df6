"""``streamproc reveal``: decrypt ``encrypt`` tokens for authorized use.

Either tokens on the command line, or every token in a sanitized Avro container file (printed
as JSON lines). A reason is required; the call is logged with who and why (never values).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import decimal
import getpass
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import fastavro

from streamproc.config import load_keyring
from streamproc.errors import ConfigError, DecodeError, RevealError
from streamproc.keys import Keyring
from streamproc.transforms.encrypt import is_token, reveal

log = logging.getLogger("streamproc.reveal")


def register(sub: Any) -> None:
    p = sub.add_parser("reveal", help="decrypt encrypted values (authorized use, logged)")
    p.add_argument("tokens", nargs="*", metavar="TOKEN", help="enc:... tokens to decrypt")
    p.add_argument("--keyring", type=Path, default=None, help="or STREAMPROC_KEYRING")
    p.add_argument("--reason", required=True, help="why (recorded in the log/audit trail)")
    p.add_argument("--user", default=None, help="who (default: the login name)")
    p.add_argument(
        "--in",
        dest="input",
        type=Path,
        default=None,
        metavar="FILE.avro",
        help="reveal every token in a sanitized container file (JSON lines on stdout)",
    )
    p.set_defaults(func=_reveal)


def _reveal(args: argparse.Namespace) -> int:
    if not args.tokens and args.input is None:
        raise ConfigError("reveal: give TOKEN(s) or --in FILE.avro")
    keyring = load_keyring(args.keyring)
    user = args.user or getpass.getuser()
    count = 0
    for token in args.tokens:
        print(_to_json(reveal(token, keyring)))
        count += 1
    if args.input is not None:
        count += _reveal_file(args.input, keyring)
    log.info("reveal: user=%s reason=%r values=%d", user, args.reason, count)
    return 0


def _reveal_file(path: Path, keyring: Keyring) -> int:
    count = [0]

    def walk(value: Any) -> Any:
        if is_token(value):
            count[0] += 1
            return reveal(value, keyring)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    try:
        with path.open("rb") as fh:
            for record in fastavro.reader(fh):
                sys.stdout.write(_to_json(walk(record)) + "\n")
    except BrokenPipeError:
        return count[0]  # stdout closed early (e.g. piped into head)
    except OSError as exc:
        raise RevealError(f"{path}: cannot be read ({exc.strerror})") from None
    except (ValueError, EOFError):
        raise DecodeError(f"{path}: not an Avro object container file") from None
    return count[0]


def _to_json(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(type(value).__name__)
