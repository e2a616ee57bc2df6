"""Audit trail benchmark: append and verify speed, and the mutation corpus's detection table.

Run: ``.venv/bin/python load/bench_audit.py [--entries N] [--every K] [--positions P]``

Writes a trail of N entries (checkpoint every K) to a file with ``fsync=checkpoint``, then:

- ``append``: entries/s through ``AuditLog.append`` (validation, canonical JSON, hash, write,
  a signed checkpoint every K entries);
- ``verify``: entries/s of ``streamproc audit verify`` on the file (read, parse, hash, chain,
  signatures, Merkle roots), best of 3;
- ``corpus``: every mutation kind of ``streamproc.testing.tamper`` at P seeded random
  positions: detected-and-classified counts per kind, plus false alarms over intact prefixes.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from streamproc.audit import (
    AuditKind,
    AuditLog,
    CheckpointSigner,
    FileSink,
    TrustedKeys,
    read_file,
    verify_records,
)
from streamproc.audit.encoding import MalformedRecord, parse_record
from streamproc.audit.verify import Parsed, Report, analyse
from streamproc.testing.tamper import MUTATIONS, Trail

ROOT = Path(__file__).resolve().parents[1]


def _parse(raw: bytes) -> Parsed:
    try:
        return parse_record(raw)
    except MalformedRecord as exc:
        return exc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--positions", type=int, default=5, help="random positions per mutation kind")
    ap.add_argument("--seed", default="bench")
    args = ap.parse_args()

    signer = CheckpointSigner.generate()
    trusted = TrustedKeys.of([signer.public_key])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.jsonl"
        t0 = time.perf_counter()
        with AuditLog(FileSink(path), signer, checkpoint_every=args.every) as log:
            for i in range(args.entries):
                log.append(
                    AuditKind.DEAD_LETTER,
                    reason="decode_error",
                    topic="orders.raw",
                    partition=i % 12,
                    offset=i,
                )
        took = time.perf_counter() - t0
        size = path.stat().st_size
        print(f"trail: {args.entries} entries, checkpoint every {args.every}, {size / 1e6:.1f} MB")
        print(f"append: {args.entries / took:,.0f} entries/s ({took:.2f} s)")

        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            report = verify_records(read_file(path), trusted, source=str(path))
            best = min(best, time.perf_counter() - t0)
            assert report.ok and report.unsigned is None, report.render()
        print(f"verify: {args.entries / best:,.0f} entries/s ({best:.2f} s, best of 3)")
        records = path.read_bytes().splitlines()

    trail = Trail(records)
    cache = {r: parse_record(r) for r in records}

    def run(recs: list[bytes], anchor: tuple[int, str] | None = None) -> Report:
        parsed = [(pos, cache.get(r) or _parse(r)) for pos, r in enumerate(recs, 1)]
        return analyse(parsed, trusted, anchor=anchor)

    rng = random.Random(args.seed)
    false_alarms = 0
    cuts = [len(records)] + [rng.randrange(1, len(records)) for _ in range(args.positions * 2)]
    for cut in cuts:
        false_alarms += len(run(records[:cut]).findings)
    print(f"false alarms: {false_alarms} over {len(cuts)} intact trails (full + prefixes)")

    total = detected = 0
    print(f"{'mutation':20s} {'detected+classified':>20s}")
    t0 = time.perf_counter()
    for name, mutate in MUTATIONS.items():
        ok = 0
        for k in range(args.positions):
            recs, expect = mutate(trail, random.Random(f"{args.seed}/{name}/{k}"))
            if expect.judge(run(recs, expect.anchor)) is None:
                ok += 1
        total += args.positions
        detected += ok
        print(f"{name:20s} {ok:>12d} / {args.positions}")
    print(f"corpus: {detected}/{total} detected and classified ({time.perf_counter() - t0:.0f} s)")
    return 0 if detected == total and false_alarms == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
