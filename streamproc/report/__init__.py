"""The data steward's report: what a sanitized file keeps of the raw one, without its values.

``streamproc report --schema S.avsc --raw RAW.avro --sanitized CLEAN.avro --out REPORT.html``;
see :mod:`streamproc.report.build` (figures) and :mod:`streamproc.report.page` (HTML).
"""

from __future__ import annotations

from streamproc.report.build import Report, build_report, report_from_files
from streamproc.report.data import ReportError, inputs_for, load_inputs
from streamproc.report.page import render

__all__ = [
    "Report",
    "ReportError",
    "build_report",
    "inputs_for",
    "load_inputs",
    "render",
    "report_from_files",
]
