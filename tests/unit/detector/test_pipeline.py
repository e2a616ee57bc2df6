from __future__ import annotations

from typing import Any

import pytest

from streamproc.detector.decide import Decider
from streamproc.detector.events import parse_event
from streamproc.detector.model import Detector
from streamproc.detector.pipeline import Scorer


def test_every_flagged_event_is_explained_once(
    small_detector: Detector, labelled_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision needs a flagged event's reasons for its action (escalation, decide.py);
    the scorer hands them over instead of the decider explaining the event a second time
    (an explanation costs about as much as featurizing an event)."""
    calls = 0
    explain = Decider.reasons

    def counted(self: Decider, *a: Any) -> Any:
        nonlocal calls
        calls += 1
        return explain(self, *a)

    monkeypatch.setattr(Decider, "reasons", counted)
    res = Scorer(small_detector).process(
        [parse_event(r) for r in labelled_rows], small_detector.initial_states()
    )
    flagged = [s for s in res.scored if s.flagged]
    assert flagged and res.containments and len(res.containments) < len(flagged)
    assert calls == len(flagged)
    assert all(s.reasons for s in flagged)
    for s in res.scored:
        if s.containment is not None:
            assert s.containment.reasons == s.reasons
