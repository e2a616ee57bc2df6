"""Raising an incident's severity never lowers its maximum score and never un-flags it.

One small office population is trained on; each example injects one incident of a kind into
a copy of the state its victim reached after the history, at two severities, and compares
the highest score of the incident's events. Count knobs (events, failures) draw the same
events first, so the stronger incident extends the weaker one; the volume knob scales the
rows of the same events, from 5x to 10^4x the victim's usual.

The volume knob does not keep the score part of the guarantee (docs/detector.md, Known
gaps): an export below the detector's norm for exports moves *towards* it as it grows (the
volume z-scores are signed), and inside the normal range the forest's score is not monotone.
Two pinned cases show each; they are strict xfails, so a fix that closes the gap turns them
red until they become ordinary tests. A larger export is never un-flagged.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.detector.decide import Decider
from streamproc.detector.events import parse_event
from streamproc.detector.features import PrincipalState, featurize
from streamproc.detector.model import Detector, ForestParams
from streamproc.detector.pipeline import Scorer
from streamproc.detector.state import copy_state
from streamproc.testing.office_traces import OfficeConfig, OfficeGenerator, Severity

CFG = OfficeConfig(seed=77, n_people=40, n_services=2, days=12, history_days=12)


@pytest.fixture(scope="module")
def world() -> tuple[Scorer, OfficeGenerator, dict[str, PrincipalState]]:
    gen = OfficeGenerator(replace(CFG, incidents_per_kind=0))
    gen.normal()
    gen.rows.sort(key=lambda r: r["ts"])
    events = [parse_event(r) for r in gen.rows]
    det = Detector.train(events, params=ForestParams(n_estimators=60))
    scorer = Scorer(det, Decider.from_detector(det, cooldown_ms=0))
    states = det.initial_states()
    return scorer, gen, states


def _max_score(
    world: tuple[Scorer, OfficeGenerator, dict[str, PrincipalState]],
    kind: str,
    victim: int,
    sev: Severity,
) -> tuple[float, bool]:
    scorer, gen, states = world
    humans = [p for p in gen.people if not p.role.service]
    p = humans[victim % len(humans)]
    g = OfficeGenerator(replace(CFG, seed=1000 + victim))  # the injection's own randomness
    g.rows = []
    g.inject(kind, p, CFG.days, f"x-{kind}", sev)
    events = [parse_event(r) for r in g.rows]
    st = {p.name: copy_state(states[p.name])} if p.name in states else {}
    out = scorer.process(events, st).scored
    return max(s.score for s in out), any(s.flagged for s in out)


KNOBS = {
    "scraping": ("events", st.integers(10, 400)),
    "off_hours_new_data": ("events", st.integers(10, 300)),
    "credential_stuffing": ("failures", st.integers(3, 300)),
    "destructive": ("events", st.integers(15, 300)),
}


SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
VOLUME = st.floats(5.0, 1e4)


@pytest.mark.parametrize("kind", sorted(KNOBS))
@SETTINGS
@given(data=st.data(), victim=st.integers(0, 10_000))
def test_more_severe_never_scores_lower(
    world: tuple[Scorer, OfficeGenerator, dict[str, PrincipalState]],
    kind: str,
    data: st.DataObject,
    victim: int,
) -> None:
    knob, strat = KNOBS[kind]
    a, b = sorted((data.draw(strat), data.draw(strat)))
    lo = _max_score(world, kind, victim, replace(Severity(), **{knob: a}))
    hi = _max_score(world, kind, victim, replace(Severity(), **{knob: b}))
    assert hi[0] >= lo[0] - 1e-12, (knob, a, b, lo, hi)
    assert hi[1] or not lo[1], (knob, a, b, lo, hi)


@SETTINGS
@given(victim=st.integers(0, 10_000), a=VOLUME, b=VOLUME)
def test_a_larger_export_is_never_unflagged(
    world: tuple[Scorer, OfficeGenerator, dict[str, PrincipalState]],
    victim: int,
    a: float,
    b: float,
) -> None:
    a, b = sorted((a, b))
    lo = _max_score(world, "bulk_export", victim, Severity(volume_x=a))
    hi = _max_score(world, "bulk_export", victim, Severity(volume_x=b))
    assert hi[1] or not lo[1], (a, b, lo, hi)


@pytest.mark.xfail(strict=True, reason="known gap: volume is not monotone (docs/detector.md)")
@pytest.mark.parametrize(
    ("victim", "a", "b"),
    [
        # a first export, 5x the victim's reads, is below its peers' exports: rows_z -1.85
        pytest.param(19, 5.0, 30.0, id="below-the-norm"),
        # rows_z 1.2: inside the normal range, where the forest is not monotone
        pytest.param(13, 5.0, 5.5, id="inside-the-normal-range"),
    ],
)
def test_a_larger_export_never_scores_lower(
    world: tuple[Scorer, OfficeGenerator, dict[str, PrincipalState]],
    victim: int,
    a: float,
    b: float,
) -> None:
    lo = _max_score(world, "bulk_export", victim, Severity(volume_x=a))
    hi = _max_score(world, "bulk_export", victim, Severity(volume_x=b))
    assert hi[0] >= lo[0] - 1e-12, (a, b, lo, hi)


def test_volume_keeps_raising_the_score_far_beyond_the_training_range(
    world: tuple[Scorer, OfficeGenerator, dict[str, PrincipalState]],
) -> None:
    scores = [_max_score(world, "bulk_export", 3, Severity(volume_x=x))[0] for x in (1e2, 1e3, 1e4)]
    assert scores[0] < scores[1] < scores[2]


def test_featurize_of_history_is_what_the_model_kept(
    world: tuple[Scorer, OfficeGenerator, dict[str, PrincipalState]],
) -> None:
    scorer, gen, states = world
    again: dict[str, PrincipalState] = {}
    featurize(scorer.extractor, [parse_event(r) for r in gen.rows], again)
    assert {k: v.to_dict() for k, v in again.items()} == {k: v.to_dict() for k, v in states.items()}
