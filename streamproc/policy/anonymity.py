"""Record-level k-anonymity in a plan: which fields the anonymity engine generalizes, and how.

A plan compiled from a schema whose top record carries ``"privacy": {"k": ...}`` has an
:class:`AnonymitySpec`. Its per-record ``sanitize`` cannot finish such a record alone: the level
of a ladder field depends on the other records. So sanitizing is a two-step API:

1. ``plan.sanitize(source)`` transforms every other field and puts :data:`PENDING` in each
   ladder field. PENDING is no Avro value (fastavro refuses to encode it), so a record that
   skipped step 2 fails to encode instead of leaking; raw ladder values never enter it.
2. ``spec.quasi(source)`` (the raw QI tuple) and ``spec.sensitive_values(sanitized)`` feed the
   engine (:func:`~streamproc.anonymity.anonymize`, or :meth:`stream` for the worker), and
   ``spec.fill(sanitized, values)`` writes the generalized outputs (``Release.values``,
   ``BatchResult.values[i]``) into the record, which then encodes with the derived schema.

Sensitive values are read from the *sanitized* record: l-diversity is about what a consumer
sees, so a sensitive field transformed by the plan counts by its output values.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from streamproc.anonymity import (
    BatchResult,
    Ladder,
    PrivacySpec,
    StreamAnonymizer,
    anonymize,
)


class _Pending:
    """The placeholder of a ladder field between ``sanitize`` and ``fill`` (not encodable)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PENDING"

    def __reduce__(self) -> str:
        return "PENDING"  # one instance, also across pickling (process pools)


PENDING: Final = _Pending()


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for an output value (arrays and maps of a sensitive field)."""
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    h: Hashable = value
    return h


@dataclass(frozen=True)
class AnonymitySpec:
    """What the anonymity engine needs from a plan, and how its output goes back in.

    ``fields`` are the ladder fields' paths in QI order (top-level fields of the top record),
    ``ladders`` their parsed ladders, ``sensitive`` the sensitive field paths (top-level).
    """

    privacy: PrivacySpec
    fields: tuple[str, ...]
    ladders: tuple[Ladder, ...]
    sensitive: tuple[str, ...]

    @property
    def k(self) -> int:
        return self.privacy.k

    @property
    def l(self) -> int:  # noqa: E743 - the letter the literature uses
        return self.privacy.l

    def quasi(self, source: Mapping[str, Any]) -> tuple[Any, ...]:
        """The raw QI tuple of a SOURCE record (decoded), in ``fields`` order."""
        return tuple(source[name] for name in self.fields)

    def sensitive_values(self, sanitized: Mapping[str, Any]) -> tuple[Hashable, ...]:
        """The sensitive tuple of a SANITIZED record (its output values, hashable)."""
        return tuple(freeze(sanitized[name]) for name in self.sensitive)

    def fill(self, sanitized: Mapping[str, Any], values: Sequence[Any]) -> dict[str, Any]:
        """A copy of ``sanitized`` with the generalized ``values`` (QI order) in the ladder
        fields: the record as the derived schema encodes it."""
        if len(values) != len(self.fields):
            raise ValueError("one generalized value per ladder field is needed")
        out = dict(sanitized)
        for name, value in zip(self.fields, values, strict=True):
            out[name] = value
        return out

    def suppressed(self, sanitized: Mapping[str, Any]) -> dict[str, Any]:
        """``sanitized`` with every ladder field suppressed (None): always safe to write."""
        return self.fill(sanitized, (None,) * len(self.fields))

    def anonymize(
        self,
        rows: Sequence[Sequence[Any]],
        sensitive: Sequence[tuple[Hashable, ...]] | None = None,
    ) -> BatchResult:
        """Batch: generalize all ``rows`` (from :meth:`quasi`) at once, under this spec."""
        return anonymize(
            rows,
            self.ladders,
            k=self.k,
            l=self.l,
            sensitive=sensitive if self.sensitive else None,
            max_suppressed=self.privacy.max_suppressed,
        )

    def facet(self) -> dict[str, Any]:
        """The bound as the lineage facet's ``anonymity`` entry (docs/lineage-facet.json); a
        batch run adds ``measured``. Field names and numbers only."""
        return {
            "k": self.k,
            "l": self.l,
            "quasiIdentifiers": list(self.fields),
            "sensitive": list(self.sensitive),
            "maxSuppressed": self.privacy.max_suppressed,
        }

    def stream(self, *, max_buffered: int | None = None) -> StreamAnonymizer:
        """Stream: a fresh delay-bounded anonymizer under this spec (one per partition)."""
        return StreamAnonymizer(
            self.ladders,
            k=self.k,
            l=self.l,
            max_delay_ms=self.privacy.max_delay_ms,
            max_buffered=max_buffered,
        )


def ladder_description(params: Mapping[str, Any]) -> str:
    """A value-free description of a ladder for lineage (category names are not listed)."""
    if "levels" in params:
        levels = params["levels"]
        return f"generalize(levels={len(levels) if isinstance(levels, list) else '?'})"
    for key in ("bucket", "to", "prefix"):
        if isinstance(params.get(key), list):
            steps = ",".join(str(s) for s in params[key])
            alphabet = params.get("alphabet")
            size = f",alphabet={len(alphabet)}" if isinstance(alphabet, str) else ""
            return f"generalize({key}=[{steps}]{size})"
    return "generalize(ladder)"
