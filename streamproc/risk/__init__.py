"""Re-identification risk: k-anonymity and l-diversity of records on quasi-identifiers.

:func:`measure` reports a batch (a file, the tail of a topic), :class:`RollingRisk` keeps the
same statistics incrementally over the last N records of a worker's output, and
:func:`quasi_fields` / :func:`sensitive_fields` read which fields count from a schema.
"""

from __future__ import annotations

from streamproc.risk.exceptions import RiskError
from streamproc.risk.measure import SIZE_BUCKETS, Contribution, RiskReport, SizeBucket, measure
from streamproc.risk.paths import normalise
from streamproc.risk.rolling import RollingRisk
from streamproc.risk.schema import field_classes, field_paths, quasi_fields, sensitive_fields

__all__ = [
    "SIZE_BUCKETS",
    "Contribution",
    "RiskError",
    "RiskReport",
    "RollingRisk",
    "SizeBucket",
    "field_classes",
    "field_paths",
    "measure",
    "normalise",
    "quasi_fields",
    "sensitive_fields",
]
