"""Batch k-anonymity: sanitize a whole container file so the bound holds over the output file.

Two passes, in one process (the groups span the whole file, so chunks cannot be anonymized
apart): pass 1 decodes and sanitizes every record, keeps its raw QI tuple and sensitive tuple
in memory (a few values per record) and stages the sanitized record with its ladder fields
*suppressed* (None) in a temporary file next to the output, so no raw ladder value is ever
written. :func:`~streamproc.anonymity.anonymize` then chooses the generalization of every
record, and pass 2 copies the staged records to the output with the generalized values filled
in. The output appears only when both passes succeeded (renamed from a temporary file).

The guarantee is then re-measured on the output itself with :func:`streamproc.risk.measure` on
the derived schema's quasi fields, as ``streamproc risk`` would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import fastavro

from streamproc.avro.container import container_records, open_container
from streamproc.errors import SchemaError, TransformError
from streamproc.policy import Plan
from streamproc.risk import measure, quasi_fields

Progress = Callable[[int, int, int], None]  # (records, bytes done, bytes total)


@dataclass(frozen=True)
class AnonymizedFile:
    """What a k-anonymous batch run achieved, measured on its output (values-free)."""

    records: int
    k: int
    l: int  # noqa: E741 - the letter the literature uses
    quasi_identifiers: tuple[str, ...]
    sensitive: tuple[str, ...]
    k_min: int | None  # None when every record is suppressed
    l_min: dict[str, int | None]  # per sensitive field
    suppressed: int
    suppressed_share: float
    max_suppressed: float
    ncp_by_field: dict[str, float]
    ncp: float

    @property
    def over_budget(self) -> bool:
        """More records suppressed than the schema owner's ``max_suppressed`` allows."""
        return self.suppressed_share > self.max_suppressed

    def facet(self, bound: dict[str, Any]) -> dict[str, Any]:
        """The lineage facet's ``anonymity`` entry: ``bound`` (``AnonymitySpec.facet()``)
        plus what the output achieved (docs/lineage-facet.json)."""
        measured = {
            "records": self.records,
            "kMin": self.k_min,
            "lMin": dict(self.l_min),
            "suppressedShare": self.suppressed_share,
            "ncp": self.ncp,
            "ncpByField": dict(self.ncp_by_field),
        }
        return {**bound, "quasiIdentifiers": list(self.quasi_identifiers), "measured": measured}


def open_reader(fin: IO[bytes], plan: Plan, src: Path) -> Any:
    """A fastavro reader of ``fin`` resolving its writer schema to the plan's source schema."""
    return open_container(fin, plan.source_schema, plan.schema_file, src)


def _decoded(reader: Any, src: Path) -> Iterator[dict[str, Any]]:
    return container_records(reader, src)


def _staged_records(fin: IO[bytes]) -> Iterator[dict[str, Any]]:
    """Records of a container file this module wrote (the derived schema: always records)."""
    return cast(Iterator[dict[str, Any]], iter(fastavro.reader(fin)))


def anonymize_file(
    plan: Plan,
    src: Path,
    dst: Path,
    *,
    codec: str | None = None,
    on_progress: Progress | None = None,
) -> AnonymizedFile:
    """Sanitize ``src`` into ``dst`` under the plan's k-anonymity bound (see module doc)."""
    spec = plan.anonymity
    if spec is None:
        raise SchemaError(f"schema {plan.schema_file}: the plan has no k-anonymity bound")
    try:
        fin = src.open("rb")
    except OSError as exc:
        raise SchemaError(f"input {src}: cannot be read ({exc.strerror})") from None
    stage = dst.with_name(f".{dst.name}.stage")
    tmp = dst.with_name(f".{dst.name}.partial")
    rows: list[tuple[Any, ...]] = []
    sens: list[tuple[Hashable, ...]] = []
    try:
        with fin:
            reader = open_reader(fin, plan, src)
            out_codec = codec or reader.codec or "null"
            size = os.fstat(fin.fileno()).st_size

            def staged() -> Iterator[dict[str, Any]]:
                sanitize = plan.sanitize
                for n, record in enumerate(_decoded(reader, src)):
                    try:
                        clean = sanitize(record)
                    except TransformError as exc:
                        raise TransformError(f"input {src}: record {n}: {exc}") from None
                    rows.append(spec.quasi(record))
                    sens.append(spec.sensitive_values(clean))
                    if on_progress is not None and not (n + 1) & 0x3FF:
                        on_progress(n + 1, fin.tell(), size)
                    yield spec.suppressed(clean)

            with stage.open("wb") as fstage:
                fastavro.writer(fstage, plan.derived_schema, staged(), codec="null")
        result = spec.anonymize(rows, sens)
        rows.clear()
        with stage.open("rb") as staged_in, tmp.open("wb") as fout:
            filled = (
                spec.fill(r, result.values[i]) for i, r in enumerate(_staged_records(staged_in))
            )
            fastavro.writer(fout, plan.derived_schema, filled, codec=out_codec)
        os.replace(tmp, dst)
    finally:
        stage.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    if on_progress is not None:
        on_progress(result.records, size, size)
    return _measured(plan, dst, result.suppressed_share, result.ncp_by_field, result.ncp)


def _measured(
    plan: Plan, dst: Path, share: float, ncp_by_field: dict[str, float], ncp: float
) -> AnonymizedFile:
    """Re-measure k (and l per sensitive field) on the output file itself."""
    spec = plan.anonymity
    assert spec is not None
    quasi = tuple(quasi_fields(plan.derived_schema_json))

    def report(sensitive: str | None) -> Any:
        with dst.open("rb") as f:
            return measure(_staged_records(f), quasi, sensitive=sensitive, k=spec.k)

    base = report(None)
    l_min = {name: report(name).l_min for name in spec.sensitive}
    return AnonymizedFile(
        records=base.records,
        k=spec.k,
        l=spec.l,
        quasi_identifiers=quasi,
        sensitive=spec.sensitive,
        k_min=base.k_min,
        l_min=l_min,
        suppressed=base.suppressed,
        suppressed_share=share,
        max_suppressed=spec.privacy.max_suppressed,
        ncp_by_field=ncp_by_field,
        ncp=ncp,
    )


def anonymize_records(plan: Plan, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Sanitize ``records`` (source records, in memory) as one batch: under a record-level k
    the ladder fields are generalized over all of them, as ``streamproc sanitize`` does."""
    clean = [plan.sanitize(dict(r)) for r in records]
    spec = plan.anonymity
    if spec is None:
        return clean
    sensitive = [spec.sensitive_values(c) for c in clean] if spec.sensitive else None
    result = spec.anonymize([spec.quasi(r) for r in records], sensitive)
    return [spec.fill(c, v) for c, v in zip(clean, result.values, strict=True)]
