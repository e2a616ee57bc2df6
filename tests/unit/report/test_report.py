"""The steward's report, end to end: ``streamproc sanitize`` then ``streamproc report`` on
customer records with canaries, rendered in headless Chromium (Debian package)."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro import parse_schema

from streamproc.avro.schema import read_schema_json
from streamproc.cli.main import main
from streamproc.keys import Keyring
from streamproc.policy import derive_schema
from streamproc.report import Report, load_inputs, report_from_files
from streamproc.report.page import fmt
from streamproc.testing.customers import customer_records
from tests.unit.report.browser import open_page

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "schemas" / "customer_profile.avsc"
N = 800
SHARED = 6
RARE_SEGMENT = "PLATINUM"  # made rare on purpose: 3 records, under k=5


@dataclass(frozen=True)
class Made:
    raw: Path
    clean: Path
    html: Path
    records: list[dict[str, Any]]
    report: Report


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    d = tmp_path_factory.mktemp("report")
    schema = parse_schema(read_schema_json(SCHEMA)[0])
    records = [r for r, _ in customer_records(N, seed=11, canary=True)]
    for i, r in enumerate(records):
        if i < 2 * SHARED:  # a canary shared by more than k records: a group that could show
            r["full_name"] = r["email"] = "CANARY-shared-4f1d9e"
        r["segment"] = (
            RARE_SEGMENT if i < 3 else ("GOLD" if r["segment"] == RARE_SEGMENT else r["segment"])
        )
    raw, clean, html = d / "raw.avro", d / "clean.avro", d / "report.html"
    with raw.open("wb") as fh:
        fastavro.writer(fh, schema, records)
    Keyring.generate().save(d / "keyring.json")
    args = ["sanitize", "--schema", str(SCHEMA), "--keyring", str(d / "keyring.json")]
    assert main([*args, "--no-progress", str(raw), str(clean)]) == 0
    rc = main(
        [
            *("report", "--schema", str(SCHEMA), "--raw", str(raw), "--sanitized", str(clean)),
            *("--label", "marketing_opt_in", "--out", str(html)),
        ]
    )
    assert rc == 0
    report = report_from_files(SCHEMA, raw, clean, label="marketing_opt_in")
    return Made(raw, clean, html, records, report)


def raw_sensitive_strings(made: Made) -> set[str]:
    """Every raw value, as text, of every field whose action is not keep.

    k-anonymity ladder fields are left out: at their finest level they publish the value
    itself for groups of >= k records (tests/unit/cli/test_sanitize_anonymity.py checks them).
    """
    inputs = load_inputs(SCHEMA, made.raw, made.clean)
    spec = derive_schema(SCHEMA).anonymity
    laddered = set(spec.fields) if spec is not None else set()
    values: set[str] = set()
    for f in inputs.fields:
        if f.action == "keep" or f.path in laddered:
            continue
        for r in made.records:
            v = r.get(f.path)
            if isinstance(v, str):
                values.add(v)
            elif isinstance(v, float):
                values |= {repr(v), f"{v:.2f}", f"{v:.4f}"}
            elif isinstance(v, dt.date):
                values |= {v.isoformat(), str((v - dt.date(1970, 1, 1)).days)}
    return {v for v in values if len(v) >= 6}  # shorter strings occur in any page


def test_no_raw_value_of_a_non_keep_field_is_in_the_page(made: Made) -> None:
    html = made.html.read_text()
    canaries = {v for v in raw_sensitive_strings(made) if v.startswith("CANARY-")}
    assert len(canaries) >= 4 * N  # the test has teeth: every sensitive string is a canary
    leaked = [v for v in raw_sensitive_strings(made) if v in html]
    assert leaked == []
    # The postcode ladder keeps at most "CANA" of a canary postcode (shared by all records),
    # mask(keep_first=1) its "C": no more.
    assert "CANAR" not in html


def test_groups_under_k_are_suppressed(made: Made) -> None:
    html = made.html.read_text()
    assert RARE_SEGMENT not in html
    assert "GOLD" in html and "(groups &lt; k)" in html


def test_page_is_self_contained(made: Made) -> None:
    html = made.html.read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "default-src 'none'" in html


def figures(report: Report) -> dict[str, str]:
    """What the page must show, formatted as the page formats it."""
    out = {"n_raw": str(report.n_raw), "n_sanitized": str(report.n_sanitized)}
    for label, r in (("raw", report.risk_raw), ("sanitized", report.risk_sanitized)):
        out |= {
            f"risk.{label}.records": str(r.records),
            f"risk.{label}.classes": str(r.classes),
            f"risk.{label}.k_min": str(r.k_min),
            f"risk.{label}.unique_share": fmt(r.unique_share),
            f"risk.{label}.below_k_share": fmt(r.below_k_share),
        }
    for f in report.fields:
        p = f.policy.path
        out |= {
            f"{p}.action": f.policy.action,
            f"{p}.tv": fmt(f.total_variation),
            f"{p}.w1": fmt(f.wasserstein),
            f"{p}.info_loss": fmt(f.info_loss),
            f"{p}.epsilon": fmt(f.epsilon, 3),
        }
    assert report.correlations is not None and report.utility is not None
    out["corr.max_abs_change"] = fmt(report.correlations.max_abs_change)
    for path, e in report.dp.per_field:
        out[f"dp.{path}"] = fmt(e, 3)
    out["dp.max_records"] = str(report.dp.max_records_per_subject)
    out["dp.per_subject"] = fmt(report.dp.per_subject, 3)
    u = report.utility
    out |= {
        "utility.accuracy_raw": fmt(u.accuracy_raw),
        "utility.accuracy_sanitized": fmt(u.accuracy_sanitized),
        "utility.auc_raw": fmt(u.auc_raw),
        "utility.auc_sanitized": fmt(u.auc_sanitized),
    }
    return out


DRAWN = """
[...document.querySelectorAll('svg.plot')].map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('rect.bar, rect.cell')];
  return {w: box.width, h: box.height,
          drawn: marks.filter(m => m.getBBox().width > 0 && m.getBBox().height > 0).length,
          positive: marks.filter(m => m.dataset.value !== '0').length};
})
"""


@pytest.mark.slow
def test_chromium_renders_every_plot_without_errors(made: Made, tmp_path: Path) -> None:
    with open_page(made.html.as_uri()) as page:
        plots = page.evaluate(DRAWN)
        shown = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[data-figure]')]"
            ".map(e => [e.dataset.figure, e.textContent]))"
        )
        page.screenshot(tmp_path / "report.png")
        assert page.errors == []
    kept = [f for f in made.report.fields if f.sanitized is not None]
    assert len(plots) == len(made.report.fields) + len(kept) + 2  # + two heatmaps
    for plot in plots:
        assert plot["w"] > 0 and plot["h"] > 0
        assert plot["drawn"] == plot["positive"] > 0
    assert shown == figures(made.report)
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_figures_agree_with_an_independent_count(made: Made) -> None:
    r = made.report
    # k-anonymity on the raw quasi-identifiers, counted here from the records themselves.
    quasi = ("birth_date", "postcode", "city", "gender")
    groups = Counter(tuple(str(rec[q]) for q in quasi) for rec in made.records)
    assert r.risk_raw.quasi == quasi
    assert r.risk_raw.k_min == min(groups.values())
    assert r.risk_raw.unique_share == sum(1 for c in groups.values() if c == 1) / N
    by_path = {f.policy.path: f for f in r.fields}
    for path in ("full_name", "phone", "credit_score"):
        assert by_path[path].info_loss == 1.0 and by_path[path].sanitized is None
    for path in ("country", "segment", "signup_ts"):
        assert by_path[path].total_variation == 0.0 and by_path[path].info_loss == 0.0
    assert by_path["annual_income"].epsilon == 1.0
    assert 0 < by_path["annual_income"].info_loss < 0.5  # Laplace noise b=1000 on ~36k incomes
    assert r.dp.subject_field == "customer_id" and r.dp.max_records_per_subject == 1
    assert r.utility is not None and r.utility.n_train + r.utility.n_test == N
