"""From a score to a decision: threshold, warm-up, cooldown, containment message.

The detector scores; :class:`Decider` decides. An event is *flagged* when its principal is
past warm-up and its score reaches the calibrated threshold. Optionally (``principal_fpr``)
it must also exceed the principal's own ``1 - principal_fpr`` score quantile, kept as a
small histogram in its state: that caps flags from principals whose normal behaviour is
noisy, at a cost in recall (measured in ``docs/detector.md``), so it is off by default.

A flagged event opens an incident and yields a :class:`Containment` unless the principal had
another flagged event within ``cooldown_ms`` before it. Then it joins the open incident,
silently unless it *escalates*: its recommended action is one the incident has not sent yet,
other than NOTIFY. So a NOTIFY-grade false alarm does not hide a real exfiltration minutes
later, and an incident that sent SUSPEND_READ and turns to mass DELETEs sends SUSPEND_WRITE.
Each action is sent at most once per incident: at most ``1 + 3`` messages (the opening one
and one per kind of suspend/revoke), and a run of same-grade flags gives one.

The cooldown slides (every flag extends the incident). Anchoring it at the first flag would
repeat a long incident's message every ``cooldown_ms`` (a scraper running for hours would
page every 30 minutes) and lose the per-incident bound; the harm of a sliding window, a
chatty principal's marginal flags holding it open indefinitely, is what escalation removes:
whatever holds it open, a new kind of action gets through. The bookkeeping (``alert_ts``,
``flagged``, ``reported``) lives in the principal's :class:`PrincipalState`, so it survives a
restart together with the features' state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streamproc.detector.catalog import signs
from streamproc.detector.events import AccessEvent
from streamproc.detector.explain import Reason, explain
from streamproc.detector.features import PrincipalState
from streamproc.detector.model import (
    BUCKETS,
    STEP_NAMES,
    Detector,
    FeatureReference,
    bucket_of,
    new_step,
)
from streamproc.errors import DetectorError

# Histogram of a principal's own scores: bins of width 0.01 over [0.3, 0.8), the ends open.
_LO, _WIDTH, _BINS = 0.3, 0.01, 50


def _quantile(hist: list[float], q: float, min_count: int) -> float:
    """Upper edge of the bin holding the ``q`` quantile; 0 with too few scores."""
    if not hist or hist[_BINS] < min_count:
        return 0.0
    above = (1.0 - q) * hist[_BINS]
    acc = 0.0
    for b in range(_BINS - 1, -1, -1):
        acc += hist[b]
        if acc > above:
            return _LO + (b + 1) * _WIDTH if b < _BINS - 1 else 1.0
    return 0.0


class RecommendedAction(StrEnum):
    """What automation or on-call should do (symbols of the Avro enum)."""

    NOTIFY = "NOTIFY"
    SUSPEND_READ = "SUSPEND_READ"
    SUSPEND_WRITE = "SUSPEND_WRITE"
    REVOKE_SESSIONS = "REVOKE_SESSIONS"


_READ_SIGNS = signs("read")
_CREDENTIAL_SIGNS = signs("credential")
_WRITE_ACTIONS = frozenset({"WRITE", "DELETE", "ADMIN"})


@dataclass(frozen=True, slots=True)
class Containment:
    """The message on the containment topic (``schemas/containment.avsc``)."""

    containment_id: str
    principal: str
    event_ids: tuple[str, ...]
    datasets: tuple[str, ...]
    score: float
    threshold: float
    reasons: tuple[Reason, ...]
    action: RecommendedAction
    ts: int  # event time of the triggering event, epoch millis
    model_version: str

    @property
    def summary(self) -> str:
        """One line on-call can read."""
        why = "; ".join(r.text for r in self.reasons) or "unusual combination of features"
        return (
            f"{self.action.value}: principal {self.principal} looks anomalous "
            f"(score {self.score:.3f} >= {self.threshold:.3f}): {why}"
        )

    def to_avro_dict(self) -> dict[str, Any]:
        """Dict matching ``schemas/containment.avsc`` (``ts`` as epoch millis)."""
        return {
            "containment_id": self.containment_id,
            "principal": self.principal,
            "event_ids": list(self.event_ids),
            "datasets": list(self.datasets),
            "score": float(self.score),
            "threshold": float(self.threshold),
            "reasons": [r.to_avro_dict() for r in self.reasons],
            "action": self.action.value,
            "ts": int(self.ts),
            "model_version": self.model_version,
            "summary": self.summary,
        }


class Decider:
    """Turns scores into flags and containment messages; parameters are fixed at init."""

    def __init__(
        self,
        threshold: float,
        *,
        cooldown_ms: int = 30 * 60_000,
        min_history: int = 0,
        min_age_ms: int = 0,
        reference: FeatureReference | None = None,
        model_version: str = "unknown",
        suspend_margin: float = 0.02,
        max_event_ids: int = 20,
        principal_fpr: float | None = None,
        min_scores: int = 300,
        evidence_thresholds: tuple[tuple[str, float], ...] = (),
    ) -> None:
        if cooldown_ms < 0 or min_history < 0 or max_event_ids < 1:
            raise DetectorError("cooldown_ms and min_history must be >= 0, max_event_ids >= 1")
        self.threshold = float(threshold)
        self.cooldown_ms = int(cooldown_ms)
        self.min_history = int(min_history)
        self.min_age_ms = int(min_age_ms)
        self.reference = reference
        self.model_version = model_version
        self.suspend_margin = float(suspend_margin)
        self.max_event_ids = int(max_event_ids)
        self.principal_fpr = principal_fpr
        self.min_scores = int(min_scores)
        self.evidence_thresholds = tuple(sorted(evidence_thresholds))
        by_bucket = dict(self.evidence_thresholds)
        self._by_bucket = tuple(by_bucket.get(b, self.threshold) for b in BUCKETS)
        # format 7: the new bucket's thresholds per history step (model.NEW_STEPS)
        self._steps = (
            tuple(by_bucket[n] for n in STEP_NAMES)
            if all(n in by_bucket for n in STEP_NAMES)
            else ()
        )

    def threshold_for(self, history: int, age_ms: int) -> float:
        """The threshold for an event after ``history`` events of its principal, ``age_ms``
        after its first: the one calibrated for its evidence bucket (new, or its activity
        band; model.BUCKETS) and, in the new bucket, for its step of history where the model
        has them (model.NEW_STEPS), else the main one."""
        b = bucket_of(history, age_ms)
        if b == 0 and self._steps:
            return self._steps[new_step(history)]
        return self._by_bucket[b]

    @classmethod
    def from_detector(cls, detector: Detector, **kwargs: Any) -> Decider:
        """A decider with the detector's calibrated threshold, warm-up and reference."""
        if "threshold" not in kwargs:  # an explicit threshold replaces all calibrated ones
            kwargs.setdefault("evidence_thresholds", detector.evidence_thresholds)
        kwargs.setdefault("threshold", detector.threshold)
        kwargs.setdefault("min_history", detector.min_history)
        kwargs.setdefault("min_age_ms", detector.min_age_ms)
        kwargs.setdefault("reference", detector.reference)
        kwargs.setdefault("model_version", detector.model_version)
        threshold = kwargs.pop("threshold")
        return cls(threshold, **kwargs)

    def is_judged(self, history: int, age_ms: int) -> bool:
        """Past warm-up: ``history`` prior events and ``age_ms`` since the first one."""
        return history >= self.min_history and age_ms >= self.min_age_ms

    def is_flagged(
        self, score: float, history: int, age_ms: int, state: PrincipalState | None = None
    ) -> bool:
        """True when the principal is past warm-up and the score reaches the threshold
        (and, given the principal's ``state``, its own score quantile)."""
        if score < self.threshold_for(history, age_ms) or not self.is_judged(history, age_ms):
            return False
        if state is None or self.principal_fpr is None:
            return True
        return score > _quantile(state.scores, 1.0 - self.principal_fpr, self.min_scores)

    def observe(self, state: PrincipalState, score: float, history: int, age_ms: int) -> None:
        """Add a judged event's score to the principal's own score histogram."""
        if self.principal_fpr is None or not self.is_judged(history, age_ms):
            return
        h = state.scores
        if not h:
            h.extend([0.0] * (_BINS + 1))
        b = int((score - _LO) / _WIDTH)
        h[0 if b < 0 else (_BINS - 1 if b >= _BINS else b)] += 1.0
        h[_BINS] += 1.0
        if h[_BINS] >= 4 * self.min_scores:  # forget slowly: halve everything
            for i in range(_BINS + 1):
                h[i] *= 0.5

    def reasons(self, event: AccessEvent, features: Sequence[float]) -> list[Reason]:
        """Why ``event`` looks anomalous (empty without a reference)."""
        if self.reference is None:
            return []
        ref = self.reference
        return explain(features, event, low=ref.low, median=ref.median, high=ref.high)

    def recommend(
        self,
        event: AccessEvent,
        score: float,
        reasons: Sequence[Reason],
        threshold: float | None = None,
    ) -> RecommendedAction:
        """Severity from the score's margin over ``threshold`` (default the main one); kind
        of action from the reasons."""
        if score < (self.threshold if threshold is None else threshold) + self.suspend_margin:
            return RecommendedAction.NOTIFY
        names = {r.feature for r in reasons}
        if names & _CREDENTIAL_SIGNS or not event.success:
            return RecommendedAction.REVOKE_SESSIONS
        if event.action in _WRITE_ACTIONS:
            return RecommendedAction.SUSPEND_WRITE
        if names & _READ_SIGNS or event.action in ("READ", "EXPORT"):
            return RecommendedAction.SUSPEND_READ
        return RecommendedAction.NOTIFY

    def decide(
        self,
        event: AccessEvent,
        score: float,
        features: Sequence[float],
        state: PrincipalState,
        *,
        history: int | None = None,
        age_ms: int | None = None,
        reasons: Sequence[Reason] | None = None,
    ) -> Containment | None:
        """Decide on ``event`` whose features were just folded into ``state`` (its principal's).

        Call it for every event (not only high scores): it keeps the principal's score
        histogram. ``history`` is the number of the principal's events seen before this one
        (default ``state.n - 1``, right for one event at a time); ``age_ms`` is the event's
        time since the principal's first event (default from ``state``). Updates the incident
        bookkeeping in ``state``; returns a containment for the first flagged event of an
        incident and for each escalation of it (module docstring). ``reasons``: the event's,
        if the caller has them already (:meth:`reasons`; computed here otherwise).
        """
        if history is None:
            history = state.n - 1
        age = event.ts - state.first_ts if age_ms is None else age_ms
        flagged = self.is_flagged(score, history, age, state)
        self.observe(state, score, history, age)
        if not flagged:
            return None
        last_flag = state.alert_ts
        state.alert_ts = max(event.ts, last_flag)
        window_start = event.ts - self.cooldown_ms
        recent = [f for f in state.flagged if int(f[1]) >= window_start]
        recent.append([event.event_id, event.ts])
        state.flagged = recent[-self.max_event_ids :]
        threshold = self.threshold_for(history, age)
        if reasons is None:
            reasons = self.reasons(event, features)
        action = self.recommend(event, score, reasons, threshold)
        if last_flag < 0 or event.ts - last_flag >= self.cooldown_ms:
            state.reported = [action.value]  # a new incident
        elif action is RecommendedAction.NOTIFY or action.value in state.reported:
            return None  # part of an incident already reported at this grade
        else:
            state.reported.append(action.value)  # an escalation of the open incident
        digest = hashlib.sha256(
            f"{event.principal}\x00{event.event_id}\x00{self.model_version}".encode()
        ).hexdigest()
        return Containment(
            containment_id=f"cnt-{digest[:20]}",
            principal=event.principal,
            event_ids=tuple(str(f[0]) for f in state.flagged),
            datasets=(event.dataset,),
            score=float(score),
            threshold=threshold,
            reasons=tuple(reasons),
            action=action,
            ts=event.ts,
            model_version=self.model_version,
        )
