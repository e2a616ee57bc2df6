"""Chunk-parallel batch sanitizing: ranges of Avro container blocks fan out to processes.

The main process reads only the container header and each block's two length prefixes, and
cuts the file into chunks of whole blocks (a few thousand records each). A worker reads its
chunk's bytes from the file itself, decodes them with fastavro's container reader (block
decoding in C, schema resolution set up once per chunk), sanitizes every record with the
compiled plan and encodes the result as container blocks with the derived schema and the
output file's sync marker. The main process appends those blocks to the output in order, so
the file is identical in layout to a single-process run.

Workers are forked on Linux, inheriting the compiled plan (the keyring is never pickled or
written anywhere); where ``fork`` is unavailable they are spawned and compile the plan
themselves from the schema and keyring paths.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import fastavro
import fastavro.write
from fastavro.read import SchemaResolutionError

from streamproc.avro.schema import same_decoding
from streamproc.config.settings import load_keyring
from streamproc.errors import ConfigError, DecodeError, SchemaError, TransformError
from streamproc.policy import Plan, compile_plan

CHUNK_RECORDS = 4096  # records per task (whole blocks): IPC cost amortised, memory flat
SYNC_SIZE = 16


@dataclass(frozen=True)
class Container:
    """What the main process knows of the input file: its header and block layout."""

    header: bytes  # magic, metadata, sync marker
    sync: bytes
    codec: str
    writer_schema: Any
    size: int


@dataclass(frozen=True)
class Chunk:
    start: int  # byte offset of the first block
    end: int  # byte offset just past the last block's sync marker
    records: int
    first: int  # index of the chunk's first record in the file


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs besides the plan."""

    path: str
    header: bytes
    resolve: bool  # the writer schema differs from the plan's source schema
    codec: str  # output codec
    sync: bytes  # output sync marker


_STATE: dict[str, Any] = {}


def read_container(fin: IO[bytes], src: Path) -> Container:
    """Parse the container header of ``fin`` (positioned at 0) without reading any block."""
    try:
        reader = fastavro.reader(fin)
    except (ValueError, EOFError, TypeError):
        raise DecodeError(f"input {src}: not an Avro object container file") from None
    end = fin.tell()
    fin.seek(0)
    header = fin.read(end)
    sync = header[-SYNC_SIZE:]
    if len(header) != end or len(sync) != SYNC_SIZE:
        raise DecodeError(f"input {src}: truncated container header")
    size = os.fstat(fin.fileno()).st_size
    return Container(header, sync, reader.codec or "null", reader.writer_schema, size)


def _varint(fin: IO[bytes]) -> int | None:
    """One zig-zag varint (Avro long) from ``fin``; None at a clean end of file."""
    shift = result = 0
    while True:
        b = fin.read(1)
        if not b:
            if shift == 0:
                return None
            raise EOFError
        byte = b[0]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def chunks(fin: IO[bytes], src: Path, container: Container) -> Iterator[Chunk]:
    """Cut the blocks of ``fin`` into chunks of about :data:`CHUNK_RECORDS` records.

    Only the block prefixes and sync markers are read; a block whose lengths run past the end
    of the file or whose sync marker is wrong fails here, naming the block's offset.
    """
    pos = start = len(container.header)
    fin.seek(pos)
    records = first = 0
    while True:
        try:
            count = _varint(fin)
            if count is None:
                break
            size = _varint(fin)
        except (EOFError, ValueError):
            raise DecodeError(f"input {src}: corrupt block header at byte {pos}") from None
        if count < 0 or size is None or size < 0 or pos + size > container.size:
            raise DecodeError(f"input {src}: corrupt block header at byte {pos}")
        fin.seek(size, io.SEEK_CUR)
        if fin.read(SYNC_SIZE) != container.sync:
            raise DecodeError(f"input {src}: block at byte {pos} has a wrong sync marker")
        pos = fin.tell()
        records += count
        if records >= CHUNK_RECORDS:
            yield Chunk(start, pos, records, first)
            first += records
            start, records = pos, 0
    if pos > start:
        yield Chunk(start, pos, records, first)


def _init(plan: Plan | tuple[str, str | None, bool, Mapping[str, Any] | None], job: _Job) -> None:
    if not isinstance(plan, Plan):  # spawned: compile our own copy from the paths
        schema, keyring, strict, tag_actions = plan
        plan = compile_plan(
            Path(schema),
            load_keyring(Path(keyring) if keyring else None),
            strict=strict,
            tag_actions=tag_actions,
        )
    _STATE.update(plan=plan, job=job, fd=os.open(job.path, os.O_RDONLY))


def _chunk(start: int, end: int, first: int) -> tuple[bytes, int]:
    """Sanitize the blocks in ``[start, end)`` of the input; returns output blocks, count."""
    plan: Plan = _STATE["plan"]
    job: _Job = _STATE["job"]
    data = os.pread(_STATE["fd"], end - start, start)
    src = io.BytesIO(job.header + data)
    out = io.BytesIO()
    writer = fastavro.write.Writer(out, plan.derived_schema, codec=job.codec, sync_marker=job.sync)
    skip = out.tell()  # the header: the main process writes its own, identical one
    sanitize, write = plan.sanitize, writer.write
    n = 0
    unresolvable = f"its writer schema does not resolve to {plan.schema_file}"
    try:
        it = iter(fastavro.reader(src, reader_schema=plan.source_schema if job.resolve else None))
    except SchemaResolutionError as exc:
        raise SchemaError(f"{unresolvable}: {exc}") from None
    while True:
        try:
            record = next(it)
        except StopIteration:
            break
        except SchemaResolutionError as exc:
            raise SchemaError(f"{unresolvable}: {exc}") from None
        except (ValueError, EOFError, TypeError, IndexError):
            raise DecodeError(f"record {first + n} does not decode") from None
        try:
            write(sanitize(cast(dict[str, Any], record)))
        except TransformError as exc:
            raise TransformError(f"record {first + n}: {exc}") from None
        n += 1
    writer.flush()
    return out.getvalue()[skip:], n


def _context() -> multiprocessing.context.BaseContext:
    if sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _check_parallel(plan: Plan, workers: int) -> None:
    """Refuse plans whose guarantee spans the whole file (they run in one process)."""
    if plan.budget is not None and workers > 1:
        # Each worker would hold its own ledger: a subject's budget would hold per chunk only.
        raise ConfigError(
            f"schema {plan.schema_file}: a per-subject noise budget needs one process"
        )
    if plan.anonymity is not None:
        raise SchemaError(
            f"schema {plan.schema_file}: record-level k-anonymity groups the whole file, so it "
            "is sanitized in one process (streamproc.pipeline.anonymize)"
        )


def _plan_source(
    plan: Plan,
    start_method: str | None,
    keyring: Path | None,
    tag_actions: Mapping[str, Any] | None,
) -> Plan | tuple[str, str | None, bool, Mapping[str, Any] | None]:
    """What the workers rebuild the plan from: the plan itself when forked, else its inputs."""
    if start_method == "fork":
        return plan
    return (
        str(plan.schema_file),
        str(keyring) if keyring else None,
        plan.strict,
        dict(tag_actions) if tag_actions else None,
    )


def sanitize_chunks(
    plan: Plan,
    src: Path,
    fout: IO[bytes],
    *,
    workers: int,
    codec: str | None,
    keyring: Path | None,
    tag_actions: Mapping[str, Any] | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
) -> int:
    """Sanitize container file ``src`` into ``fout`` with ``workers`` processes.

    Returns the record count. ``on_progress(records, bytes_done, bytes_total)`` is called as
    chunks complete. Raises :class:`DecodeError`, :class:`TransformError` or
    :class:`SchemaError` naming the record index (never a value).
    """
    _check_parallel(plan, workers)
    try:
        fin = src.open("rb")
    except OSError as exc:
        raise SchemaError(f"input {src}: cannot be read ({exc.strerror})") from None
    with fin:
        container = read_container(fin, src)
        out_codec = codec or container.codec
        sync = os.urandom(SYNC_SIZE)  # the output's sync marker, shared with the workers
        writer = fastavro.write.Writer(fout, plan.derived_schema, codec=out_codec, sync_marker=sync)
        writer.flush()  # the header
        job = _Job(
            path=str(src),
            header=container.header,
            resolve=not same_decoding(container.writer_schema, plan.source_schema),
            codec=out_codec,
            sync=sync,
        )
        ctx = _context()
        source = _plan_source(plan, ctx.get_start_method(), keyring, tag_actions)
        in_flight: deque[tuple[Future[tuple[bytes, int]], Chunk]] = deque()
        total = 0
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init, initargs=(source, job)
        ) as pool:

            def drain_one() -> None:
                nonlocal total
                fut, chunk = in_flight.popleft()
                try:
                    blocks, n = fut.result()
                except (DecodeError, TransformError, SchemaError) as exc:
                    raise type(exc)(f"input {src}: {exc}") from None
                fout.write(blocks)
                total += n
                if on_progress is not None:
                    on_progress(total, chunk.end, container.size)

            try:
                for chunk in chunks(fin, src, container):
                    in_flight.append(
                        (pool.submit(_chunk, chunk.start, chunk.end, chunk.first), chunk)
                    )
                    while len(in_flight) > 2 * workers:  # bounded read-ahead
                        drain_one()
                while in_flight:
                    drain_one()
            except BaseException:
                for fut, _ in in_flight:
                    fut.cancel()
                raise
    return total
