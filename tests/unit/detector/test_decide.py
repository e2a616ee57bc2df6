from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst  # st: a principal's state in this module

from streamproc.detector.decide import Containment, Decider, RecommendedAction
from streamproc.detector.events import AccessEvent
from streamproc.detector.features import FEATURE_NAMES, PrincipalState
from streamproc.detector.model import FeatureReference

SCHEMA = Path(__file__).parents[3] / "schemas" / "containment.avsc"
T0 = 1_709_546_400_000
N = len(FEATURE_NAMES)
REF = FeatureReference(low=(-2.0,) * N, median=(0.0,) * N, high=(2.0,) * N)
IDX = {n: i for i, n in enumerate(FEATURE_NAMES)}


def ev(i: int, ts: int, action: str = "READ", success: bool = True) -> AccessEvent:
    return AccessEvent(f"e{i}", ts, "alice", "hr.salaries", action, 5, 900, "185.2.3.4", success)


def mature_state(n: int = 500) -> PrincipalState:
    return PrincipalState(n=n, first_ts=T0 - 30 * 86_400_000)


def feats(**vals: float) -> np.ndarray:
    f = np.zeros(N)
    for k, v in vals.items():
        f[IDX[k]] = v
    return f


def decider(**kw: object) -> Decider:
    return Decider(0.6, reference=REF, model_version="m1", **kw)  # type: ignore[arg-type]


def test_below_threshold_or_in_warm_up_is_not_flagged() -> None:
    d = decider(min_history=100, min_age_ms=86_400_000)
    assert d.decide(ev(1, T0), 0.59, feats(), mature_state()) is None
    assert d.decide(ev(1, T0), 0.99, feats(), PrincipalState(n=50)) is None
    assert d.decide(ev(1, T0), 0.99, feats(), PrincipalState(n=500, first_ts=T0 - 1000)) is None
    assert d.is_flagged(0.6, 100, 86_400_000) and not d.is_flagged(0.6, 99, 86_400_000)
    assert not d.is_flagged(0.6, 100, 86_399_999)


def test_one_incident_one_message_then_cooldown_expires() -> None:
    d = decider(cooldown_ms=30 * 60_000)
    st = mature_state()
    out = [d.decide(ev(k, T0 + k * 60_000), 0.8, feats(dataset_rare=9), st) for k in range(50)]
    sent = [c for c in out if c is not None]
    assert len(sent) == 1  # flags every minute for 50 minutes: one incident
    later = d.decide(ev(99, T0 + 49 * 60_000 + 31 * 60_000), 0.8, feats(dataset_rare=9), st)
    assert later is not None and later.event_ids[-1] == "e99"


def test_containment_collects_recent_flagged_events() -> None:
    d = decider(cooldown_ms=10 * 60_000)
    st = mature_state()
    d.decide(ev(1, T0), 0.7, feats(), st)
    # after the cooldown, flags of the past incident are not carried into the new one
    c = d.decide(ev(2, T0 + 11 * 60_000), 0.7, feats(), st)
    assert c is not None and c.event_ids == ("e2",)


def test_state_with_cooldown_survives_json() -> None:
    d = decider()
    st = mature_state()
    assert d.decide(ev(1, T0), 0.9, feats(), st) is not None
    st2 = PrincipalState.from_dict(json.loads(json.dumps(st.to_dict())))
    assert d.decide(ev(2, T0 + 60_000), 0.9, feats(), st2) is None  # still cooling down


@pytest.mark.parametrize(
    ("event", "score", "f", "action"),
    [
        (ev(1, T0), 0.61, feats(rows_z=9), RecommendedAction.NOTIFY),
        (ev(1, T0), 0.9, feats(rows_z=9), RecommendedAction.SUSPEND_READ),
        (ev(1, T0, "DELETE"), 0.9, feats(action_rare=9), RecommendedAction.SUSPEND_WRITE),
        (ev(1, T0, success=False), 0.9, feats(fail_short=4), RecommendedAction.REVOKE_SESSIONS),
    ],
)
def test_recommended_action(
    event: AccessEvent, score: float, f: np.ndarray, action: RecommendedAction
) -> None:
    c = decider().decide(event, score, f, mature_state())
    assert c is not None and c.action is action


def test_containment_validates_against_schema_and_reads_well() -> None:
    c = decider().decide(
        ev(1, T0), 0.9, feats(dataset_rare=8, ip_rare=7, time_rare=1), mature_state()
    )
    assert isinstance(c, Containment)
    schema = fastavro.parse_schema(json.loads(SCHEMA.read_text()))
    d = c.to_avro_dict()
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, d)
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, schema, schema)
    assert isinstance(back, dict) and back["principal"] == "alice"
    assert [r["feature"] for r in d["reasons"]] == ["dataset_rare", "ip_rare"]
    assert "hr.salaries" in d["summary"] and "185.2.3.4" in d["summary"]
    assert d["model_version"] == "m1" and d["threshold"] == 0.6 and d["ts"] == T0
    assert (
        c.containment_id == decider().decide(ev(1, T0), 0.9, feats(), mature_state()).containment_id
    )  # type: ignore[union-attr]


def test_unusual_combination_still_gets_a_reason() -> None:
    c = decider().decide(ev(1, T0), 0.9, feats(rate_rel=1.5, volume_rel=1.0), mature_state())
    assert c is not None and [r.feature for r in c.reasons] == ["rate_rel"]


def test_principal_quantile_gate_mutes_a_noisy_principal() -> None:
    d = decider(principal_fpr=0.05, min_scores=100)
    st = mature_state()
    # a principal whose ordinary scores sit around 0.65, above the global threshold 0.6
    for k in range(300):
        d.observe(st, 0.62 + 0.06 * (k % 10) / 10, 500, 10**10)
    assert not d.is_flagged(0.66, 500, 10**10, st)
    assert d.is_flagged(0.75, 500, 10**10, st)
    assert decider().is_flagged(0.66, 500, 10**10, st)  # gate off by default
    assert len(json.dumps(st.to_dict()["scores"])) < 1000


def test_each_evidence_bucket_meets_its_own_threshold() -> None:
    from streamproc.detector.decide import Decider

    day = 86_400_000
    d = Decider(0.5, evidence_thresholds=(("<=2", 0.55), ("new", 0.6)))
    assert [d.threshold_for(h, 30 * day) for h in (0, 9, 10, 60, 61, 500)] == [
        0.6,
        0.6,
        0.55,
        0.55,
        0.5,
        0.5,
    ]
    assert not d.is_flagged(0.58, 3, 0) and d.is_flagged(0.58, 20, 30 * day)
    # the same history over a shorter life is a busier principal: the main threshold
    assert d.is_flagged(0.51, 20, day) and not d.is_flagged(0.51, 20, 30 * day)


# --- escalation within an open incident ---------------------------------------------------

NOTIFY_SCORE, INCIDENT_SCORE = 0.61, 0.9  # threshold 0.6, suspend margin 0.02


def test_a_marginal_false_alarm_does_not_swallow_a_real_incident() -> None:
    d = decider(cooldown_ms=30 * 60_000)
    st = mature_state()
    first = d.decide(ev(1, T0), NOTIFY_SCORE, feats(rows_z=3), st)
    real = d.decide(ev(2, T0 + 5 * 60_000), INCIDENT_SCORE, feats(rows_z=9), st)
    assert first is not None and first.action is RecommendedAction.NOTIFY
    assert real is not None and real.action is RecommendedAction.SUSPEND_READ
    assert real.containment_id != first.containment_id
    assert real.event_ids == ("e1", "e2")  # the incident's flagged events so far
    # the escalation is the incident's: more of it stays silent
    assert d.decide(ev(3, T0 + 6 * 60_000), INCIDENT_SCORE, feats(rows_z=9), st) is None
    assert d.decide(ev(4, T0 + 7 * 60_000), NOTIFY_SCORE, feats(), st) is None


@pytest.mark.parametrize(
    ("score", "action"),
    [(NOTIFY_SCORE, "READ"), (INCIDENT_SCORE, "READ"), (INCIDENT_SCORE, "DELETE")],
)
def test_a_run_of_same_grade_flags_gives_one_message(score: float, action: str) -> None:
    d = decider(cooldown_ms=30 * 60_000)
    st = mature_state()
    out = [d.decide(ev(k, T0 + k * 60_000, action), score, feats(), st) for k in range(90)]
    assert [k for k, c in enumerate(out) if c is not None] == [0]


def test_each_new_kind_of_suspension_is_an_escalation_once() -> None:
    d = decider(cooldown_ms=30 * 60_000)
    st = mature_state()
    read = d.decide(ev(1, T0), INCIDENT_SCORE, feats(rows_z=9), st)
    write = d.decide(ev(2, T0 + 60_000, "DELETE"), INCIDENT_SCORE, feats(action_rare=9), st)
    assert read is not None and read.action is RecommendedAction.SUSPEND_READ
    assert write is not None and write.action is RecommendedAction.SUSPEND_WRITE
    assert d.decide(ev(3, T0 + 2 * 60_000, "DELETE"), INCIDENT_SCORE, feats(), st) is None
    assert d.decide(ev(4, T0 + 3 * 60_000), INCIDENT_SCORE, feats(rows_z=9), st) is None
    revoke = d.decide(ev(5, T0 + 4 * 60_000, success=False), INCIDENT_SCORE, feats(), st)
    assert revoke is not None and revoke.action is RecommendedAction.REVOKE_SESSIONS
    assert st.reported == ["SUSPEND_READ", "SUSPEND_WRITE", "REVOKE_SESSIONS"]
    # once the incident has cooled down, the next flag opens a new one at its own grade
    again = d.decide(ev(6, T0 + 40 * 60_000), NOTIFY_SCORE, feats(), st)
    assert again is not None and st.reported == ["NOTIFY"] and again.event_ids == ("e6",)


_FLAG = hst.tuples(
    hst.integers(0, 30 * 60_000 - 1),  # gap to the previous flag: within the cooldown
    hst.floats(0.6, 1.0),  # all flagged at threshold 0.6, NOTIFY below 0.62
    hst.sampled_from(["READ", "EXPORT", "WRITE", "DELETE", "ADMIN", "LIST"]),
    hst.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(flags=hst.lists(_FLAG, min_size=1, max_size=40))
def test_messages_per_incident_are_bounded_by_its_distinct_actions(
    flags: list[tuple[int, float, str, bool]],
) -> None:
    d = decider(cooldown_ms=30 * 60_000)
    state = mature_state()
    ts, sent, seen = T0, [], set()
    for k, (gap, score, action, success) in enumerate(flags):
        ts += gap
        e = ev(k, ts, action, success)
        seen.add(d.recommend(e, score, d.reasons(e, feats()), d.threshold))
        c = d.decide(e, score, feats(), state)
        if c is not None:
            sent.append(c)
    assert sent and sent[0].event_ids[-1] == "e0"  # the first flag opens the incident
    assert len(sent) <= 1 + len(seen - {RecommendedAction.NOTIFY})
    later = [c.action for c in sent[1:]]
    assert RecommendedAction.NOTIFY not in later and sent[0].action not in later
    assert len(set(later)) == len(later)  # each action at most once
    assert {c.action for c in sent} == seen - {RecommendedAction.NOTIFY} | {sent[0].action}


def test_actions_sent_survive_json_with_the_incident() -> None:
    d = decider()
    state = mature_state()
    assert d.decide(ev(1, T0), NOTIFY_SCORE, feats(), state) is not None
    assert d.decide(ev(2, T0 + 60_000), INCIDENT_SCORE, feats(rows_z=9), state) is not None
    back = PrincipalState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back.reported == ["NOTIFY", "SUSPEND_READ"]
    assert d.decide(ev(3, T0 + 2 * 60_000), INCIDENT_SCORE, feats(rows_z=9), back) is None
    c = d.decide(ev(4, T0 + 3 * 60_000, "DELETE"), INCIDENT_SCORE, feats(), back)
    assert c is not None and c.action is RecommendedAction.SUSPEND_WRITE


def test_a_state_from_before_escalation_loads_and_keeps_its_incident_open() -> None:
    d = decider()
    state = mature_state()
    assert d.decide(ev(1, T0), INCIDENT_SCORE, feats(rows_z=9), state) is not None
    old = {k: v for k, v in state.to_dict().items() if k != "reported"}
    old["v"] = 5
    back = PrincipalState.from_dict(json.loads(json.dumps(old)))
    assert back.reported == [] and back.alert_ts == T0
    # still cooling down: a marginal flag joins the incident silently; what it sent before
    # the upgrade is unknown, so each suspend/revoke may be sent once more, never swallowed
    assert d.decide(ev(2, T0 + 60_000), NOTIFY_SCORE, feats(), back) is None
    c = d.decide(ev(3, T0 + 2 * 60_000), INCIDENT_SCORE, feats(rows_z=9), back)
    assert c is not None and c.action is RecommendedAction.SUSPEND_READ
    assert d.decide(ev(4, T0 + 3 * 60_000), INCIDENT_SCORE, feats(rows_z=9), back) is None
