from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import numpy as np
import pytest

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
