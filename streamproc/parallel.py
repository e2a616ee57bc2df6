"""Block-parallel batch sanitizing: Avro container blocks fan out to worker processes.

The main process only moves blocks (read, decompress, compress, write); each worker decodes
a block's records, sanitizes them with its own compiled plan and encodes the block body with
the derived schema. Blocks come back in order. Workers compile the plan themselves from the
schema path and keyring path (a keyring is never pickled) and are started with ``spawn``.
"""

from __future__ import annotations

import io
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from streamproc.errors import DecodeError, TransformError

_STATE: dict[str, Any] = {}


def _init(
    schema: str,
    keyring: str | None,
    strict: bool,
    tag_actions: Mapping[str, Any] | None,
    writer_schema: Any,
    resolve: bool,
) -> None:
    from fastavro import parse_schema

    from streamproc.keys import load_keyring
    from streamproc.policy import compile_plan

    plan = compile_plan(
        Path(schema),
        load_keyring(Path(keyring) if keyring else None),
        strict=strict,
        tag_actions=tag_actions,
    )
    _STATE.update(
        plan=plan,
        writer=parse_schema(writer_schema),
        reader=plan.source_schema if resolve else None,
    )


def _block(data: bytes, count: int, first: int) -> bytes:
    plan = _STATE["plan"]
    sanitize = plan.sanitize
    writer, reader, derived = _STATE["writer"], _STATE["reader"], plan.derived_schema
    src = io.BytesIO(data)
    out = io.BytesIO()
    for i in range(count):
        try:
            record = schemaless_reader(src, writer, reader)
        except (ValueError, EOFError, TypeError, IndexError):
            raise DecodeError(f"record {first + i} does not decode") from None
        try:
            schemaless_writer(out, derived, sanitize(record))
        except TransformError as exc:
            raise TransformError(f"record {first + i}: {exc}") from None
    return out.getvalue()


def sanitize_blocks(
    blocks: Iterator[Any],
    write_block: Callable[[Any], None],
    *,
    workers: int,
    schema: Path,
    keyring: Path | None,
    strict: bool,
    tag_actions: Mapping[str, Any] | None,
    writer_schema: Any,
    resolve: bool,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Sanitize every block of ``blocks`` in ``workers`` processes; returns the record count."""
    ctx = multiprocessing.get_context("spawn")
    in_flight: deque[tuple[Future[bytes], int]] = deque()
    total = 0
    with ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_init,
        initargs=(
            str(schema),
            str(keyring) if keyring else None,
            strict,
            dict(tag_actions) if tag_actions else None,
            writer_schema,
            resolve,
        ),
    ) as pool:

        def drain_one() -> None:
            nonlocal total
            fut, count = in_flight.popleft()
            write_block(SimpleNamespace(num_records=count, bytes_=io.BytesIO(fut.result())))
            total += count
            if on_progress is not None:
                on_progress(total)

        submitted = 0
        for block in blocks:
            data = block.bytes_.getvalue()
            in_flight.append(
                (pool.submit(_block, data, block.num_records, submitted), block.num_records)
            )
            submitted += block.num_records
            # Bounded read-ahead keeps memory flat on large files.
            while len(in_flight) > 2 * workers:
                drain_one()
        while in_flight:
            drain_one()
    return total
