"""Compute every figure of the steward's report (:class:`Report`) from its inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamproc.report.data import Inputs, load_inputs
from streamproc.report.measures import (
    Correlations,
    FieldFigures,
    Risk,
    correlations,
    field_figures,
    risk,
)
from streamproc.report.utility import DPBudget, Utility, dp_budget, utility


@dataclass(frozen=True)
class Report:
    schema_file: str
    fingerprint: str
    k: int
    n_raw: int
    n_sanitized: int
    fields: tuple[FieldFigures, ...]
    correlations: Correlations | None
    risk_raw: Risk
    risk_sanitized: Risk
    dp: DPBudget
    utility: Utility | None


def build_report(inputs: Inputs, *, k: int = 5, label: str | None = None) -> Report:
    """All figures; groups smaller than ``k`` are suppressed in distributions."""
    fields = tuple(field_figures(p, inputs.raw, inputs.sanitized, k) for p in inputs.fields)
    risk_raw, risk_san = risk(inputs.fields, inputs.raw, inputs.sanitized, k)
    return Report(
        inputs.schema_file,
        inputs.fingerprint,
        k,
        len(inputs.raw),
        len(inputs.sanitized),
        fields,
        correlations(inputs.fields, inputs.raw, inputs.sanitized),
        risk_raw,
        risk_san,
        dp_budget(inputs.fields, inputs.raw),
        utility(inputs.fields, inputs.raw, inputs.sanitized, label) if label else None,
    )


def report_from_files(
    schema: Path, raw: Path, sanitized: Path, *, k: int = 5, label: str | None = None
) -> Report:
    return build_report(load_inputs(schema, raw, sanitized), k=k, label=label)
