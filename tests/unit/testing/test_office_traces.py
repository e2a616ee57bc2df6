"""The office trace generator: seeded, the population shape it promises, labelled incidents."""

from __future__ import annotations

import doctest
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from streamproc.testing import office_traces
from streamproc.testing.office_traces import KINDS, OfficeConfig, Severity, deploy_ts, generate

CFG = OfficeConfig(seed=5, n_people=60, n_services=4, days=16, history_days=14)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, object]]:
    return generate(CFG)


def test_seeded(rows: list[dict[str, object]]) -> None:
    assert generate(CFG) == rows
    assert generate(replace(CFG, seed=6)) != rows


def test_rates_span_the_activity_bands(rows: list[dict[str, object]]) -> None:
    hist = Counter(r["principal"] for r in rows if int(r["ts"]) < deploy_ts(CFG))  # type: ignore[arg-type]
    rates = [c / CFG.history_days for c in hist.values()]
    assert min(rates) <= 1.0 and max(rates) > 20.0
    assert sum(x <= 2 for x in rates) >= 10 and sum(2 < x <= 10 for x in rates) >= 5


def test_weekends_and_holidays_are_quiet_and_nat_is_shared(rows: list[dict[str, object]]) -> None:
    per_day: Counter[int] = Counter()
    users_of_ip: defaultdict[str, set[object]] = defaultdict(set)
    for r in rows:
        if r["label"] or str(r["principal"]).startswith("svc"):
            continue
        per_day[datetime.fromtimestamp(int(r["ts"]) / 1000, UTC).weekday()] += 1  # type: ignore[arg-type]
        users_of_ip[str(r["source_ip"])].add(r["principal"])
    assert per_day[5] + per_day[6] < 0.1 * per_day[1]
    assert max(len(u) for u in users_of_ip.values()) >= 5  # an office NAT address
    holiday = generate(replace(CFG, holidays=("2025-01-08",), incidents_per_kind=0))
    wed = Counter(
        datetime.fromtimestamp(int(r["ts"]) / 1000, UTC).date().isoformat()  # type: ignore[arg-type]
        for r in holiday
        if not str(r["principal"]).startswith("svc")
    )
    assert wed["2025-01-08"] < 0.3 * wed["2025-01-15"]


def test_every_kind_is_injected_after_deployment(rows: list[dict[str, object]]) -> None:
    inc = [r for r in rows if r["label"]]
    assert {r["incident_kind"] for r in inc} == set(KINDS)
    assert len({r["incident_id"] for r in inc}) == len(KINDS) * CFG.incidents_per_kind
    assert min(int(r["ts"]) for r in inc) >= deploy_ts(CFG)  # type: ignore[arg-type]


def test_severity_knobs_scale_the_incidents() -> None:
    def sizes(sev: Severity) -> tuple[int, int]:
        out = generate(replace(CFG, severity=sev))
        exp = max(int(r["rows"]) for r in out if r["incident_kind"] == "bulk_export")  # type: ignore[call-overload]
        fails = sum(1 for r in out if r["incident_kind"] == "credential_stuffing")
        return exp, fails

    small = sizes(Severity(volume_x=10, failures=10))
    big = sizes(Severity(volume_x=1000, failures=100))
    assert big[0] > 50 * small[0] and big[1] == 10 * small[1]


def test_docstring_example() -> None:
    assert doctest.testmod(office_traces).failed == 0
