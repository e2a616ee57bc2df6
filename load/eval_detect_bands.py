"""Evaluate the detector as deployed, on traces of both generators, per kind and per band.

Protocol (docs/detector.md, "Evaluation"): a model is trained on the history of one trace
of one generator (``--train``); every evaluated trace is another seed, of either generator,
that neither training nor tuning used. Its history (the days before deployment) is folded
into the per-principal state unscored -- the deployed agent has seen it -- and scoring
counts from the first event after deployment. Reported: recall per incident kind and per
activity band of the victim (events a day over its history: <= 2, 2-10, > 10), the normal
flag rate per band against the target, ROC-AUC, and scoring throughput.

Seeds: training uses seed 1000 (access) / 2000 (office); tuning looked at seeds 100-103 of
both generators and, since format 5 reported them, 1-3 and 41-43; the held-out seeds of the
hour-phase change were 71-73, those of format 6 (joint novelty) 91-93, those of format 7
(new bucket by history step) 111-113, and 131-133 a second held-out set of format 7 (run
once, with and without ``--declared``); 151-153 and 171-173 those of the calibration
confidence (``--own``), 191-193 those of the per-band calibration; all of them are tuning
data since (docs/detector.md, "Evaluation"). Pick new held-out seeds for the next change.
``--recalibrate`` first calibrates the model on each trace's own history
(``Detector.recalibrated``, ``detector calibrate``). A principal of the training trace is
never carried into an evaluated one (names and dates repeat across seeds).

    python -m load.eval_detect_bands --train access --seeds 1 2
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from streamproc.detector.events import DAY_MS, AccessEvent, parse_event
from streamproc.detector.features import featurize
from streamproc.detector.model import Detector
from streamproc.detector.pipeline import Scorer
from streamproc.testing.access_traces import TraceConfig
from streamproc.testing.access_traces import generate as access_generate
from streamproc.testing.office_traces import OfficeConfig, deploy_ts
from streamproc.testing.office_traces import generate as office_generate

BANDS: tuple[str, ...] = ("<=2", "2-10", ">10")
ACCESS = TraceConfig(n_principals=80, days=17, history_days=14, incidents_per_kind=4)
OFFICE = OfficeConfig(n_people=150, n_services=8, days=24, history_days=21, incidents_per_kind=4)
TRAIN_SEED = {"access": 1000, "office": 2000}
TUNING_SEEDS = (
    1,
    2,
    3,
    41,
    42,
    43,
    71,
    72,
    73,
    91,
    92,
    93,
    100,
    101,
    102,
    103,
    111,
    112,
    113,
    131,
    132,
    133,
    151,
    152,
    153,
    171,
    172,
    173,
    191,
    192,
    193,
)


def band_of(rate: float) -> str:
    """Activity band of a principal from its events a day."""
    return BANDS[0] if rate <= 2 else (BANDS[1] if rate <= 10 else BANDS[2])


@dataclass
class Trace:
    """One labelled trace split at deployment."""

    name: str
    history: list[AccessEvent]
    rows: list[dict[str, Any]]  # after deployment, labelled
    history_days: float


def access_trace(seed: int, cfg: TraceConfig = ACCESS) -> Trace:
    rows = access_generate(replace(cfg, seed=seed))
    t0 = min(r["ts"] for r in rows) // DAY_MS * DAY_MS
    cut = t0 + cfg.history_days * DAY_MS
    return _split(f"access-{seed}", rows, cut, cfg.history_days)


def office_trace(seed: int, cfg: OfficeConfig = OFFICE) -> Trace:
    c = replace(cfg, seed=seed)
    return _split(f"office-{seed}", office_generate(c), deploy_ts(c), c.history_days)


def _split(name: str, rows: list[dict[str, Any]], cut: int, days: float) -> Trace:
    hist = [parse_event(r) for r in rows if r["ts"] < cut]
    return Trace(name, hist, [r for r in rows if r["ts"] >= cut], float(days))


def roles(tr: Trace) -> dict[str, str]:
    """The trace's role directory (principal -> role), as an organisation's identity system
    would declare it: both generators spell the role into the principal's name
    (``analyst-005-0003``; ``u0012.analyst.berlin``)."""
    names = {e.principal for e in tr.history} | {r["principal"] for r in tr.rows}
    if tr.name.startswith("office"):
        return {p: p.split(".")[1] for p in names}
    return {p: p.rsplit("-", 2)[0] for p in names}


def train(kind: str, seed: int | None = None, declared: bool = False, **kw: Any) -> Detector:
    """A model on the clean history of one trace of generator ``kind`` (``declared``: with
    that trace's roles as declared groups, ``--groups``)."""
    s = TRAIN_SEED[kind] if seed is None else seed
    tr = access_trace(s, replace(ACCESS, incidents_per_kind=0))
    if kind == "office":
        tr = office_trace(s, replace(OFFICE, incidents_per_kind=0))
    if declared:
        kw["groups"] = roles(tr)
    return Detector.train(tr.history, **kw)


@dataclass
class Result:
    """Measured on the post-deployment part of one trace."""

    name: str
    events: int
    auc: float
    seconds: float
    target: float
    normal: Counter[str] = field(default_factory=Counter)
    normal_flagged: Counter[str] = field(default_factory=Counter)
    #: normal events of principals not (yet) hit by an incident: a victim's own events after
    #: its incident are partly the incident's aftermath (state it left behind)
    clean: Counter[str] = field(default_factory=Counter)
    clean_flagged: Counter[str] = field(default_factory=Counter)
    incidents: dict[tuple[str, str], list[bool]] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)


def evaluate(
    det: Detector | None,
    tr: Trace,
    recalibrate: bool = False,
    declared: bool = False,
    target_fpr: float = 0.01,
    confidence: float | None = None,
) -> Result:
    """Fold the history into state (with ``recalibrate``, also calibrate the thresholds on
    it: ``Detector.recalibrated``), score the rest, count per kind and band. ``declared``:
    the trace's own role directory is declared first (``detector calibrate --groups``).
    ``det`` None: train on the trace's own history (``detector train`` on the days before
    deployment, then score from the end-of-training state, as the issue's user did)."""
    if det is None:
        if recalibrate:
            raise ValueError("a model trained on the trace's own history is not recalibrated")
        kw: dict[str, Any] = {"groups": roles(tr)} if declared else {}
        if confidence is not None:
            kw["confidence"] = confidence
        det = Detector.train(tr.history, target_fpr=target_fpr, **kw)
        return _score(det, tr, Scorer(det), det.initial_states())
    # The evaluated trace is another organisation: a principal of the same name in the
    # training trace (names repeat across seeds, dates too) is not this one, so nothing of
    # the model's per-principal state (nor its declared groups) is carried over.
    det = det.without_states()
    if declared:
        assert det.baselines is not None
        det.baselines = replace(det.baselines, declared={})
        det = det.with_declared(roles(tr))
    if recalibrate:
        det = det.recalibrated(tr.history)
        scorer = Scorer(det)
        states = det.initial_states()
    else:
        scorer = Scorer(det)
        states = det.initial_states()
        featurize(scorer.extractor, tr.history, states)
    return _score(det, tr, scorer, states)


def _score(det: Detector, tr: Trace, scorer: Scorer, states: dict[str, Any]) -> Result:
    """Score the trace's post-deployment part from ``states``; count per kind and band."""
    per_day = Counter(e.principal for e in tr.history)
    who = {r["principal"] for r in tr.rows}
    band = {p: band_of(per_day.get(p, 0) / tr.history_days) for p in who}
    events = [parse_event(r) for r in tr.rows]
    t0 = time.perf_counter()
    out = scorer.process(events, states).scored
    secs = time.perf_counter() - t0
    labels = np.array([int(r["label"]) for r in tr.rows])
    scores = np.array([s.score for s in out])
    res = Result(tr.name, len(events), float(roc_auc_score(labels, scores)), secs, det.target_fpr)
    hit: dict[str, bool] = {}
    kind_band: dict[str, tuple[str, str]] = {}
    first_hit: dict[str, int] = {}
    for r in tr.rows:
        if r["label"]:
            first_hit.setdefault(r["principal"], r["ts"])
    for r, s in zip(tr.rows, out, strict=True):
        b = band[r["principal"]]
        if not r["label"]:
            res.normal[b] += 1
            res.normal_flagged[b] += int(s.flagged)
            if r["ts"] < first_hit.get(r["principal"], r["ts"] + 1):
                res.clean[b] += 1
                res.clean_flagged[b] += int(s.flagged)
            continue
        iid = r["incident_id"]
        kind_band.setdefault(iid, (r["incident_kind"], b))
        hit[iid] = hit.get(iid, False) or s.flagged
    for iid, kb in kind_band.items():
        res.incidents.setdefault(kb, []).append(hit[iid])
        if not hit[iid]:
            res.missed.append(iid)
    return res


def _table(results: Sequence[Result], title: str) -> list[str]:
    kinds = sorted({k for r in results for k, _ in r.incidents})
    agg: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r in results:
        for kb, v in r.incidents.items():
            agg[kb] += v
    lines = [f"#### {title}", "", "| kind | " + " | ".join(BANDS) + " | all |", "|---" * 5 + "|"]
    for k in kinds:
        cells = []
        for b in (*BANDS, None):
            v = [x for (kk, bb), xs in agg.items() if kk == k and b in (None, bb) for x in xs]
            cells.append(f"{sum(v)}/{len(v)}" if v else "-")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    tot = [
        [x for (_, bb), xs in agg.items() if b in (None, bb) for x in xs] for b in (*BANDS, None)
    ]
    lines.append(
        "| **recall** | " + " | ".join(f"{np.mean(v):.3f}" if v else "-" for v in tot) + " |"
    )
    nf = [
        (sum(r.normal_flagged[b] for r in results), sum(r.normal[b] for r in results))
        for b in BANDS
    ]
    allf = (sum(x for x, _ in nf), sum(y for _, y in nf))
    lines.append(
        "| normal flag rate (target "
        f"{results[0].target:.2%}) | "
        + " | ".join(f"{x / y:.2%} of {y}" if y else "-" for x, y in (*nf, allf))
        + " |"
    )
    cf = [
        (sum(r.clean_flagged[b] for r in results), sum(r.clean[b] for r in results)) for b in BANDS
    ]
    allc = (sum(x for x, _ in cf), sum(y for _, y in cf))
    lines.append(
        "| ... not (yet) hit principals | "
        + " | ".join(f"{x / y:.2%} of {y}" if y else "-" for x, y in (*cf, allc))
        + " |"
    )
    aucs = ", ".join(f"{r.name} {r.auc:.4f}" for r in results)
    ev = sum(r.events for r in results) / max(sum(r.seconds for r in results), 1e-9)
    lines += ["", f"ROC-AUC: {aucs}; scoring {ev:,.0f} events/s (batch of a whole trace)"]
    missed = [m for r in results for m in r.missed]
    lines.append(f"missed: {', '.join(missed) or '-'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", choices=sorted(TRAIN_SEED), default="access")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--target-fpr", type=float, default=0.01)
    ap.add_argument(
        "--recalibrate",
        action="store_true",
        help="calibrate on each trace's own history first (detector calibrate)",
    )
    ap.add_argument(
        "--declared",
        action="store_true",
        help="declare roles as peer groups: the training trace's at training (--groups), "
        "each evaluated trace's own before calibrating (detector calibrate --groups)",
    )
    ap.add_argument(
        "--generators", nargs="+", choices=("access", "office"), default=["access", "office"]
    )
    ap.add_argument(
        "--own",
        action="store_true",
        help="train a model on each evaluated trace's own history instead (--train ignored)",
    )
    ap.add_argument(
        "--confidence",
        type=float,
        default=None,
        help="with --own: detector train --confidence (default: the model's default)",
    )
    a = ap.parse_args(argv)
    if a.own:
        return _main_own(a)
    if set(a.seeds) & {*TUNING_SEEDS, *TRAIN_SEED.values()}:
        print("note: evaluating on a tuning or training seed", file=sys.stderr)
    t0 = time.monotonic()
    det = train(a.train, declared=a.declared, target_fpr=a.target_fpr)
    print(
        f"trained on {a.train} seed {TRAIN_SEED[a.train]} in {time.monotonic() - t0:.0f} s, "
        f"threshold {det.threshold:.4f}",
        file=sys.stderr,
    )
    for gen in a.generators:
        make = access_trace if gen == "access" else office_trace
        results = [evaluate(det, make(s), a.recalibrate, a.declared) for s in a.seeds]
        seeds = " ".join(map(str, a.seeds))
        how = ", recalibrated on each trace's history" if a.recalibrate else ""
        how += ", roles declared" if a.declared else ""
        title = f"trained on {a.train}{how}, evaluated on {gen} seeds {seeds}"
        print("\n".join(_table(results, title)))
        print()
    return 0


def _main_own(a: argparse.Namespace) -> int:
    """Each trace judged by a model trained on its own history (``--own``)."""
    for gen in a.generators:
        make = access_trace if gen == "access" else office_trace
        results = [
            evaluate(
                None,
                make(s),
                declared=a.declared,
                target_fpr=a.target_fpr,
                confidence=a.confidence,
            )
            for s in a.seeds
        ]
        seeds = " ".join(map(str, a.seeds))
        how = ", roles declared" if a.declared else ""
        title = f"trained on each trace's own history{how}, evaluated on {gen} seeds {seeds}"
        print("\n".join(_table(results, title)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
