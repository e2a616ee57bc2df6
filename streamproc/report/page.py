"""The report as one self-contained HTML page: inline CSS and SVG, no script, and a Content
Security Policy that forbids loading anything (so it opens offline and cannot phone home).

Every figure sits in an element with ``data-figure="NAME"``, so a test can compare the page
with the computed :class:`~streamproc.report.build.Report`.
"""

from __future__ import annotations

from html import escape

from streamproc.report import svg
from streamproc.report.build import Report
from streamproc.report.measures import Dist, FieldFigures, Risk

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1180px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left}th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}
.field{border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:12px 0}
.plots{display:flex;gap:16px;flex-wrap:wrap}.tick{font-size:9px;fill:#555}
.cellv{font-size:10px;fill:#111}.muted{color:#777}
"""


def fmt(x: float | None, digits: int = 4) -> str:
    """How every figure is printed (tests format the computed values the same way)."""
    return "n/a" if x is None else f"{x:.{digits}f}"


def _fig(name: str, value: str) -> str:
    return f'<span data-figure="{escape(name)}">{escape(value)}</span>'


def _risk_rows(label: str, r: Risk) -> str:
    cells = [
        ("records", str(r.records)),
        ("classes", str(r.classes)),
        ("k_min", str(r.k_min)),
        ("unique_share", fmt(r.unique_share)),
        ("below_k_share", fmt(r.below_k_share)),
    ]
    tds = "".join(f'<td class="num">{_fig(f"risk.{label}.{n}", v)}</td>' for n, v in cells)
    return f"<tr><th>{label}</th>{tds}</tr>"


def _dist_plot(d: Dist | None, title: str, color: str) -> str:
    if d is None:
        return '<p class="muted">dropped: not in the sanitized output</p>'
    what = {"numeric": "values (bins)", "categories": "categories", "lengths": "text lengths"}
    caption = f"{title}: {what[d.kind]}; n={d.n}, nulls={d.nulls}, distinct={d.distinct}"
    plot = svg.bars(d.labels, d.counts, caption, color)
    return f"<figure>{plot}<figcaption>{escape(caption)}</figcaption></figure>"


def _field(f: FieldFigures) -> str:
    p = f.policy
    key = p.path
    params = p.transform or p.action
    rows = [
        ("action", _fig(f"{key}.action", p.action)),
        ("transform", escape(params)),
        (
            "class",
            escape(p.privacy_class or "-")
            + (" (unannotated)" if p.origin == "unannotated" else ""),
        ),
        ("drift: total variation", _fig(f"{key}.tv", fmt(f.total_variation))),
        ("drift: Wasserstein / &sigma;", _fig(f"{key}.w1", fmt(f.wasserstein))),
        ("information loss", _fig(f"{key}.info_loss", fmt(f.info_loss))),
        ("DP ε per record", _fig(f"{key}.epsilon", fmt(f.epsilon, 3))),
    ]
    table = "".join(f"<tr><th>{n}</th><td>{v}</td></tr>" for n, v in rows)
    plots = _dist_plot(f.raw, "raw", "#7a8fa6") + _dist_plot(f.sanitized, "sanitized", "#d08a3c")
    return (
        f'<section class="field" id="field-{escape(key)}"><h3>{escape(key)}</h3>'
        f'<table>{table}</table><div class="plots">{plots}</div></section>'
    )


def _summary(r: Report) -> str:
    head = "".join(
        f"<th>{h}</th>" for h in ("field", "action", "TV", "W1/&sigma;", "info loss", "&epsilon;")
    )
    head = f"<tr>{head}</tr>"
    body = "".join(
        f'<tr><td><a href="#field-{escape(f.policy.path)}">{escape(f.policy.path)}</a></td>'
        f'<td>{escape(f.policy.action)}</td><td class="num">{fmt(f.total_variation)}</td>'
        f'<td class="num">{fmt(f.wasserstein)}</td><td class="num">{fmt(f.info_loss)}</td>'
        f'<td class="num">{fmt(f.epsilon, 3)}</td></tr>'
        for f in r.fields
    )
    return f"<table>{head}{body}</table>"


def _correlations(r: Report) -> str:
    c = r.correlations
    if c is None:
        return '<p class="muted">fewer than two fields are numeric before and after</p>'
    return (
        "<p>Largest change of a correlation: "
        f"{_fig('corr.max_abs_change', fmt(c.max_abs_change))}</p>"
        f'<div class="plots"><figure>{svg.heatmap(c.fields, c.raw, "raw")}'
        "<figcaption>raw</figcaption></figure>"
        f"<figure>{svg.heatmap(c.fields, c.sanitized, 'sanitized')}"
        "<figcaption>sanitized</figcaption></figure></div>"
    )


def _dp(r: Report) -> str:
    d = r.dp
    if not d.per_field:
        return '<p class="muted">no field is noised</p>'
    rows = "".join(
        f'<tr><td>{escape(path)}</td><td class="num">{_fig(f"dp.{path}", fmt(e, 3))}</td></tr>'
        for path, e in d.per_field
    )
    return (
        f"<table><tr><th>field</th><th>ε per record</th></tr>{rows}</table>"
        f"<p>Per subject (by {escape(d.subject_field or 'record')}; most records of one "
        f"subject: {_fig('dp.max_records', str(d.max_records_per_subject))}; sequential "
        f"composition): ε = {_fig('dp.per_subject', fmt(d.per_subject, 3))}</p>"
    )


def _utility(r: Report) -> str:
    u = r.utility
    if u is None:
        return '<p class="muted">no --label given</p>'
    return (
        f"<p>Logistic regression predicting <b>{escape(u.label)}</b>; {u.n_train} training and "
        f"{u.n_test} test records (same split for both).</p><table>"
        "<tr><th></th><th>features</th><th>accuracy</th><th>AUC</th></tr>"
        f'<tr><th>raw</th><td class="num">{u.features_raw}</td>'
        f'<td class="num">{_fig("utility.accuracy_raw", fmt(u.accuracy_raw))}</td>'
        f'<td class="num">{_fig("utility.auc_raw", fmt(u.auc_raw))}</td></tr>'
        f'<tr><th>sanitized</th><td class="num">{u.features_sanitized}</td>'
        f'<td class="num">{_fig("utility.accuracy_sanitized", fmt(u.accuracy_sanitized))}</td>'
        f'<td class="num">{_fig("utility.auc_sanitized", fmt(u.auc_sanitized))}</td></tr></table>'
    )


def render(r: Report) -> str:
    """The whole page."""
    quasi = ", ".join(r.risk_raw.quasi) or "none"
    risk = (
        "<table><tr><th></th><th>records</th><th>classes</th><th>k_min</th>"
        f"<th>unique share</th><th>share below k={r.k}</th></tr>"
        f"{_risk_rows('raw', r.risk_raw)}{_risk_rows('sanitized', r.risk_sanitized)}</table>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>streamproc report: {escape(r.schema_file)}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>Data steward's report: {escape(r.schema_file)}</h1>"
        f"<p>Policy {escape(r.fingerprint)}; {_fig('n_raw', str(r.n_raw))} raw and "
        f"{_fig('n_sanitized', str(r.n_sanitized))} sanitized records. Distributions only: "
        f"no raw value of a field that is not kept; groups of fewer than {r.k} records are "
        "suppressed.</p>"
        f"<h2>Re-identification risk</h2><p>Quasi-identifiers: {escape(quasi)}</p>{risk}"
        f"<h2>Fields</h2>{_summary(r)}"
        f"<h2>Correlations</h2>{_correlations(r)}"
        f"<h2>Differential privacy</h2>{_dp(r)}"
        f"<h2>Model utility</h2>{_utility(r)}"
        f"<h2>Per field</h2>{''.join(_field(f) for f in r.fields)}"
        "</body></html>\n"
    )
