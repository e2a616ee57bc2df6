"""The compiled plan: schemas, fingerprint, lineage and the specialised sanitize callable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamproc.budget import BudgetLedger
from streamproc.policy.anonymity import AnonymitySpec


@dataclass(frozen=True)
class FieldLineage:
    """What happened to one source field (leaf or container)."""

    source_path: str
    output_path: str | None  # None when dropped
    action: str
    privacy_class: str | None
    tags: tuple[str, ...] = ()
    origin: str = "annotation"  # annotation | tag:<TAG> | unannotated | container
    transform: str = ""  # value transforms only: a value-free description, "mask(keep_first=1)"
    key: str | None = None
    key_version: int | None = None


@dataclass(frozen=True, eq=False)
class Plan:
    """A policy compiled once from an annotated Avro schema; apply with :attr:`sanitize`."""

    schema_file: str
    source_schema: Any = field(repr=False)
    source_schema_json: dict[str, Any] = field(repr=False)
    derived_schema: Any = field(repr=False)
    derived_schema_json: dict[str, Any] = field(repr=False)
    fingerprint: str
    key_versions: Mapping[str, int]
    lineage: tuple[FieldLineage, ...] = field(repr=False)
    strict: bool
    #: ``sanitize(record) -> record``: pure, compiled; raises TransformError naming the field.
    sanitize: Callable[[dict[str, Any]], dict[str, Any]] = field(repr=False)
    #: The generated source of the record functions, for debugging the compiler.
    source_code: str = field(repr=False, default="")
    #: The per-subject DP budget ledger that ``sanitize`` consults; None when no field is
    #: budgeted. State, metrics (exhausted subjects, epsilon spent) and snapshots live here.
    budget: BudgetLedger | None = field(repr=False, default=None)
    #: Record-level k-anonymity (None without it). When set, ``sanitize`` leaves PENDING in
    #: the ladder fields and the record only encodes after ``anonymity.fill`` (two steps).
    anonymity: AnonymitySpec | None = field(repr=False, default=None)

    @property
    def transformed(self) -> tuple[FieldLineage, ...]:
        """Lineage of fields whose values are changed (neither kept nor dropped).

        Only a value transform leaves a description; whole-field ones and containers do not.
        """
        return tuple(f for f in self.lineage if f.transform)

    @property
    def dropped(self) -> tuple[FieldLineage, ...]:
        return tuple(f for f in self.lineage if f.output_path is None)
