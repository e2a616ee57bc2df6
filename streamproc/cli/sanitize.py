"""``streamproc sanitize --schema S --keyring K IN.avro OUT.avro``: batch backfills.

Reads an Avro object container file (its writer schema may be an older, compatible version:
fastavro resolves it to the annotated reader schema), sanitizes every record with the
compiled plan and writes a container file with the derived schema. The output appears only
when every record succeeded (written to a temporary file, then renamed).

A policy with budgeted noise keeps one budget ledger for the run, at one instant (the run's
start), so each subject's budget holds over the whole file; it runs inline (``--workers 1``),
because block-parallel workers would each hold a ledger of their own.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import fastavro
import fastavro.write

from streamproc.avro.container import open_container
from streamproc.cli._policy_args import add_policy_args, load_tag_actions
from streamproc.config import load_keyring
from streamproc.errors import ConfigError, DecodeError, SchemaError, TransformError
from streamproc.lineage.events import run_event, to_json
from streamproc.pipeline.anonymize import AnonymizedFile, anonymize_file
from streamproc.pipeline.batch import sanitize_chunks
from streamproc.policy import Plan, compile_plan, describe_plan

log = logging.getLogger("streamproc.sanitize")


def register(sub: Any) -> None:
    p = sub.add_parser("sanitize", help="sanitize an Avro container file (backfills)")
    p.add_argument("--schema", required=True, type=Path, help="annotated .avsc (reader schema)")
    p.add_argument("--keyring", type=Path, default=None, help="or STREAMPROC_KEYRING")
    p.add_argument("input", type=Path, metavar="IN.avro")
    p.add_argument("output", type=Path, metavar="OUT.avro")
    p.add_argument("--codec", default=None, help="output codec (default: the input's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes sanitizing container blocks in parallel (0 = one per CPU; 1 = inline)",
    )
    p.add_argument(
        "--lineage",
        type=Path,
        default=None,
        metavar="FILE",
        help="append the run's OpenLineage event (JSON line) to FILE",
    )
    add_policy_args(p)
    p.set_defaults(func=_sanitize)


def _sanitize(args: argparse.Namespace) -> int:
    keyring = load_keyring(args.keyring)
    run_start_ms = time.time_ns() // 1_000_000
    plan = compile_plan(
        args.schema,
        keyring,
        strict=args.strict,
        tag_actions=load_tag_actions(args.tags),
        clock=lambda: run_start_ms,  # the whole file is one instant for the budget ledger
    )
    log.info("policy loaded: %s", describe_plan(plan))
    show = not args.no_progress and sys.stderr.isatty()
    if plan.anonymity is not None:
        return _sanitize_anonymous(args, plan, show)
    workers = _workers(plan, args.workers)
    start = time.perf_counter()
    if workers > 1:
        count = sanitize_file_parallel(
            plan,
            args.input,
            args.output,
            workers=workers,
            keyring=args.keyring,
            tag_actions=load_tag_actions(args.tags),
            codec=args.codec,
            progress=show,
        )
    else:
        count = sanitize_file(plan, args.input, args.output, codec=args.codec, progress=show)
    secs = time.perf_counter() - start
    rate = count / secs if secs > 0 else float("inf")
    print(
        f"sanitized {count} records ({len(plan.transformed)} fields transformed, "
        f"{len(plan.dropped)} dropped) in {secs:.2f} s ({rate:,.0f} records/s) -> {args.output}"
    )
    if plan.budget is not None:
        print(
            f"budget: {plan.budget.exhausted_subjects} subjects exhausted, "
            f"{plan.budget.refused} values re-released or nulled, "
            f"epsilon spent {plan.budget.epsilon_spent:g} in total"
        )
    _write_lineage(args, plan, None)
    return 0


def _workers(plan: Plan, asked: int) -> int:
    """Processes to use: one per CPU by default, but one for a budgeted policy (refusing an
    explicit ``--workers N``), whose ledger must see the whole file."""
    if plan.budget is None:
        return asked or len(os.sched_getaffinity(0))
    if asked > 1:
        fields = ", ".join(a.name for a in plan.budget.accounts)
        raise ConfigError(
            f"schema {plan.schema_file}: fields {fields} have a per-subject noise budget, "
            "which needs the whole file in one process; run with --workers 1"
        )
    return 1


def _sanitize_anonymous(args: argparse.Namespace, plan: Plan, show: bool) -> int:
    """A k-anonymity plan: two passes in this process (the groups span the whole file)."""
    if args.workers > 1:
        raise ConfigError(
            f"schema {plan.schema_file}: record-level k-anonymity groups the whole file, so "
            "--workers above 1 is refused (use --workers 1 or leave the default)"
        )
    start = time.perf_counter()
    done = anonymize_file(
        plan,
        args.input,
        args.output,
        codec=args.codec,
        on_progress=(lambda n, d, size: _draw(n, d, size)) if show else None,
    )
    if show:
        sys.stderr.write("\n")
    secs = time.perf_counter() - start
    print(
        f"sanitized {done.records} records ({len(plan.transformed)} fields transformed, "
        f"{len(plan.dropped)} dropped) in {secs:.2f} s -> {args.output}"
    )
    for line in anonymity_summary(done):
        print(line)
    if done.over_budget:
        log.warning(
            "%s: %.1f%% of records suppressed, above max_suppressed %.1f%%",
            plan.schema_file,
            100 * done.suppressed_share,
            100 * done.max_suppressed,
        )
    _write_lineage(args, plan, done)
    return 0


def anonymity_summary(done: AnonymizedFile) -> list[str]:
    """The k-anonymity lines of the summary: measured on the output file (values-free)."""
    l_part = "".join(f", l_min[{name}]={v}" for name, v in done.l_min.items())
    warn = " WARNING: above max_suppressed" if done.over_budget else ""
    per_field = ", ".join(f"{name} {v:.3f}" for name, v in done.ncp_by_field.items())
    return [
        f"k-anonymity: k={done.k} l={done.l} on {', '.join(done.quasi_identifiers)}: "
        f"k_min={done.k_min}{l_part} (measured on the output)",
        f"suppressed: {done.suppressed} records ({done.suppressed_share:.2%}, "
        f"max_suppressed {done.max_suppressed:.2%}){warn}",
        f"information loss (NCP, 0 exact .. 1 suppressed): overall {done.ncp:.3f}; {per_field}",
    ]


def _write_lineage(args: argparse.Namespace, plan: Plan, done: AnonymizedFile | None) -> None:
    """Append a COMPLETE RunEvent of this file run to ``--lineage`` (file datasets)."""
    if args.lineage is None:
        return
    event = run_event(
        topology_name=Path(plan.schema_file).stem,
        namespace="",
        source_topic=str(args.input.resolve()),
        sink_topic=str(args.output.resolve()),
        lineage=plan.lineage,
        policy_fingerprint=plan.fingerprint,
        key_versions=plan.key_versions,
        state="COMPLETE",
        dataset_namespace="file",
        anonymity=done.facet(plan.anonymity.facet()) if done and plan.anonymity else None,
    )
    args.lineage.parent.mkdir(parents=True, exist_ok=True)
    with args.lineage.open("a") as fh:
        fh.write(to_json(event) + "\n")


def sanitize_file(
    plan: Plan,
    src: Path,
    dst: Path,
    *,
    codec: str | None = None,
    progress: bool = False,
) -> int:
    """Sanitize container file ``src`` into ``dst``; returns the record count."""
    try:
        fin = src.open("rb")
    except OSError as exc:
        raise SchemaError(f"input {src}: cannot be read ({exc.strerror})") from None
    tmp = dst.with_name(f".{dst.name}.partial")
    counter = [0]
    try:
        with fin:
            reader = open_container(fin, plan.source_schema, plan.schema_file, src)
            size = os.fstat(fin.fileno()).st_size
            records = _records(reader, plan, src, counter, fin if progress else None, size)
            with tmp.open("wb") as fout:
                fastavro.writer(
                    fout, plan.derived_schema, records, codec=codec or reader.codec or "null"
                )
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
        if progress:
            sys.stderr.write("\n")
    return counter[0]


def sanitize_file_parallel(
    plan: Plan,
    src: Path,
    dst: Path,
    *,
    workers: int,
    keyring: Path | None,
    tag_actions: Any = None,
    codec: str | None = None,
    progress: bool = False,
) -> int:
    """:func:`sanitize_file` with chunks of container blocks sanitized in ``workers`` processes."""
    tmp = dst.with_name(f".{dst.name}.partial")
    try:
        with tmp.open("wb") as fout:
            count = sanitize_chunks(
                plan,
                src,
                fout,
                workers=workers,
                codec=codec,
                keyring=keyring,
                tag_actions=tag_actions,
                on_progress=(lambda n, done, size: _draw(n, done, size)) if progress else None,
            )
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
        if progress:
            sys.stderr.write("\n")
    return count


def _records(
    reader: Any,
    plan: Plan,
    src: Path,
    counter: list[int],
    fin: IO[bytes] | None,
    size: int,
) -> Iterator[dict[str, Any]]:
    sanitize = plan.sanitize
    n = 0
    next_draw = time.monotonic()
    it = iter(reader)
    while True:
        try:
            record = next(it)
        except StopIteration:
            break
        except (ValueError, EOFError, TypeError, IndexError):
            raise DecodeError(f"input {src}: record {n} does not decode") from None
        try:
            yield sanitize(record)
        except TransformError as exc:
            raise TransformError(f"input {src}: record {n}: {exc}") from None
        n += 1
        counter[0] = n
        if fin is not None and not n & 0x3FF and time.monotonic() >= next_draw:
            next_draw = time.monotonic() + 0.2
            _draw(n, fin.tell(), size)
    if fin is not None:
        _draw(n, size, size)


def _draw(n: int, done: int, size: int) -> None:
    frac = min(1.0, done / size) if size else 1.0
    bar = "#" * int(frac * 30)
    sys.stderr.write(f"\r[{bar:<30}] {frac:6.1%} {n:,} records")
    sys.stderr.flush()
