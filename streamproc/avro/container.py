"""Reading Avro object container files: resolved to a reader schema, errors without values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import fastavro
from fastavro.read import SchemaResolutionError

from streamproc.avro.schema import same_decoding
from streamproc.errors import DecodeError, SchemaError


def open_container(fin: IO[bytes], reader_schema: Any, schema_file: str, src: Path) -> Any:
    """A fastavro reader of ``fin`` whose records follow ``reader_schema``.

    When the file's writer schema decodes alike, fastavro's resolution path is skipped (2x
    faster); otherwise the writer schema is resolved, and one that does not resolve is a
    :class:`SchemaError` naming both files.
    """
    try:
        reader = fastavro.reader(fin)
        if not same_decoding(reader.writer_schema, reader_schema):
            fin.seek(0)
            reader = fastavro.reader(fin, reader_schema=reader_schema)
    except SchemaResolutionError as exc:
        raise SchemaError(
            f"input {src}: its writer schema does not resolve to {schema_file}: {exc}"
        ) from None
    except (ValueError, EOFError, TypeError):
        raise DecodeError(f"input {src}: not an Avro object container file") from None
    return reader


def container_records(reader: Any, src: Path) -> Iterator[dict[str, Any]]:
    """The records of a container reader; one that does not decode is a DecodeError naming
    its index (never its bytes)."""
    it = iter(reader)
    n = 0
    while True:
        try:
            record = next(it)
        except StopIteration:
            return
        except (ValueError, EOFError, TypeError, IndexError):
            raise DecodeError(f"input {src}: record {n} does not decode") from None
        n += 1
        yield record
