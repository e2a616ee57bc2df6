"""Metrics of a detector on a labelled trace, and a ROC/PR plot.

Events of a principal still in warm-up (fewer than ``min_history`` events seen, or less than
``min_age_ms`` since its first event) are not judged by the detector and are left out of
every metric; the report says how many.
"""

from __future__ import annotations

import importlib.util
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from streamproc.detector.events import parse_event
from streamproc.detector.features import PrincipalState
from streamproc.detector.pipeline import Scorer
from streamproc.errors import DetectorError, RecordError


@dataclass(frozen=True)
class EvaluationReport:
    """What on-call and reviewers want to know about a detector on a labelled trace."""

    events: int
    judged: int  # events past warm-up
    normal_events: int
    incident_events: int
    incidents: int
    threshold: float
    roc_auc: float
    pr_auc: float
    incident_recall: float
    normal_flag_rate: float
    ttd_median_s: float
    ttd_p90_s: float
    ttd_max_s: float
    recall_by_kind: dict[str, float] = field(default_factory=dict)
    missed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "judged": self.judged,
            "normal_events": self.normal_events,
            "incident_events": self.incident_events,
            "incidents": self.incidents,
            "threshold": self.threshold,
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
            "incident_recall": self.incident_recall,
            "normal_flag_rate": self.normal_flag_rate,
            "ttd_median_s": self.ttd_median_s,
            "ttd_p90_s": self.ttd_p90_s,
            "ttd_max_s": self.ttd_max_s,
            "recall_by_kind": dict(self.recall_by_kind),
            "missed": list(self.missed),
        }

    def render(self) -> str:
        """A short human-readable text block."""
        lines = [
            f"events            {self.events} ({self.judged} judged, "
            f"{self.events - self.judged} in warm-up)",
            f"normal / incident {self.normal_events} / {self.incident_events} events, "
            f"{self.incidents} incidents",
            f"threshold         {self.threshold:.4f}",
            f"ROC-AUC           {self.roc_auc:.4f}",
            f"PR-AUC            {self.pr_auc:.4f}",
            f"incident recall   {self.incident_recall:.3f}",
            f"normal flag rate  {self.normal_flag_rate:.4f}",
            f"time to detection median {self.ttd_median_s:.0f} s, p90 {self.ttd_p90_s:.0f} s, "
            f"max {self.ttd_max_s:.0f} s",
        ]
        for kind, r in sorted(self.recall_by_kind.items()):
            lines.append(f"  recall {kind:<22} {r:.3f}")
        if self.missed:
            lines.append("missed: " + ", ".join(self.missed))
        return "\n".join(lines)


def evaluate_scores(
    scores: np.ndarray,
    flagged: np.ndarray,
    judged: np.ndarray,
    labels: np.ndarray,
    ts: np.ndarray,
    incident_ids: Sequence[str | None],
    incident_kinds: Sequence[str | None],
    threshold: float,
) -> EvaluationReport:
    """Metrics from per-event arrays (all of the same length, in any order).

    ``flagged`` is the decision per event (score over threshold and past warm-up);
    ``judged`` masks events past warm-up. An incident counts as detected when any of its
    judged events is flagged; time to detection runs from its first event.
    """
    scores = np.asarray(scores, dtype=np.float64)
    flagged = np.asarray(flagged, dtype=bool)
    judged = np.asarray(judged, dtype=bool)
    labels = np.asarray(labels, dtype=np.int8)
    ts = np.asarray(ts, dtype=np.int64)
    n = len(scores)
    if not (len(flagged) == len(judged) == len(labels) == len(ts) == len(incident_ids) == n):
        raise DetectorError("evaluation arrays differ in length")
    y = labels[judged]
    s = scores[judged]
    if y.min(initial=1) == y.max(initial=0):
        raise DetectorError("evaluation needs both normal and incident events past warm-up")
    normal = judged & (labels == 0)

    first: dict[str, int] = {}
    detected: dict[str, int] = {}
    kind_of: dict[str, str] = {}
    for i in range(n):
        iid = incident_ids[i]
        if not iid:
            continue
        kind_of[iid] = incident_kinds[i] or "unknown"
        t = int(ts[i])
        if iid not in first or t < first[iid]:
            first[iid] = t
        if flagged[i] and judged[i] and (iid not in detected or t < detected[iid]):
            detected[iid] = t
    ids = sorted(first)
    ttd = np.array([(detected[k] - first[k]) / 1000.0 for k in ids if k in detected])
    by_kind: dict[str, list[bool]] = {}
    for k in ids:
        by_kind.setdefault(kind_of[k], []).append(k in detected)
    return EvaluationReport(
        events=n,
        judged=int(judged.sum()),
        normal_events=int(normal.sum()),
        incident_events=int((y == 1).sum()),
        incidents=len(ids),
        threshold=float(threshold),
        roc_auc=float(roc_auc_score(y, s)),
        pr_auc=float(average_precision_score(y, s)),
        incident_recall=(sum(k in detected for k in ids) / len(ids)) if ids else float("nan"),
        normal_flag_rate=float(flagged[normal].mean()) if normal.any() else float("nan"),
        ttd_median_s=float(np.median(ttd)) if len(ttd) else float("nan"),
        ttd_p90_s=float(np.quantile(ttd, 0.9)) if len(ttd) else float("nan"),
        ttd_max_s=float(ttd.max()) if len(ttd) else float("nan"),
        recall_by_kind={k: sum(v) / len(v) for k, v in by_kind.items()},
        missed=tuple(k for k in ids if k not in detected),
    )


PLOT_HINT = "the ROC/PR plot needs matplotlib: pip install 'streamproc[plot]'"


def plot_available() -> bool:
    """True when the optional plotting dependency (matplotlib) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def plot_roc_pr(
    scores: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    *,
    threshold: float | None = None,
    title: str = "access-anomaly detector",
) -> None:
    """Write a PNG with the ROC curve and the precision-recall curve side by side.

    Needs matplotlib, an optional dependency (``pip install 'streamproc[plot]'``): without it
    this raises :class:`~streamproc.errors.DetectorError` saying so.
    """
    # Imported here: matplotlib is the optional `plot` extra, and slow to import.
    try:
        import matplotlib
    except ImportError:
        raise DetectorError(PLOT_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(labels, dtype=np.int8)
    s = np.asarray(scores, dtype=np.float64)
    fpr, tpr, _ = roc_curve(y, s)
    prec, rec, _ = precision_recall_curve(y, s)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.5))
    a.plot(fpr, tpr, lw=1.5, label=f"ROC-AUC {roc_auc_score(y, s):.3f}")
    a.plot([0, 1], [0, 1], ls=":", c="grey")
    if threshold is not None:
        neg, pos = s[y == 0], s[y == 1]
        fx = float((neg >= threshold).mean()) if len(neg) else 0.0
        fy = float((pos >= threshold).mean()) if len(pos) else 0.0
        a.scatter([fx], [fy], c="red", zorder=3, label=f"threshold {threshold:.3f}")
    a.set_xscale("symlog", linthresh=0.01)
    a.set_xlabel("false-positive rate (normal events flagged)")
    a.set_ylabel("true-positive rate (incident events flagged)")
    a.set_title("ROC")
    a.legend(loc="lower right")
    b.plot(rec, prec, lw=1.5, label=f"PR-AUC {average_precision_score(y, s):.3f}")
    b.set_xlabel("recall")
    b.set_ylabel("precision")
    b.set_title("precision-recall")
    b.legend(loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(Path(path), dpi=110)
    except OSError as exc:
        raise DetectorError(f"cannot write plot {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)


@dataclass(frozen=True)
class TraceEvaluation:
    """A report plus the judged scores and labels it came from (for plots)."""

    report: EvaluationReport
    scores: np.ndarray
    labels: np.ndarray


def evaluate_rows(
    scorer: Scorer,
    rows: Sequence[dict[str, Any]],
    states: MutableMapping[str, PrincipalState] | None = None,
) -> TraceEvaluation:
    """Score labelled JSON-lines dicts (event-time order) and measure.

    Scoring starts from ``states`` (default: the model's end-of-training states, copied).

    Rows carry the access-event fields plus ``label`` (0/1) and optionally
    ``incident_id`` / ``incident_kind``; rows with a label but no incident id form one
    incident each.
    """
    events = []
    for k, r in enumerate(rows, 1):
        try:
            events.append(parse_event(r))
        except RecordError as exc:
            raise DetectorError(f"labelled event #{k}: {exc}") from None
    labels = np.array([int(bool(r.get("label", 0))) for r in rows], dtype=np.int8)
    ids: list[str | None] = [
        (r.get("incident_id") or (f"event:{r['event_id']}" if lab else None))
        for r, lab in zip(rows, labels, strict=True)
    ]
    kinds: list[str | None] = [r.get("incident_kind") for r in rows]
    if states is None:
        states = scorer.detector.initial_states()
    result = scorer.process(events, states)
    scores = np.array([s.score for s in result.scored])
    flagged = np.array([s.flagged for s in result.scored])
    judged = np.array([scorer.decider.is_judged(s.history, s.age_ms) for s in result.scored])
    ts = np.array([e.ts for e in events], dtype=np.int64)
    report = evaluate_scores(
        scores, flagged, judged, labels, ts, ids, kinds, scorer.decider.threshold
    )
    return TraceEvaluation(report, scores[judged], labels[judged])
