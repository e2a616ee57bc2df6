"""Micro-batch scoring with per-principal state: the one path for CLI and agent.

``Scorer.process(events, states)`` extracts features in event-time order (folding each event
into its principal's state), scores the whole batch at once with the compiled forest, then
decides per event in the same order. ``states`` is any mutable mapping principal ->
:class:`PrincipalState`; the agent keeps it as a cache in front of its changelogged table
and writes ``states[p].to_dict()`` back for the principals in ``result.touched``.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

import numpy as np

from streamproc.detector.decide import Containment, Decider
from streamproc.detector.events import AccessEvent
from streamproc.detector.explain import Reason
from streamproc.detector.features import PrincipalState, featurize
from streamproc.detector.model import Detector


@dataclass(frozen=True, slots=True)
class Scored:
    """The verdict on one event."""

    event: AccessEvent
    score: float
    flagged: bool
    history: int
    age_ms: int
    reasons: tuple[Reason, ...]
    containment: Containment | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Verdicts in input order, the feature matrix, and the principals whose state changed."""

    scored: list[Scored]
    X: np.ndarray
    touched: frozenset[str]

    @property
    def containments(self) -> list[Containment]:
        return [s.containment for s in self.scored if s.containment is not None]


class Scorer:
    """Detector + decider over batches of events with caller-owned state."""

    def __init__(self, detector: Detector, decider: Decider | None = None) -> None:
        self.detector = detector
        self.decider = decider or Decider.from_detector(detector)
        self.extractor = detector.extractor()

    def process(
        self,
        events: Sequence[AccessEvent],
        states: MutableMapping[str, PrincipalState],
        *,
        explain_all: bool = False,
    ) -> BatchResult:
        """Score and decide ``events`` (any order; processed by event time, stable)."""
        n = len(events)
        batch = featurize(self.extractor, events, states)
        X, hist, age, order = batch.X, batch.history, batch.age_ms, batch.order
        scores = self.detector.score(X) if n else np.empty(0)
        decider = self.decider
        out: list[Scored | None] = [None] * n
        for i in order:
            ev = events[i]
            s = float(scores[i])
            h = int(hist[i])
            a = int(age[i])
            st = states[ev.principal]
            flagged = decider.is_flagged(s, h, a, st)
            cont = None
            reasons: tuple[Reason, ...] = ()
            if flagged:
                # one explanation per flagged event: the decision needs it for the action
                reasons = tuple(decider.reasons(ev, X[i]))
                cont = decider.decide(ev, s, X[i], st, history=h, age_ms=a, reasons=reasons)
            else:
                decider.observe(st, s, h, a)
            if not flagged and explain_all:
                reasons = tuple(decider.reasons(ev, X[i]))
            out[i] = Scored(ev, s, flagged, h, a, reasons, cont)
        return BatchResult(
            [o for o in out if o is not None], X, frozenset(e.principal for e in events)
        )
