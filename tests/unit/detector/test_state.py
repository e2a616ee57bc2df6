"""States travelling with a model: encoding, digest, and the seeding rule of the agent."""

from __future__ import annotations

import pytest

from streamproc.detector.events import AccessEvent
from streamproc.detector.features import FeatureExtractor, PrincipalState
from streamproc.detector.state import copy_state, decode_states, encode_states, seed_state
from streamproc.errors import DetectorError

T0 = 1_709_546_400_000


def _state(n: int, t0: int = T0) -> PrincipalState:
    fx, st = FeatureExtractor(), PrincipalState()
    for i in range(n):
        fx.update(st, AccessEvent(f"e{i}", t0 + i * 60_000, "p", "a.b", "READ", 5, 50, "ip", True))
    return st


def test_encode_decode_round_trip_and_digest() -> None:
    states = {"b": _state(3), "a": _state(5)}
    doc, digest = encode_states(states)
    back = decode_states(doc, digest)
    assert {k: v.to_dict() for k, v in back.items()} == {k: v.to_dict() for k, v in states.items()}
    assert encode_states(back) == (doc, digest)
    with pytest.raises(DetectorError, match="digest"):
        decode_states(doc.replace('"n":3', '"n":4'), digest)


def test_copy_is_deep() -> None:
    st = _state(4)
    cp = copy_state(st)
    cp.datasets["a.b"][0] += 10
    assert st.datasets["a.b"][0] != cp.datasets["a.b"][0]


def test_seed_state_never_overwrites_newer_state() -> None:
    model = _state(10)
    newer = _state(12)  # same start, two more events: later last_ts
    assert seed_state(newer, model) is newer
    assert seed_state(None, None) is None
    assert seed_state(newer, None) is newer
    seeded = seed_state(None, model)
    assert seeded is not None and seeded is not model and seeded.to_dict() == model.to_dict()


def test_seed_state_replaces_older_state_but_keeps_the_incident_bookkeeping() -> None:
    model = _state(10)
    stale = _state(3)
    stale.alert_ts = T0 + 5
    stale.flagged = [["e1", T0 + 5]]
    got = seed_state(stale, model)
    assert got is not None and got.n == model.n and got.last_ts == model.last_ts
    assert got.alert_ts == T0 + 5 and got.flagged == [["e1", T0 + 5]]


def test_seed_state_keeps_the_actions_sent_by_the_later_incident() -> None:
    model, stale = _state(10), _state(3)
    stale.alert_ts, stale.reported = T0 + 5, ["NOTIFY", "SUSPEND_READ"]
    got = seed_state(stale, model)
    assert got is not None and got.reported == ["NOTIFY", "SUSPEND_READ"]
    assert got.reported is not stale.reported
    model.alert_ts, model.reported = T0 + 9, ["SUSPEND_WRITE"]  # the model's is later
    got = seed_state(stale, model)
    assert got is not None and got.alert_ts == T0 + 9 and got.reported == ["SUSPEND_WRITE"]


def test_seed_state_keeps_a_state_the_models_history_does_not_cover() -> None:
    # the model's "p" started a day after the agent's first event of "p": another history
    # under the same name, which must not take over the agent's state however recent it is
    mine = _state(3)
    stranger = _state(10, t0=T0 + 86_400_000)
    assert stranger.last_ts > mine.last_ts
    assert seed_state(mine, stranger) is mine
    # a model whose history starts at or before the agent's does continue it
    covering = _state(10, t0=T0 - 60_000)
    got = seed_state(mine, covering)
    assert got is not None and got.n == 10
