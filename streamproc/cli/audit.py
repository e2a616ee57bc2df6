"""``streamproc audit keygen|verify|show|anchor``: the tamper-evident audit trail."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from streamproc.audit.encoding import Checkpoint, Entry, MalformedRecord, parse_record
from streamproc.audit.signing import TrustedKeys, write_keypair
from streamproc.audit.sinks import read_file, read_topic
from streamproc.audit.verify import Report, verify_records
from streamproc.config import load_settings
from streamproc.errors import AuditError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="tamper-evident audit trail: keys, verification, reading")
    acts = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    k = acts.add_parser("keygen", help="generate the Ed25519 checkpoint signing key pair")
    k.add_argument("--out", type=Path, required=True, help="directory for the two PEM files")
    k.add_argument("--name", default="audit-signing", help="file name stem (default %(default)s)")
    k.add_argument("--force", action="store_true", help="overwrite existing files")
    k.set_defaults(func=_keygen)

    v = acts.add_parser(
        "verify",
        help="verify a trail; exit 0 verified, 1 tampered, 3 unsigned tail only",
    )
    _source_args(v)
    v.add_argument(
        "--public-key",
        type=Path,
        action="append",
        required=True,
        help="trusted Ed25519 public key (PEM); repeat for rotated keys",
    )
    v.add_argument(
        "--anchor",
        default=None,
        help="N:HASH of a checkpoint kept elsewhere (from `audit anchor`); detects truncation",
    )
    v.add_argument(
        "--allow-unsigned-tail",
        action="store_true",
        help="exit 0 when the only remark is entries after the last checkpoint (a live trail)",
    )
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=_verify)

    s = acts.add_parser("show", help="print entries (and checkpoints) in readable form")
    _source_args(s)
    s.add_argument("--last", type=int, default=None, help="only the last N records")
    s.add_argument("--kind", default=None, help="only entries of this kind (e.g. reveal)")
    s.add_argument("--checkpoints", action="store_true", help="include checkpoints")
    s.set_defaults(func=_show)

    a = acts.add_parser(
        "anchor", help="verify, then print N:HASH of the last checkpoint to keep elsewhere"
    )
    _source_args(a)
    a.add_argument("--public-key", type=Path, action="append", required=True)
    a.set_defaults(func=_anchor)


def _source_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", type=Path, help="audit trail file (JSON lines)")
    src.add_argument("--topic", help="audit topic (single partition)")
    p.add_argument("--broker", default=None, help="bootstrap servers (default from settings)")


def _records(args: argparse.Namespace, last: int | None = None) -> Iterator[tuple[int, bytes]]:
    if args.file is not None:
        if not args.file.exists():
            raise AuditError(f"audit file {args.file} does not exist")
        records = read_file(args.file)
        if last is None:
            return records
        return iter(list(records)[-last:])
    conf = load_settings(broker=args.broker).kafka_config()
    return read_topic(args.topic, conf, last=last)


def _source(args: argparse.Namespace) -> tuple[str, str]:
    if args.file is not None:
        return str(args.file), "line"
    return f"topic {args.topic}", "offset"


def _parse_anchor(text: str) -> tuple[int, str]:
    n, sep, digest = text.partition(":")
    if not sep or not n.isdigit() or len(digest) != 64:
        raise AuditError("--anchor must be N:HASH (checkpoint number, 64 hex digits)")
    return int(n), digest.lower()


def _keygen(args: argparse.Namespace) -> int:
    private = args.out / f"{args.name}.pem"
    public = args.out / f"{args.name}.pub.pem"
    kid = write_keypair(private, public, overwrite=args.force)
    print(f"private key: {private} (mode 600; keep it only where the writer runs)")
    print(f"public key:  {public}")
    print(f"key id:      {kid}")
    return 0


def _run_verify(args: argparse.Namespace, anchor: tuple[int, str] | None) -> Report:
    trusted = TrustedKeys.from_files(args.public_key)
    source, unit = _source(args)
    return verify_records(_records(args), trusted, source=source, unit=unit, anchor=anchor)


def _verify(args: argparse.Namespace) -> int:
    anchor = _parse_anchor(args.anchor) if args.anchor else None
    report = _run_verify(args, anchor)
    if args.json:
        print(json.dumps(_report_json(report), indent=2))
    else:
        print(report.render())
        c = report.last_checkpoint
        if c is not None and report.ok:
            print(f"  anchor: {c.n}:{c.hash}")
    return report.exit_code(allow_unsigned_tail=args.allow_unsigned_tail)


def _report_json(r: Report) -> dict[str, object]:
    c = r.last_checkpoint
    return {
        "source": r.source,
        "ok": r.ok,
        "entries": r.entries,
        "checkpoints": r.checkpoints,
        "head": {"seq": r.head_seq, "hash": r.head_hash},
        "last_checkpoint": None
        if c is None
        else {
            "n": c.n,
            "seq": c.seq,
            "hash": c.hash,
            "key_id": c.key_id,
            r.unit: r.last_checkpoint_position,
        },
        "findings": [
            {
                "kind": f.kind.value,
                "detail": f.detail,
                "seqs": list(f.seqs),
                r.unit + "s": list(f.positions),
                "checkpoint": f.checkpoint,
            }
            for f in r.findings
        ],
        "unsigned_tail": None
        if r.unsigned is None
        else {
            "count": r.unsigned.count,
            "first_seq": r.unsigned.first_seq,
            "last_seq": r.unsigned.last_seq,
        },
    }


def _anchor(args: argparse.Namespace) -> int:
    report = _run_verify(args, None)
    c = report.last_checkpoint
    if not report.ok or c is None:
        print(report.render(), file=sys.stderr)
        return 1
    print(f"{c.n}:{c.hash}")
    return 0


def _show(args: argparse.Namespace) -> int:
    _, unit = _source(args)
    for pos, raw in _records(args, args.last):
        try:
            rec = parse_record(raw)
        except MalformedRecord as exc:
            print(f"{unit} {pos}: MALFORMED ({exc})")
            continue
        if isinstance(rec, Entry):
            if args.kind and rec.kind != args.kind:
                continue
            fields = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(rec.fields.items()))
            print(f"{unit} {pos}: #{rec.seq} {rec.ts} {rec.kind} {fields}")
        elif isinstance(rec, Checkpoint) and args.checkpoints:
            print(
                f"{unit} {pos}: checkpoint #{rec.n} seq {rec.first}..{rec.seq} {rec.ts} "
                f"key {rec.key_id[:16]} (signature not checked here; use verify)"
            )
    return 0
