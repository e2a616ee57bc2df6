"""The streamproc Grafana dashboard as code (grafana-foundation-sdk, dev extra).

    python deploy/grafana/dashboard.py          # rewrites dashboards/streamproc.json

``PANELS`` is the one table: each panel's queries with the labels their series carry (the
alerting integration test evaluates every query on a real Prometheus and checks them) and,
for metrics no worker emits yet, the issue that adds them. Metric meanings: docs/metrics.md.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

OUT = Path(__file__).resolve().parent / "dashboards" / "streamproc.json"
UID = "streamproc-privacy"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="prometheus")
T = 'topology=~"$topology"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    labels: frozenset[str]  # labels every series of the result carries
    pending: str = ""  # why no series yet (metric not emitted by a worker of this tree)


@dataclass(frozen=True)
class PanelSpec:
    row: str
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # timeseries | stat


def q(expr: str, legend: str, *labels: str, pending: str = "") -> Query:
    return Query(expr, legend, frozenset(labels), pending)


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "Throughput and lag",
        "Records per second",
        "Records consumed and sanitized records produced.",
        "reqps",
        (
            q(
                f"sum by (topology) (rate(streamproc_records_in_total{{{T}}}[{RATE}]))",
                "{{topology}} in",
                "topology",
            ),
            q(
                f"sum by (topology) (rate(streamproc_records_out_total{{{T}}}[{RATE}]))",
                "{{topology}} out",
                "topology",
            ),
        ),
    ),
    PanelSpec(
        "Throughput and lag",
        "Consumer lag",
        "Records behind the end of the source topic.",
        "short",
        (q(f"sum by (topology) (streamproc_consumer_lag{{{T}}})", "{{topology}}", "topology"),),
    ),
    PanelSpec(
        "Throughput and lag",
        "Processing latency p99",
        "Source timestamp to outcome sent, 99th percentile.",
        "s",
        (
            q(
                "histogram_quantile(0.99, sum by (topology, le) "
                f"(rate(streamproc_processing_seconds_bucket{{{T}}}[{RATE}])))",
                "{{topology}}",
                "topology",
            ),
        ),
    ),
    PanelSpec(
        "Throughput and lag",
        "Commit parts p99",
        "Each part of a hot-path commit (send_offsets, flush, commit_txn under exactly_once; "
        "flush, commit_offsets under at_least_once; total) and one fetched batch's processing "
        "(batch), 99th percentile, per worker: a slow commit part points at the broker, a "
        "slow batch at the worker's CPU.",
        "s",
        (
            q(
                "histogram_quantile(0.99, sum by (instance, part, le) "
                f"(rate(streamproc_commit_seconds_bucket[{RATE}])))",
                "{{instance}} {{part}}",
                "instance",
                "part",
            ),
        ),
    ),
    PanelSpec(
        "Dead letters",
        "Dead letters by reason",
        "Records sent to the dead-letter topic per second, by reason.",
        "reqps",
        (
            q(
                f"sum by (topology, reason) (rate(streamproc_dead_letters_total{{{T}}}[{RATE}]))",
                "{{topology}} {{reason}}",
                "topology",
                "reason",
            ),
        ),
    ),
    PanelSpec(
        "Dead letters",
        "Dead-letter share (5 min)",
        "Share of records dead-lettered; compliance compares it with the budget.",
        "percentunit",
        (q(f"streamproc_dead_letter_share{{{T}}}", "{{topology}}", "topology"),),
    ),
    PanelSpec(
        "Exposure",
        "k-anonymity of the output (k_min)",
        "Smallest equivalence class on the quasi-identifiers over the rolling window.",
        "short",
        (
            q(
                f"min by (topology) (streamproc_output_k_min{{{T}}})",
                "{{topology}}",
                "topology",
            ),
        ),
    ),
    PanelSpec(
        "Exposure",
        "Unique share of the output",
        "Share of output records unique on the quasi-identifiers.",
        "percentunit",
        (
            q(
                f"max by (topology) (streamproc_output_unique_share{{{T}}})",
                "{{topology}}",
                "topology",
            ),
        ),
    ),
    PanelSpec(
        "Data age",
        "Data age",
        "Now minus the source timestamp of the newest record processed, and the bound on "
        "the oldest record still waiting.",
        "s",
        (
            q(f"streamproc_data_age_seconds{{{T}}}", "{{topology}} processed", "topology"),
            q(f"streamproc_waiting_data_age_seconds{{{T}}}", "{{topology}} waiting", "topology"),
        ),
    ),
    PanelSpec(
        "Compliance",
        "Compliant",
        "1 when every compliance check of the topology passes.",
        "bool_yes_no",
        (q(f"streamproc_compliant{{{T}}}", "{{topology}}", "topology"),),
        kind="stat",
    ),
    PanelSpec(
        "Compliance",
        "Compliance checks",
        "policy_approved, strict, no_unannotated_drops, key_age, dead_letter_budget.",
        "bool_yes_no",
        (q(f"streamproc_compliance_check{{{T}}}", "{{topology}} {{check}}", "topology", "check"),),
        kind="stat",
    ),
    PanelSpec(
        "Compliance",
        "Key age",
        "Age of the key version each policy uses.",
        "s",
        (q(f"streamproc_key_age_seconds{{{T}}}", "{{topology}} {{key}}", "topology", "key"),),
    ),
    PanelSpec(
        "Detection",
        "Containments (1 h)",
        "Containment messages issued in the last hour, by recommended action.",
        "short",
        (
            q(
                f"sum by (topology, action) (increase(streamproc_containments_total{{{T}}}[1h]))",
                "{{topology}} {{action}}",
                "topology",
                "action",
            ),
        ),
    ),
    PanelSpec(
        "Detection",
        "Access events and anomalies",
        "Access events scored and those over the threshold, per second.",
        "reqps",
        (
            q(
                f"sum by (topology) (rate(streamproc_access_events_total{{{T}}}[{RATE}]))",
                "{{topology}} events",
                "topology",
            ),
            q(
                f"sum by (topology) (rate(streamproc_anomalies_total{{{T}}}[{RATE}]))",
                "{{topology}} anomalies",
                "topology",
            ),
        ),
    ),
    PanelSpec(
        "DP budget",
        "DP budget spent",
        "Epsilon granted so far, summed over the flow's subjects and budgeted fields.",
        "short",
        (
            q(
                f"sum by (topology) (streamproc_dp_budget_spent{{{T}}})",
                "{{topology}}",
                "topology",
            ),
        ),
    ),
    PanelSpec(
        "DP budget",
        "Subjects with an exhausted budget",
        "Subjects whose epsilon budget is spent (their later values are re-released).",
        "short",
        (
            q(
                f"sum by (topology) (streamproc_dp_budget_exhausted_subjects{{{T}}})",
                "{{topology}}",
                "topology",
            ),
        ),
    ),
    PanelSpec(
        "Audit",
        "Audit trail",
        "Entries written and signed checkpoints, per worker.",
        "short",
        (
            q("streamproc_audit_entries", "{{worker}} entries", "worker"),
            q("streamproc_audit_checkpoints", "{{worker}} checkpoints", "worker"),
        ),
    ),
    PanelSpec(
        "Audit",
        "Since the last checkpoint",
        "Seconds since the last signed audit checkpoint.",
        "s",
        (q("streamproc_audit_checkpoint_age_seconds", "{{worker}}", "worker"),),
    ),
)


def _panel(spec: PanelSpec, panel_id: int) -> timeseries.Panel | stat.Panel:
    panel = timeseries.Panel() if spec.kind == "timeseries" else stat.Panel()
    panel.id(panel_id).title(spec.title).description(spec.description).unit(spec.unit)
    panel.datasource(DATASOURCE).height(8).span(12)
    for i, query in enumerate(spec.queries):
        panel.with_target(
            prometheus.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(chr(ord("A") + i))
            .datasource(DATASOURCE)
        )
    return panel


def build() -> dm.Dashboard:
    """The dashboard model."""
    board = (
        gd.Dashboard("streamproc: privacy gateway")
        .uid(UID)
        .tags(["streamproc", "privacy"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(
            gd.QueryVariable("topology")
            .label("topology")
            .datasource(DATASOURCE)
            .query("label_values(streamproc_records_in_total, topology)")
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )
    row = None
    ids = iter(range(1, 1000))
    for spec in PANELS:
        if spec.row != row:
            row = spec.row
            board.with_row(gd.Row(row).id(next(ids)))
        board.with_panel(_panel(spec, next(ids)))
    return board.build()


def render() -> str:
    """The dashboard JSON exactly as committed."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build()) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT} ({len(PANELS)} panels)", file=sys.stderr)
    json.loads(OUT.read_text())
