"""``streamproc detector train|calibrate|score|evaluate``: the access-anomaly detector offline."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from streamproc.detector.baselines import read_groups
from streamproc.detector.decide import Decider
from streamproc.detector.evaluate import PLOT_HINT, evaluate_rows, plot_available, plot_roc_pr
from streamproc.detector.events import DAY_MS, iter_jsonl, read_events
from streamproc.detector.features import featurize
from streamproc.detector.model import RECALIBRATION_AIM, Detector, ForestParams
from streamproc.detector.pipeline import Scorer
from streamproc.errors import DetectorError

if TYPE_CHECKING:
    from streamproc.detector.pipeline import Scorer

log = logging.getLogger("streamproc.detector")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detector", help="access-anomaly detector: train, calibrate, score, evaluate"
    )
    ds = p.add_subparsers(dest="detector_command", metavar="ACTION", required=True)
    _register_train(ds)
    _register_calibrate(ds)
    _register_score(ds)
    _register_evaluate(ds)


def _register_train(ds: argparse._SubParsersAction) -> None:
    t = ds.add_parser("train", help="fit the isolation forest on baseline access events")
    t.add_argument("--events", required=True, type=Path, help="baseline events (JSON lines)")
    t.add_argument("--model", required=True, type=Path, help="where to write MODEL.skops")
    t.add_argument(
        "--target-fpr",
        type=float,
        default=0.01,
        help="false-positive rate on held-back normal events (default 0.01)",
    )
    t.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="share of principals per calibration fold (folds = 1/holdout, default 0.2)",
    )
    t.add_argument(
        "--confidence",
        type=float,
        default=0.7,
        help="chance, over populations resampled by principal, that the flag rate stays "
        "within the target (default 0.7)",
    )
    t.add_argument(
        "--volume-cap",
        type=float,
        default=1.0,
        help="in calibration a principal weighs at most this many times the median "
        "principal's event count (default 1; 0 = every event alike)",
    )
    t.add_argument(
        "--population",
        type=int,
        default=20,
        help="smallest population of principals the flag rate must hold for: each "
        "calibration resample draws this many (default 20; 0 = the training population)",
    )
    t.add_argument(
        "--min-history",
        type=int,
        default=0,
        help="events per principal before it is judged (default 0: every principal is "
        "judged from its first event, against its peer group while it has little history)",
    )
    t.add_argument(
        "--warmup-days",
        type=float,
        default=0.0,
        help="days of a principal's history before it is judged (default 0)",
    )
    t.add_argument(
        "--burn-in-days",
        type=float,
        default=3.0,
        help="days at the start of the events folded into state but not fitted on, while "
        "every principal is new at once (default 3)",
    )
    t.add_argument(
        "--groups",
        type=Path,
        default=None,
        help="JSON or YAML mapping principal -> peer group (role); principals not in it get "
        "a learned group (the namespace they use most)",
    )
    t.add_argument(
        "--previous",
        type=Path,
        default=None,
        help="an earlier MODEL.skops whose per-principal state training continues from "
        "(retraining on newer history carries state forward)",
    )
    t.add_argument("--trees", type=int, default=300)
    t.add_argument("--max-samples", type=int, default=512)
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_train)


def _register_calibrate(ds: argparse._SubParsersAction) -> None:
    c = ds.add_parser(
        "calibrate",
        help="fold a deployment's own history into a model's state and recalibrate its "
        "thresholds per activity band on it",
    )
    c.add_argument("--model", required=True, type=Path, help="the trained MODEL.skops")
    c.add_argument(
        "--events", required=True, type=Path, help="the deployment's recent history (JSON lines)"
    )
    c.add_argument("--out", required=True, type=Path, help="where to write the calibrated model")
    c.add_argument(
        "--aim",
        type=float,
        default=RECALIBRATION_AIM,
        help="flag rate to aim at per band, as a share of the target (default %(default)s)",
    )
    c.add_argument("--burn-in-days", type=float, default=3.0)
    c.add_argument(
        "--groups",
        type=Path,
        default=None,
        help="JSON or YAML mapping principal -> peer group (role) of the deployment's "
        "principals, applied before calibrating; others keep a learned group",
    )
    c.set_defaults(func=_calibrate)


def _register_score(ds: argparse._SubParsersAction) -> None:
    s = ds.add_parser("score", help="score access events in time order, one line per event")
    s.add_argument("--model", required=True, type=Path)
    s.add_argument("--events", required=True, type=Path)
    s.add_argument("--out", required=True, type=Path, help="SCORES.jsonl (input order)")
    s.add_argument(
        "--history",
        type=Path,
        default=None,
        help="events (JSON lines) to fold into the model's per-principal state before "
        "scoring, unscored (scoring always starts from the state training ended with)",
    )
    s.add_argument(
        "--containments",
        type=Path,
        default=None,
        help="also write the containment messages (JSON lines)",
    )
    s.add_argument(
        "--cooldown-min",
        type=float,
        default=30.0,
        help="minutes without a flag before a principal can alert again at the same grade",
    )
    s.add_argument(
        "--threshold", type=float, default=None, help="override the calibrated threshold"
    )
    s.set_defaults(func=_score)


def _register_evaluate(ds: argparse._SubParsersAction) -> None:
    e = ds.add_parser("evaluate", help="ROC-AUC, PR-AUC, recall, flag rate on labelled events")
    e.add_argument("--model", required=True, type=Path)
    e.add_argument("--events", required=True, type=Path, help="labelled events (JSON lines)")
    e.add_argument(
        "--plot", type=Path, default=None, help="ROC/PR PNG (default: next to the events, .roc.png)"
    )
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.add_argument("--threshold", type=float, default=None)
    e.set_defaults(func=_evaluate)


def _train(args: argparse.Namespace) -> int:
    events = read_events(args.events)
    previous = Detector.load(args.previous).states if args.previous is not None else None
    det = Detector.train(
        events,
        target_fpr=args.target_fpr,
        holdout=args.holdout,
        confidence=args.confidence,
        volume_cap=args.volume_cap or None,
        population=args.population or None,
        min_history=args.min_history,
        min_age_ms=int(args.warmup_days * DAY_MS),
        burn_in_ms=int(args.burn_in_days * DAY_MS),
        groups=_read_groups(args.groups) if args.groups is not None else None,
        params=ForestParams(
            n_estimators=args.trees, max_samples=args.max_samples, random_state=args.seed
        ),
        initial_states=previous,
    )
    det.save(args.model)
    tr = det.trained
    print(
        f"model {det.model_version} -> {args.model}: {tr['principals']} principals, "
        f"{tr['fit_rows']} events fitted, calibrated out-of-fold over "
        f"{tr['calibration_folds']} folds of principals; "
        f"threshold {det.threshold:.4f} at target FPR {det.target_fpr}"
    )
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    det = Detector.load(args.model)
    if args.groups is not None:
        det = det.with_declared(_read_groups(args.groups))
    det = det.recalibrated(
        read_events(args.events), aim=args.aim, burn_in_ms=int(args.burn_in_days * DAY_MS)
    )
    det.save(args.out)
    bands = ", ".join(f"{b} {t:.4f}" for b, t in det.evidence_thresholds)
    print(
        f"model {det.model_version} -> {args.out}: calibrated on "
        f"{det.trained['recalibrated']['counted']} events, threshold {det.threshold:.4f} "
        f"({bands}) at {args.aim} x target FPR {det.target_fpr}"
    )
    return 0


def _read_groups(path: Path) -> dict[str, str]:
    """principal -> group from a JSON or YAML mapping; errors name the file, not values."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DetectorError(f"cannot read groups file {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise DetectorError(f"groups file {path} is not JSON or YAML") from None
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise DetectorError(f"groups file {path} must map principal names to group names")
    return read_groups(raw.items())


def _scorer(args: argparse.Namespace, cooldown_min: float = 30.0) -> Scorer:
    det = Detector.load(args.model)
    kw: dict[str, Any] = {"cooldown_ms": int(cooldown_min * 60_000)}
    if args.threshold is not None:
        kw["threshold"] = args.threshold
    return Scorer(det, Decider.from_detector(det, **kw))


def _score(args: argparse.Namespace) -> int:
    scorer = _scorer(args, args.cooldown_min)
    states = scorer.detector.initial_states()
    if args.history is not None:
        featurize(scorer.extractor, read_events(args.history), states)
    events = read_events(args.events)
    result = scorer.process(events, states)
    try:
        with args.out.open("w", encoding="utf-8") as fh:
            for s in result.scored:
                line = {
                    "event_id": s.event.event_id,
                    "score": round(s.score, 6),
                    "anomalous": s.flagged,
                    "reasons": [r.text for r in s.reasons],
                }
                fh.write(json.dumps(line) + "\n")
        if args.containments is not None:
            with args.containments.open("w", encoding="utf-8") as fh:
                for c in result.containments:
                    fh.write(json.dumps(c.to_avro_dict()) + "\n")
    except OSError as exc:
        raise DetectorError(f"cannot write output: {exc.strerror}") from None
    n_flag = sum(s.flagged for s in result.scored)
    print(
        f"{len(events)} events scored, {n_flag} anomalous, "
        f"{len(result.containments)} containments -> {args.out}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    scorer = _scorer(args)
    rows = list(iter_jsonl(args.events))
    ev = evaluate_rows(scorer, rows)
    # An explicit --plot without matplotlib fails (plot_roc_pr says how to install it); the
    # default plot is skipped with a note.
    plot: Path | None = args.plot or args.events.with_suffix(".roc.png")
    if args.plot is None and not plot_available():
        plot = None
    if plot is not None:
        plot_roc_pr(
            ev.scores,
            ev.labels,
            plot,
            threshold=scorer.decider.threshold,
            title=f"{args.events.name} - model {scorer.detector.model_version}",
        )
    if args.json:
        json.dump(ev.report.to_dict() | {"plot": str(plot) if plot else None}, sys.stdout, indent=2)
        print()
    else:
        print(ev.report.render())
        print(f"plot              {plot if plot else 'skipped: ' + PLOT_HINT}")
    return 0
