"""The detector: an isolation forest over access features, trained, scored and persisted.

A :class:`Detector` only *scores* (higher = more anomalous, the isolation-forest score ``s``
in (0, 1]); it also carries what training measured about normal traffic -- the threshold
calibrated to a target false-positive rate on held-back normal events and per-feature
reference quantiles for explanations -- for the decision side (:mod:`.decide`) to use.

Models are persisted with skops (never pickle: loading a pickle runs code). Loading accepts
only the types listed in :data:`TRUSTED_TYPES` and refuses anything else.
"""

from __future__ import annotations

import copy
import hashlib
import json
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from streamproc.detector.baselines import Baselines, build_baselines
from streamproc.detector.catalog import FEATURE_BOUNDS, FEATURE_NAMES, SIGNED_FEATURES
from streamproc.detector.events import DAY_MS, AccessEvent
from streamproc.detector.features import (
    FeatureBatch,
    FeatureConfig,
    FeatureExtractor,
    PrincipalState,
    featurize,
)
from streamproc.detector.forest import CompiledForest
from streamproc.detector.state import copy_state, decode_states, encode_states
from streamproc.detector.tail import JOINT_GAIN, TailReference
from streamproc.errors import DetectorError, ModelLoadError

MODEL_FORMAT = "streamproc.detector/7"
#: Older formats this version still loads and scores as they were written: format 5 has the
#: same features, state and thresholds, and a tail reference without the joint novelty
#: (tail.py), so its scores are unchanged; format 6 has no thresholds per history step of
#: the new bucket (:data:`NEW_STEPS`), so its flags are unchanged (recalibrating it adds none).
FORMAT_6 = "streamproc.detector/6"
COMPATIBLE_FORMATS: frozenset[str] = frozenset({MODEL_FORMAT, FORMAT_6, "streamproc.detector/5"})
#: Formats this version recognises but cannot use (other feature vector, or, format 4,
#: thresholds per history count instead of per evidence bucket); retrain.
OLD_FORMATS: frozenset[str] = frozenset(
    {
        "streamproc.detector/1",
        "streamproc.detector/2",
        "streamproc.detector/3",
        "streamproc.detector/4",
    }
)
#: Types skops may instantiate when loading a model beyond its built-in safe set.
TRUSTED_TYPES: frozenset[str] = frozenset({"sklearn.tree._tree.Tree"})


@dataclass(frozen=True, slots=True)
class ForestParams:
    """Isolation-forest hyper-parameters (Liu, Ting, Zhou 2008: t=100, psi=256).

    300 trees rather than the paper's 100: the threshold sits in the far tail (the 99th
    percentile), where the score of one event varies by about as much as the gap between the
    weakest incidents and the normal tail; averaging over more trees narrows that noise
    (measured in docs/detector.md).
    """

    n_estimators: int = 300
    max_samples: int = 512
    random_state: int = 0
    background: float = 0.02  # uniform background points, as a fraction of fit rows
    #: how far the background reaches beyond the largest training value of a one-sided
    #: feature, in units of (largest - median); signed features use FEATURE_BOUNDS
    background_reach: float = 2.0
    #: weight of the tail score (tail.py) added to the forest's: how much one unit of
    #: (q999 - median) beyond the normal 99.9th percentile of a feature adds to the score
    tail_weight: float = 0.05
    #: weight of the joint-novelty excess in the tail score (tail.py, format 6), against
    #: one feature's excess; 0 leaves it out (format 5 scores)
    joint_gain: float = JOINT_GAIN


@dataclass(frozen=True, slots=True)
class FeatureReference:
    """Per-feature quantiles of normal training traffic, used to explain a score."""

    low: tuple[float, ...]  # 1st percentile
    median: tuple[float, ...]
    high: tuple[float, ...]  # 99th percentile

    @classmethod
    def of(cls, X: np.ndarray) -> FeatureReference:
        q = np.quantile(X, [0.01, 0.5, 0.99], axis=0)
        return cls(tuple(map(float, q[0])), tuple(map(float, q[1])), tuple(map(float, q[2])))


def _background_box(X: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(lo, hi)`` of the uniform background.

    A signed feature (both tails unusual) spans its FEATURE_BOUNDS. A one-sided feature
    (only high values are strange) starts at its smallest training value -- a split below
    the data separates nothing an event could be suspected of -- and reaches ``reach`` x
    (largest - median) beyond its largest, capped at its bound: the narrower the box, the
    likelier a random split falls in the gap between normal traffic and an event beyond it.
    """
    signed = np.array([n in SIGNED_FEATURES for n in FEATURE_NAMES])
    b_lo = np.array([b[0] for b in FEATURE_BOUNDS])
    b_hi = np.array([b[1] for b in FEATURE_BOUNDS])
    x_lo, x_hi, x_med = X.min(axis=0), X.max(axis=0), np.median(X, axis=0)
    lo = np.where(signed, np.minimum(b_lo, x_lo), x_lo)
    hi_one = np.maximum(np.minimum(b_hi, x_hi + reach * (x_hi - x_med)), x_hi)
    hi = np.where(signed, np.maximum(b_hi, x_hi), hi_one)
    return lo, hi


def _fit(X: np.ndarray, p: ForestParams) -> IsolationForest:
    """An isolation forest on ``X`` plus a thin uniform background (see _background_box).

    Without the background the forest treats a value far beyond the training range like the
    most extreme training value; a thin uniform cover of the range around the training data
    lets such values isolate in few splits.
    """
    X_train = X
    if p.background > 0:
        rng = np.random.default_rng(p.random_state)
        lo, hi = _background_box(X, p.background_reach)
        bg = rng.uniform(lo, hi, size=(int(len(X) * p.background), len(FEATURE_NAMES)))
        X_train = np.vstack([X, bg])
    return IsolationForest(
        n_estimators=p.n_estimators,
        max_samples=min(p.max_samples, len(X_train)),
        random_state=p.random_state,
    ).fit(X_train)


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``x`` with non-negative weights ``w`` (lower empirical)."""
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(w[order])
    k = int(np.searchsorted(cum, q * cum[-1], side="left"))
    return float(x[order][min(k, len(x) - 1)])


def _calibrate(
    scores: np.ndarray,
    principal: np.ndarray,
    n_principals: int,
    target_fpr: float,
    confidence: float,
    rng: np.random.Generator,
    rounds: int = 200,
    volume_cap: float | None = 1.0,
    population: int | None = None,
) -> float:
    """A threshold that keeps the flag rate at most ``target_fpr`` for new populations.

    ``scores`` are out-of-fold scores of normal events, ``principal`` their principal's index.
    How many events a population has flagged depends on which principals (roles) it holds, so
    the threshold is the ``confidence`` quantile, over a bootstrap of whole principals, of the
    ``1 - target_fpr`` score quantile of the resampled population.

    With ``volume_cap`` each principal weighs at most ``volume_cap`` times the median
    principal's event count: a few chatty service accounts (thousands of regular events, a
    near-empty score tail) would otherwise set the quantile with their volume, and the
    threshold would follow the training population's share of them rather than the
    behaviour of a typical principal. ``None`` weighs every event alike.

    Each resample draws ``population`` principals (all of them if ``None`` or more than the
    training population): the flag rate of a small deployment varies more than that of a
    large one, and the threshold should hold for populations down to that size.
    """
    counts = np.bincount(principal, minlength=n_principals).astype(np.float64)
    if volume_cap is None:
        weight = np.ones(len(scores))
    else:
        cap = volume_cap * float(np.median(counts[counts > 0]))
        weight = (np.minimum(counts, cap) / np.maximum(counts, 1.0))[principal]
    order = np.argsort(principal, kind="stable")
    s_sorted = scores[order]
    w_sorted = weight[order]
    bounds = np.searchsorted(principal[order], np.arange(n_principals + 1))
    per = [slice(int(bounds[i]), int(bounds[i + 1])) for i in range(n_principals)]
    qs = np.empty(rounds)
    size = n_principals if population is None else max(1, min(population, n_principals))
    for r in range(rounds):
        pick = rng.integers(0, n_principals, size=size)
        qs[r] = _weighted_quantile(
            np.concatenate([s_sorted[per[i]] for i in pick]),
            np.concatenate([w_sorted[per[i]] for i in pick]),
            1.0 - target_fpr,
        )
    point = _weighted_quantile(scores, weight, 1.0 - target_fpr)
    return max(point, float(np.quantile(qs, confidence)))


def _check_train_args(
    target_fpr: float,
    holdout: float,
    confidence: float,
    volume_cap: float | None,
    population: int | None,
) -> None:
    if not 0.0 < target_fpr < 0.5:
        raise DetectorError("target_fpr must be in (0, 0.5)")
    if not 0.0 < holdout < 1.0:
        raise DetectorError("holdout must be in (0, 1)")
    if not 0.5 <= confidence < 1.0:
        raise DetectorError("confidence must be in [0.5, 1)")
    if volume_cap is not None and not volume_cap > 0.0:
        raise DetectorError("volume_cap must be > 0 (or None for no cap)")
    if population is not None and population < 2:
        raise DetectorError("population must be >= 2 (or None for the training population)")


def _model_version(X_fit: np.ndarray, p: ForestParams, fc: FeatureConfig) -> str:
    """``iforest-<digest>`` of the fitted rows, the forest parameters and the features."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(X_fit).tobytes())
    digest.update(
        json.dumps(
            [
                p.n_estimators,
                p.max_samples,
                p.random_state,
                p.background,
                p.background_reach,
                p.joint_gain,
                fc.to_dict(),
                FEATURE_NAMES,
            ]
        ).encode()
    )
    return f"iforest-{digest.hexdigest()[:12]}"


def _trained_info(
    events: Sequence[AccessEvent], p: ForestParams, n_fit: int, folds: int
) -> dict[str, Any]:
    """What the model file records about its training run."""
    ts = np.fromiter((e.ts for e in events), dtype=np.int64, count=len(events))
    return {
        "events": len(events),
        "fit_rows": int(n_fit),
        "holdout_rows": int(n_fit),
        "calibration_folds": folds,
        "principals": len({e.principal for e in events}),
        "first_ts": int(ts.min()) if len(ts) else 0,
        "last_ts": int(ts.max()) if len(ts) else 0,
        "n_estimators": p.n_estimators,
        "max_samples": p.max_samples,
        "random_state": p.random_state,
        "background": p.background,
        "background_reach": p.background_reach,
    }


def _training_rows(
    events: Sequence[AccessEvent],
    fc: FeatureConfig,
    initial_states: dict[str, PrincipalState] | None,
    groups: dict[str, str] | None,
) -> tuple[FeatureBatch, dict[str, PrincipalState], Baselines]:
    """Features of the training events against baselines learned from the same events."""
    start = initial_states or {}
    first = {p: copy_state(s) for p, s in start.items()}
    featurize(FeatureExtractor(fc), events, first)
    baselines = build_baselines(first, groups)
    states = {p: copy_state(s) for p, s in start.items()}
    return featurize(FeatureExtractor(fc, baselines), events, states), states, baselines


def _fit_rows(
    events: Sequence[AccessEvent],
    batch: FeatureBatch,
    min_history: int,
    min_age_ms: int,
    burn_in_ms: int,
) -> np.ndarray:
    """Indices of the rows to fit and calibrate on (see ``Detector.train``)."""
    ts = np.fromiter((e.ts for e in events), dtype=np.int64, count=len(events))
    if not len(ts):
        return np.empty(0, dtype=np.intp)
    # A principal present from the start counts once the trace is past the burn-in (or its
    # state, carried from an earlier model, is older than that); a principal new after the
    # burn-in counts from its first event.
    cut = int(ts.min()) + burn_in_ms
    settled = (ts >= cut) | (batch.age_ms >= burn_in_ms)
    keep = settled & (batch.history >= min_history) & (batch.age_ms >= min_age_ms)
    return np.flatnonzero(keep)


#: realized flag rate a recalibration aims at, as a share of the target (the goal: 0.5-1x)
RECALIBRATION_AIM = 0.6
#: Evidence buckets with their own threshold (format 5): a principal with fewer than
#: NEW_HISTORY events of its own is "new"; after that its events a day over its life (at least
#: one day) put it in one of the activity bands "<=2", "2-10", ">10".
NEW_HISTORY = 10
#: upper bounds of the activity bands, in events a day
RATE_BANDS: tuple[float, float] = (2.0, 10.0)
BUCKETS: tuple[str, ...] = ("new", "<=2", "2-10", ">10")
#: Format 7: the new bucket's thresholds per step of history, the steps starting at these
#: counts of events. A principal's rarities can reach far higher on its first events (an
#: unseen key's pseudo-count shrinks with the square of its evidence share, baselines.py):
#: on a population other than the training one its normal first event scores about 0.9,
#: its tenth about 0.45, and one quantile over the whole bucket judged the tenth by the first.
NEW_STEPS: tuple[int, ...] = (0, 1, 2, 3, 5)
STEP_NAMES: tuple[str, ...] = tuple(f"new@{h}" for h in NEW_STEPS)
#: events a step needs for its own median; one with fewer takes the bucket's
MIN_STEP_EVENTS = 5


def bucket_of(history: int, age_ms: int) -> int:
    """Index into :data:`BUCKETS` of an event after ``history`` events of its principal,
    ``age_ms`` after its first."""
    if history < NEW_HISTORY:
        return 0
    rate = history / max(age_ms / DAY_MS, 1.0)
    return 1 if rate <= RATE_BANDS[0] else (2 if rate <= RATE_BANDS[1] else 3)


def evidence_bucket(history: np.ndarray, age_ms: np.ndarray) -> np.ndarray:
    """:func:`bucket_of` per event, for arrays."""
    h = np.asarray(history, dtype=np.float64)
    rate = h / np.maximum(np.asarray(age_ms, dtype=np.float64) / DAY_MS, 1.0)
    band = np.where(rate <= RATE_BANDS[0], 1, np.where(rate <= RATE_BANDS[1], 2, 3))
    return np.asarray(np.where(h < NEW_HISTORY, 0, band), dtype=np.intp)


def new_step(history: int) -> int:
    """Index into :data:`NEW_STEPS` of an event of the new bucket after ``history`` events."""
    return bisect_right(NEW_STEPS, history) - 1


def _stepped(scores: np.ndarray, history: np.ndarray, q: float) -> list[tuple[str, float]]:
    """Thresholds per history step of the new bucket from its events' ``scores``: each step's
    median score plus the ``q`` quantile, over the bucket, of the scores' distance from their
    step's median. The bucket's flag rate stays its ``1 - q``, spread over the steps by how
    far each one's scores scatter rather than by how high its rarities can reach."""
    step = np.searchsorted(NEW_STEPS, history, side="right") - 1
    pooled = float(np.median(scores))
    med = np.array(
        [
            float(np.median(scores[step == i])) if (step == i).sum() >= MIN_STEP_EVENTS else pooled
            for i in range(len(NEW_STEPS))
        ]
    )
    off = float(np.quantile(scores - med[step], q))
    return [(name, float(m + off)) for name, m in zip(STEP_NAMES, med, strict=True)]


def _thinned(
    events: Sequence[AccessEvent], rng: np.random.Generator, copies: int = 3
) -> list[AccessEvent]:
    """Sparse copies of the training principals: each copy keeps a random share of a
    principal's events so that it makes 0.2-5 events a day (log-uniform), under a new name.
    They stand in for the quiet principals a training population may lack."""
    by: dict[str, list[AccessEvent]] = {}
    for e in events:
        by.setdefault(e.principal, []).append(e)
    out: list[AccessEvent] = []
    for c in range(copies):
        for name, evs in by.items():
            days = max((evs[-1].ts - evs[0].ts) / DAY_MS, 1.0)
            rate = float(np.exp(rng.uniform(np.log(0.2), np.log(5.0))))
            mask = rng.random(len(evs)) < min(1.0, rate * days / len(evs))
            tag = f"~thin{c}~{name}"
            out += [replace(e, principal=tag) for e, m in zip(evs, mask, strict=True) if m]
    out.sort(key=lambda e: e.ts)
    return out


def _evidence_thresholds(
    events: Sequence[AccessEvent],
    fc: FeatureConfig,
    baselines: Baselines,
    forest: IsolationForest,
    tail: TailReference,
    p: ForestParams,
    target_fpr: float,
    threshold: float,
    rng: np.random.Generator,
    own: Mapping[str, float] | None = None,
) -> tuple[tuple[str, float], ...]:
    """Per evidence bucket, the threshold ``own`` gives it (:func:`_band_thresholds`), else
    the ``1 - target_fpr`` score quantile of thinned principals' events (never below the
    main threshold): a principal with a handful of events of its own leans on its group,
    and its normal scores spread wider than a seasoned one's."""
    own = dict(own or {})
    need = 10 / target_fpr
    for copies in (3, 12):  # more copies for a small training population
        thin = _thinned(events, rng, copies)
        if not thin:
            return ()
        batch = featurize(FeatureExtractor(fc, baselines), thin, {})
        bucket = evidence_bucket(batch.history, batch.age_ms)
        if (bucket == 0).sum() >= need:
            break
    scores = CompiledForest(forest).score(batch.X) + p.tail_weight * tail.score(batch.X)
    out = []
    for b, name in enumerate(BUCKETS):
        sel = bucket == b
        if name in own:
            out.append((name, own[name]))
        elif sel.sum() >= need:
            out.append((name, max(threshold, float(np.quantile(scores[sel], 1.0 - target_fpr)))))
            if b == 0:
                steps = _stepped(scores[sel], batch.history[sel], 1.0 - target_fpr)
                out += [(n, max(threshold, t)) for n, t in steps]
    if STEP_NAMES[0] not in dict(out):  # too few new events: the steps keep the main one
        out += [(n, threshold) for n in STEP_NAMES]
    return tuple(out)


#: principals an activity band needs among the training ones for its own threshold
MIN_BAND_PRINCIPALS = 10
#: events (times 1 / target_fpr) an activity band needs for its own threshold
MIN_BAND_EVENTS = 10.0


def _band_thresholds(
    oof: np.ndarray,
    who: np.ndarray,
    bucket: np.ndarray,
    target_fpr: float,
    calibrate: Callable[[np.ndarray, np.ndarray, int], float],
) -> dict[str, float]:
    """Thresholds of the activity bands (not the new bucket) that the training population
    itself fills: ``calibrate`` (the main threshold's :func:`_calibrate`, given scores,
    principal indices and their count) over the out-of-fold scores of the band's events,
    with no floor. A band needs ``10 / target_fpr`` events of :data:`MIN_BAND_PRINCIPALS`
    principals; the others are left to thinned copies (:func:`_evidence_thresholds`).

    Quiet principals' normal scores do not spread like busy ones': on the office tuning
    traces one threshold for all bands flagged the <= 2 band at twice the rate of the 2-10
    band (docs/detector.md, "Calibration per evidence")."""
    out: dict[str, float] = {}
    for b in range(1, len(BUCKETS)):
        sel = bucket == b
        if sel.sum() < MIN_BAND_EVENTS / target_fpr:
            continue
        names, idx = np.unique(who[sel], return_inverse=True)
        if len(names) < MIN_BAND_PRINCIPALS:
            continue
        out[BUCKETS[b]] = calibrate(oof[sel], idx, len(names))
    return out


def _principal_folds(
    who: np.ndarray,
    n_principals: int,
    folds: int,
    n_rows: int,
    p: ForestParams,
    target_fpr: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The calibration fold of every fit row; raises DetectorError with too few rows.

    Folds are whole principals: a threshold has to hold for principals the forest has never
    seen, and a principal's own events are not exchangeable with a stranger's.
    """
    fold_of = rng.permutation(n_principals) % folds
    ev_fold = fold_of[who]
    n_hold = int(np.bincount(ev_fold, minlength=folds).min())
    if n_rows - n_hold < 2 * p.max_samples or n_rows < 20 / target_fpr:
        raise DetectorError(
            f"not enough baseline events past warm-up: {n_rows} (need "
            f"{max(int(20 / target_fpr), 2 * p.max_samples + n_hold)})"
        )
    return np.asarray(ev_fold)


def _optional(parse: Any, doc: Any) -> Any:
    raw = json.loads(str(doc))
    return None if raw is None else parse(raw)


class Detector:
    """A fitted isolation forest plus the feature configuration it was trained with."""

    def __init__(
        self,
        forest: IsolationForest,
        *,
        feature_config: FeatureConfig,
        threshold: float,
        target_fpr: float,
        reference: FeatureReference,
        min_history: int,
        min_age_ms: int,
        model_version: str,
        trained: dict[str, Any] | None = None,
        states: dict[str, PrincipalState] | None = None,
        baselines: Baselines | None = None,
        tail: TailReference | None = None,
        tail_weight: float = 0.0,
        evidence_thresholds: tuple[tuple[str, float], ...] = (),
    ) -> None:
        if int(getattr(forest, "n_features_in_", -1)) != len(FEATURE_NAMES):
            raise DetectorError(
                f"forest expects {getattr(forest, 'n_features_in_', '?')} features, "
                f"the feature code produces {len(FEATURE_NAMES)}"
            )
        self.forest = forest
        self.feature_config = feature_config
        self.threshold = float(threshold)
        self.target_fpr = float(target_fpr)
        self.reference = reference
        self.min_history = int(min_history)
        self.min_age_ms = int(min_age_ms)
        self.model_version = model_version
        self.trained = dict(trained or {})
        #: per-principal state at the end of the training events (scoring starts from it)
        self.states: dict[str, PrincipalState] = dict(states or {})
        #: peer-group and population baselines new and sparse principals are judged against
        self.baselines = baselines
        self.tail = tail
        self.tail_weight = float(tail_weight)
        #: ``(bucket, threshold)`` per evidence bucket (:data:`BUCKETS`): thresholds for new
        #: and sparse principals, calibrated on thinned copies of the training principals or
        #: on a deployment's history (:meth:`recalibrated`); the main threshold elsewhere
        for b, _ in evidence_thresholds:
            if b not in BUCKETS and b not in STEP_NAMES:
                raise DetectorError(f"unknown evidence bucket {b!r}")
        self.evidence_thresholds = tuple((str(b), float(t)) for b, t in evidence_thresholds)
        self._compiled = CompiledForest(forest)

    def initial_states(self) -> dict[str, PrincipalState]:
        """Copies of the end-of-training states, to score from (the model's stay intact)."""
        return {p: copy_state(s) for p, s in self.states.items()}

    def initial_state(self, principal: str) -> PrincipalState | None:
        """A copy of ``principal``'s end-of-training state, or None if training never saw it."""
        st = self.states.get(principal)
        return None if st is None else copy_state(st)

    # --- scoring ---------------------------------------------------------------------------
    def extractor(self) -> FeatureExtractor:
        """A feature extractor configured as at training time."""
        return FeatureExtractor(self.feature_config, self.baselines)

    def score(self, features: Sequence[float] | np.ndarray) -> np.ndarray:
        """Anomaly scores (higher = more anomalous) of one feature row or a 2-D batch.

        Always returns a 1-D array; score a micro-batch at once on the stream path, a
        single row costs about as much as a few dozen rows.
        """
        X = np.asarray(features, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        s = self._compiled.score(X)
        if self.tail is not None and self.tail_weight > 0 and len(s):
            s = s + self.tail_weight * self.tail.score(X)
        return s

    def score_one(self, features: Sequence[float]) -> float:
        """Anomaly score of a single feature row."""
        return float(self.score(features)[0])

    # --- training --------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        events: Sequence[AccessEvent],
        *,
        target_fpr: float = 0.01,
        holdout: float = 0.2,
        confidence: float = 0.7,
        volume_cap: float | None = 1.0,
        population: int | None = 20,
        min_history: int = 0,
        min_age_ms: int = 0,
        burn_in_ms: int = 3 * DAY_MS,
        params: ForestParams | None = None,
        feature_config: FeatureConfig | None = None,
        initial_states: dict[str, PrincipalState] | None = None,
        groups: dict[str, str] | None = None,
    ) -> Detector:
        """Fit on baseline ``events``; calibrate the threshold on principals held out.

        Events are featurized twice: once on their own to learn the peer-group and population
        baselines (baselines.py; ``groups`` declares principal -> group), then against them.
        The first ``burn_in_ms`` of the trace, when every principal present from its start
        is new at once, is folded into state but neither fitted nor calibrated on; principals
        that first appear later are, from their first event (new accounts in deployment).
        ``min_history`` / ``min_age_ms`` optionally exclude (and the decider does not judge)
        a per-principal warm-up; by default every event is judged. The principals are split into
        ``round(1 / holdout)`` folds; each fold is scored by a forest fitted on the others, so
        every calibration score is one of a principal the forest has not seen. The threshold
        is the ``confidence`` quantile, over a bootstrap of principals, of the
        ``1 - target_fpr`` quantile of those scores, each principal weighing at most
        ``volume_cap`` times the median principal's event count (see :func:`_calibrate`). The
        forest that is kept is fitted on all principals.
        """
        _check_train_args(target_fpr, holdout, confidence, volume_cap, population)
        p = params or ForestParams()
        fc = feature_config or FeatureConfig()
        batch, states, baselines = _training_rows(events, fc, initial_states, groups)
        mature = _fit_rows(events, batch, min_history, min_age_ms, burn_in_ms)
        owner = np.array([events[int(i)].principal for i in mature], dtype=object)
        names, who = np.unique(owner, return_inverse=True)
        folds = max(2, round(1.0 / holdout))
        if len(names) < folds:
            raise DetectorError(
                f"calibration needs at least {folds} principals past warm-up, got {len(names)}"
            )
        rng = np.random.default_rng(p.random_state)
        ev_fold = _principal_folds(who, len(names), folds, len(mature), p, target_fpr, rng)
        X_fit = batch.X[mature]
        forest = _fit(X_fit, p)
        tail = TailReference.of(X_fit, joint_gain=p.joint_gain)
        oof = p.tail_weight * tail.score(X_fit)
        for k in range(folds):
            held = ev_fold == k
            oof[held] += CompiledForest(_fit(X_fit[~held], p)).score(X_fit[held])

        def calibrate(scores: np.ndarray, principal: np.ndarray, n: int) -> float:
            return _calibrate(
                scores,
                principal,
                n,
                target_fpr,
                confidence,
                rng,
                volume_cap=volume_cap,
                population=population,
            )

        threshold = calibrate(oof, who, len(names))
        bucket = evidence_bucket(batch.history[mature], batch.age_ms[mature])
        bands = _band_thresholds(oof, who, bucket, target_fpr, calibrate)
        evidence = _evidence_thresholds(
            events, fc, baselines, forest, tail, p, target_fpr, threshold, rng, bands
        )
        trained = _trained_info(events, p, len(mature), folds) | {
            "calibration_confidence": confidence,
            "calibration_volume_cap": volume_cap,
            "calibration_population": population,
        }
        return cls(
            forest,
            feature_config=fc,
            threshold=threshold,
            target_fpr=target_fpr,
            reference=FeatureReference.of(X_fit),
            min_history=min_history,
            min_age_ms=min_age_ms,
            model_version=_model_version(X_fit, p, fc),
            trained=trained,
            states=states,
            baselines=baselines,
            tail=tail,
            tail_weight=p.tail_weight,
            evidence_thresholds=evidence,
        )

    def without_states(self) -> Detector:
        """A copy that carries no per-principal state (for a population training never saw)."""
        out = copy.copy(self)
        out.states = {}
        return out

    def with_declared(self, groups: Mapping[str, str]) -> Detector:
        """A copy whose baselines also declare ``groups`` (principal -> peer group, e.g. the
        deployment's role directory): a principal training never saw is then judged against
        its role's baseline instead of a learned namespace group. A group training did not
        know falls back to the population's. A principal already declared in another group
        is an error (its own baseline would change meaning)."""
        if self.baselines is None:
            raise DetectorError("this model has no baselines to declare groups in")
        declared = dict(self.baselines.declared)
        for principal, group in groups.items():
            if declared.get(principal, group) != group:
                raise DetectorError(f"principal {principal} is declared in two groups")
            declared[principal] = group
        out = copy.copy(self)
        out.baselines = replace(self.baselines, declared=declared)
        return out

    def recalibrated(
        self,
        events: Sequence[AccessEvent],
        *,
        aim: float = RECALIBRATION_AIM,
        burn_in_ms: int = 3 * DAY_MS,
    ) -> Detector:
        """A copy calibrated on a deployment's own history ``events`` (clean traffic of the
        population it will score, in any order), starting from the states it had reached.

        The events are folded into copies of the model's states (the copy carries them, so
        scoring continues after the history) and scored as they are folded. The main threshold
        and that of every evidence bucket (:data:`BUCKETS`: new, then the activity bands)
        become the ``1 - aim * target_fpr`` quantile of those scores, so each band's realized
        flag rate lands near ``aim`` x the target on this population rather than on the
        training one. The first ``burn_in_ms`` of the history (every principal new at once,
        unless the model knew it) is folded but not counted. The main threshold needs
        ``5 / target_fpr`` counted events, a bucket ``2 / (aim * target_fpr)``; one with
        fewer keeps its trained margin over the main threshold.
        Forest, tail reference and baselines are unchanged.
        """
        if not 0.0 < aim <= 1.0:
            raise DetectorError("aim must be in (0, 1]")
        out = copy.copy(self)
        states = out.initial_states()
        batch = featurize(out.extractor(), events, states)
        keep = _fit_rows(events, batch, 0, 0, burn_in_ms)
        scores = out.score(batch.X[keep])
        bucket = evidence_bucket(batch.history[keep], batch.age_ms[keep])
        q, need = 1.0 - aim * self.target_fpr, 5.0 / self.target_fpr
        main = float(np.quantile(scores, q)) if len(scores) >= need else self.threshold
        # A bucket needs fewer counted events than the main threshold: enough that about
        # two of them lie above its quantile (a sparse band of a small population has a few
        # hundred; with the trained margin instead, the <= 2 band of the office tuning traces
        # flagged 1.5-1.7 %). With fewer, it keeps its trained margin over the main threshold.
        need_bucket = 2.0 / (aim * self.target_fpr)
        trained = dict(self.evidence_thresholds)
        evidence = []
        for b, name in enumerate(BUCKETS):
            sel = bucket == b
            t = trained.get(name, self.threshold) + main - self.threshold
            own = sel.sum() >= need_bucket
            evidence.append((name, float(np.quantile(scores[sel], q)) if own else t))
            # steps only where the model has them (a format-6 model flags as it did)
            if b == 0 and STEP_NAMES[0] in trained:
                if own:
                    evidence += _stepped(scores[sel], batch.history[keep][sel], q)
                else:
                    evidence += [(n, trained[n] + main - self.threshold) for n in STEP_NAMES]
        out.threshold = main
        out.evidence_thresholds = tuple(evidence)
        out.states = states
        out.trained = self.trained | {
            "recalibrated": {"events": len(events), "counted": len(keep), "aim": aim}
        }
        return out

    # --- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the model with skops."""
        import skops.io as sio  # slow to import; only train/score/the agent need it

        obj = {
            "format": MODEL_FORMAT,
            "forest": self.forest,
            "feature_names": list(FEATURE_NAMES),
            "feature_config": self.feature_config.to_dict(),
            "threshold": self.threshold,
            "target_fpr": self.target_fpr,
            "reference": {
                "low": list(self.reference.low),
                "median": list(self.reference.median),
                "high": list(self.reference.high),
            },
            "min_history": self.min_history,
            "min_age_ms": self.min_age_ms,
            "model_version": self.model_version,
            "trained": json.dumps(self.trained, sort_keys=True),
        }
        obj["states"], obj["states_sha256"] = encode_states(self.states)
        obj["baselines"] = json.dumps(
            self.baselines.to_dict() if self.baselines is not None else None, sort_keys=True
        )
        obj["tail"] = json.dumps(self.tail.to_dict() if self.tail is not None else None)
        obj["tail_weight"] = self.tail_weight
        obj["evidence_thresholds"] = json.dumps([list(x) for x in self.evidence_thresholds])
        try:
            sio.dump(obj, Path(path))
        except OSError as exc:
            raise DetectorError(f"cannot write model {path}: {exc.strerror}") from None

    @classmethod
    def load(cls, path: str | Path) -> Detector:
        """Load a model written by :meth:`save`; refuses untrusted types and other formats."""
        import skops.io as sio  # slow to import; only train/score/the agent need it

        p = Path(path)
        if not p.is_file():
            raise ModelLoadError(f"model file {p} does not exist")
        try:
            untrusted = set(sio.get_untrusted_types(file=p))
        except Exception:
            raise ModelLoadError(f"model file {p} is not a skops file") from None
        refused = sorted(untrusted - TRUSTED_TYPES)
        if refused:
            raise ModelLoadError(f"model file {p} contains untrusted types: {', '.join(refused)}")
        try:
            obj = sio.load(p, trusted=sorted(untrusted))
        except Exception:
            raise ModelLoadError(f"model file {p} cannot be loaded") from None
        if isinstance(obj, dict) and obj.get("format") in OLD_FORMATS:
            raise ModelLoadError(
                f"model file {p} is a {obj['format']} model, written by an older detector with "
                f"other features or thresholds; retrain it (streamproc detector train) to get "
                f"{MODEL_FORMAT}"
            )
        if not isinstance(obj, dict) or obj.get("format") not in COMPATIBLE_FORMATS:
            raise ModelLoadError(f"model file {p} is not a {MODEL_FORMAT} model")
        if list(obj.get("feature_names", [])) != list(FEATURE_NAMES):
            raise ModelLoadError(
                f"model file {p} was trained on other features than this version computes"
            )
        forest = obj.get("forest")
        if not isinstance(forest, IsolationForest):
            raise ModelLoadError(f"model file {p} does not hold an IsolationForest")
        try:
            ref = obj["reference"]
            return cls(
                forest,
                feature_config=FeatureConfig.from_dict(dict(obj["feature_config"])),
                threshold=float(obj["threshold"]),
                target_fpr=float(obj["target_fpr"]),
                reference=FeatureReference(
                    tuple(map(float, ref["low"])),
                    tuple(map(float, ref["median"])),
                    tuple(map(float, ref["high"])),
                ),
                min_history=int(obj["min_history"]),
                min_age_ms=int(obj["min_age_ms"]),
                model_version=str(obj["model_version"]),
                trained=json.loads(obj["trained"]),
                states=decode_states(str(obj["states"]), str(obj["states_sha256"])),
                baselines=_optional(Baselines.from_dict, obj["baselines"]),
                tail=_optional(TailReference.from_dict, obj["tail"]),
                tail_weight=float(obj["tail_weight"]),
                evidence_thresholds=tuple(
                    (str(b), float(t)) for b, t in json.loads(str(obj["evidence_thresholds"]))
                ),
            )
        except (KeyError, TypeError, ValueError, DetectorError) as exc:
            raise ModelLoadError(f"model file {p} lacks or garbles a field") from exc
