from __future__ import annotations

from collections import Counter
from dataclasses import replace

from streamproc.detector.events import parse_event
from streamproc.testing.access_traces import KINDS, VARIANTS, TraceConfig, generate

CFG = TraceConfig(seed=5, n_principals=20, days=9, history_days=6, incidents_per_kind=3)


def test_seeded_and_sorted() -> None:
    a = generate(CFG)
    assert a == generate(CFG)
    assert a != generate(replace(CFG, seed=6))
    ts = [e["ts"] for e in a]
    assert ts == sorted(ts)
    assert len({e["event_id"] for e in a}) == len(a)


def test_every_kind_and_variant_is_labelled_after_the_history() -> None:
    rows = generate(CFG)
    inc = {e["incident_id"]: e for e in rows if e["label"] == 1}
    assert {e["incident_kind"] for e in inc.values()} == set(KINDS)
    variants = {i.rsplit("-", 1)[1] for i in inc}
    assert variants == {v for vs in VARIANTS.values() for v in vs}
    start = rows[0]["ts"] - rows[0]["ts"] % 86_400_000
    first_incident = min(e["ts"] for e in rows if e["label"] == 1)
    assert first_incident >= start + CFG.history_days * 86_400_000
    assert all(e["incident_id"] is None for e in rows if e["label"] == 0)


def test_rows_are_valid_access_events_with_population_variety() -> None:
    rows = generate(CFG)
    for r in rows[:: max(1, len(rows) // 500)]:
        parse_event(r)
    roles = Counter(r["principal"].rsplit("-", 2)[0] for r in rows)
    assert len(roles) >= 4
    assert Counter(r["action"] for r in rows).keys() >= {"READ", "WRITE", "EXPORT", "DELETE"}


def test_baseline_has_no_incidents() -> None:
    rows = generate(replace(CFG, incidents_per_kind=0))
    assert not any(r["label"] for r in rows)
