"""``streamproc report``: the data steward's HTML report for one raw / sanitized file pair."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamproc.report import render, report_from_files


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="data steward's report: distributions, drift, risk, utility (HTML)"
    )
    p.add_argument("--schema", type=Path, required=True, help="annotated .avsc of the raw data")
    p.add_argument("--raw", type=Path, required=True, metavar="RAW.avro")
    p.add_argument("--sanitized", type=Path, required=True, metavar="CLEAN.avro")
    p.add_argument("--label", help="a kept field: compare a model trained on each file")
    p.add_argument("--k", type=int, default=5, help="suppress groups smaller than this")
    p.add_argument("--out", type=Path, required=True, metavar="REPORT.html")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = report_from_files(args.schema, args.raw, args.sanitized, k=args.k, label=args.label)
    args.out.write_text(render(report), encoding="utf-8")
    print(
        f"report: {args.out} ({report.n_raw} raw, {report.n_sanitized} sanitized records; "
        f"k_min {report.risk_raw.k_min} -> {report.risk_sanitized.k_min})"
    )
    return 0
