"""Per-principal features of access events, from a small serialisable state.

``FeatureExtractor.update(state, event)`` returns the feature row of ``event`` and folds the
event into ``state`` (in place). It reads only event time, never the wall clock, so the same
code gives the same features in batch (CLI) and in the stream (the agent keeps one
:class:`PrincipalState` per principal in a changelogged table, as ``to_dict()``).

Features are computed from the state *before* the event is folded in, except the short-window
rates, which count the event itself. Memory per principal is bounded: decayed counters,
robust location/scale estimates, and maps of datasets / namespaces / IPs capped in size (the
least-used entry is evicted).

Rarity features of datasets, their namespaces, actions and (action, dataset) pairs compare a
key's count *before the current hour* to the principal's decayed total, so a burst (a scraper
reading one new dataset a hundred times, a hundred DELETEs) stays rare for the length of the
burst instead of teaching itself to be normal. Source IPs count every use, so a
session from a new address is rare at its start only.

Three features look at a run of events rather than one: a CUSUM of the volume z-score beyond
a slack (staged exports: each event within the normal tail, their sum not), the recent use of
the event's dataset against the principal's typical (paging through a known table), and the
recent count of the event's action against its long-run share (writes by a read-mostly
principal).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamproc.detector.events import AccessEvent
from streamproc.errors import DetectorError

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

#: Names of the feature columns, in order. Higher is stranger for every column except the
#: signed robust z-scores (where both tails are unusual).
FEATURE_NAMES: tuple[str, ...] = (
    "rows_z",  # robust z of log1p(rows) vs the principal's norm for this action
    "bytes_z",  # robust z of log1p(bytes) vs the principal's norm for this action
    "rate_short",  # log1p(decayed event count, short half-life)
    "rate_rel",  # rate_short minus the principal's typical rate_short
    "fail_short",  # log1p(decayed failure count, short half-life)
    "distinct_window",  # log1p(datasets touched in the window, decayed)
    "distinct_rel",  # distinct_window minus the principal's typical value
    "volume_rel",  # log1p(rows in the window, decayed) minus the principal's typical value
    "dataset_rare",  # surprisal of the dataset for this principal (first seen = highest)
    "ip_rare",  # surprisal of the source IP
    "action_rare",  # surprisal of the action
    "pair_rare",  # surprisal of (action, dataset): e.g. deleting what one only ever read
    "time_rare",  # surprisal of hour-of-day x weekday/weekend
    "volume_cusum",  # log1p(CUSUM of rows_z beyond a slack, decayed): staged volume adds up
    "dataset_run",  # log1p(recent uses of this dataset) minus the principal's typical value
    "action_burst",  # log of recent uses of this action vs its long-run share of the window
    "domain_rare",  # surprisal of the dataset's namespace (the text before its last dot)
)
#: The range each feature can meaningfully take. Training adds a thin uniform background:
#: over the whole range for the signed features, and up to at most the upper bound for the
#: others (see ``model._background_box``), so values beyond normal traffic isolate quickly.
FEATURE_BOUNDS: tuple[tuple[float, float], ...] = (
    (-20.0, 20.0),  # rows_z
    (-20.0, 20.0),  # bytes_z
    (0.0, 8.0),  # rate_short: up to ~3000 events per half-life
    (-8.0, 8.0),  # rate_rel
    (0.0, 8.0),  # fail_short
    (0.0, 6.5),  # distinct_window: up to ~650 datasets
    (-6.5, 6.5),  # distinct_rel
    (-25.0, 25.0),  # volume_rel
    (0.0, 12.0),  # dataset_rare
    (0.0, 12.0),  # ip_rare
    (0.0, 12.0),  # action_rare
    (0.0, 12.0),  # pair_rare
    (0.0, 12.0),  # time_rare
    (0.0, 6.0),  # volume_cusum
    (-6.5, 6.5),  # dataset_run
    (-6.5, 6.5),  # action_burst
    (0.0, 12.0),  # domain_rare
)
N_FEATURES = len(FEATURE_NAMES)
#: Features where both tails are unusual (a far smaller volume than usual, too); in every
#: other column only high values are strange, and low ones are as normal as the median.
SIGNED_FEATURES: frozenset[str] = frozenset({"rows_z", "bytes_z"})
_Z_CLIP = 20.0
# 1 / E[min(z^2, 4)] for a standard normal z
_WINSOR_2SD = 1.0 / 0.9205


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Time constants and bounds of the feature state (stored with the model)."""

    short_half_life_ms: int = 10 * MINUTE_MS
    window_half_life_ms: int = HOUR_MS
    long_half_life_days: float = 14.0
    max_datasets: int = 64
    max_ips: int = 32
    max_pairs: int = 64
    max_domains: int = 16
    baseline_rate: float = 0.03  # step of the robust volume-norm updates
    typical_rate: float = 0.02  # step of the EW means of window features
    min_action_history: int = 8  # events of an action before it gets its own volume norm
    cusum_slack: float = 1.5  # z a single event must exceed to add to the volume CUSUM

    def to_dict(self) -> dict[str, Any]:
        return {
            "short_half_life_ms": self.short_half_life_ms,
            "window_half_life_ms": self.window_half_life_ms,
            "long_half_life_days": self.long_half_life_days,
            "max_datasets": self.max_datasets,
            "max_ips": self.max_ips,
            "max_pairs": self.max_pairs,
            "max_domains": self.max_domains,
            "baseline_rate": self.baseline_rate,
            "typical_rate": self.typical_rate,
            "min_action_history": self.min_action_history,
            "cusum_slack": self.cusum_slack,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        # max_nets belonged to the source-network rarity of formats 1 and 2
        return cls(**{k: v for k, v in d.items() if k != "max_nets"})


# A keyed counter entry: [long-term count (decayed daily), window count, ts of window count].
Entry = list[float]
# A volume norm: [events, rows mean, rows sd, bytes mean, bytes sd] on log1p scale (robust).
Norm = list[float]


@dataclass(slots=True)
class PrincipalState:
    """Everything the detector remembers about one principal; JSON-safe via ``to_dict``.

    ``alert_ts``, ``flagged`` and ``scores`` belong to the decision side (cooldown,
    triggering event ids, a histogram of the principal's own scores) and are kept here so
    one table entry per principal carries all of it.
    """

    n: int = 0
    first_ts: int = 0
    last_ts: int = 0
    day: int = 0
    total: float = 0.0
    rate: float = 0.0
    fail: float = 0.0
    distinct: float = 0.0
    volume: float = 0.0
    typ_rate: float = 0.0
    typ_distinct: float = 0.0
    typ_volume: float = 0.0
    win: float = 0.0
    cusum: float = 0.0
    typ_run: float = 0.0
    norms: dict[str, Norm] = field(default_factory=dict)
    datasets: dict[str, Entry] = field(default_factory=dict)
    ips: dict[str, Entry] = field(default_factory=dict)
    actions: dict[str, Entry] = field(default_factory=dict)
    pairs: dict[str, Entry] = field(default_factory=dict)
    domains: dict[str, Entry] = field(default_factory=dict)
    hours: list[float] = field(default_factory=lambda: [0.0] * 48)
    alert_ts: int = -1
    flagged: list[list[Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (numbers, strings, lists, dicts) that ``from_dict`` restores."""
        return {
            "v": 3,
            "n": self.n,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "day": self.day,
            "total": self.total,
            "rate": self.rate,
            "fail": self.fail,
            "distinct": self.distinct,
            "volume": self.volume,
            "typ_rate": self.typ_rate,
            "typ_distinct": self.typ_distinct,
            "typ_volume": self.typ_volume,
            "win": self.win,
            "cusum": self.cusum,
            "typ_run": self.typ_run,
            "norms": {k: list(v) for k, v in self.norms.items()},
            "datasets": {k: list(v) for k, v in self.datasets.items()},
            "ips": {k: list(v) for k, v in self.ips.items()},
            "actions": {k: list(v) for k, v in self.actions.items()},
            "pairs": {k: list(v) for k, v in self.pairs.items()},
            "domains": {k: list(v) for k, v in self.domains.items()},
            "hours": list(self.hours),
            "alert_ts": self.alert_ts,
            "flagged": [list(f) for f in self.flagged],
            "scores": list(self.scores),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrincipalState:
        """Restore a state written by :meth:`to_dict`; raises DetectorError if malformed."""
        try:
            version = d.get("v")
            if version not in (1, 2, 3):
                raise ValueError("version")
            hours = [float(x) for x in d["hours"]]
            if len(hours) != 48:
                raise ValueError("hours")
            return cls(
                n=int(d["n"]),
                first_ts=int(d["first_ts"]),
                last_ts=int(d["last_ts"]),
                day=int(d["day"]),
                total=float(d["total"]),
                rate=float(d["rate"]),
                fail=float(d["fail"]),
                distinct=float(d["distinct"]),
                volume=float(d["volume"]),
                typ_rate=float(d["typ_rate"]),
                typ_distinct=float(d["typ_distinct"]),
                typ_volume=float(d["typ_volume"]),
                # version 1 lacked these; they start from zero and warm up in about an hour
                win=float(d.get("win", 0.0)),
                cusum=float(d.get("cusum", 0.0)),
                typ_run=float(d.get("typ_run", 0.0)),
                norms={str(k): [float(x) for x in v] for k, v in d["norms"].items()},
                datasets={str(k): [float(x) for x in v] for k, v in d["datasets"].items()},
                ips={str(k): [float(x) for x in v] for k, v in d["ips"].items()},
                actions={str(k): [float(x) for x in v] for k, v in d["actions"].items()},
                pairs={str(k): [float(x) for x in v] for k, v in d["pairs"].items()},
                domains=(
                    {str(k): [float(x) for x in v] for k, v in d["domains"].items()}
                    if "domains" in d
                    else _namespaces_of(d["datasets"])  # versions 1 and 2 lacked them
                ),
                hours=hours,
                alert_ts=int(d["alert_ts"]),
                flagged=[[str(f[0]), int(f[1])] for f in d["flagged"]],
                scores=[float(x) for x in d["scores"]],
            )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            raise DetectorError("principal state does not have the expected layout") from None


def namespace_of(dataset: str) -> str:
    """The namespace of a dataset name: the text before its last dot (``hr.salaries`` ->
    ``hr``, ``db.schema.table`` -> ``db.schema``); empty for a name without a dot."""
    return dataset.rpartition(".")[0]


def _namespaces_of(datasets: dict[str, Any]) -> dict[str, Entry]:
    """Namespace counts rebuilt from the dataset counts of a state written before version 3
    (their sums; all counted as before the current hour), so an upgrade does not make every
    namespace new."""
    out: dict[str, Entry] = {}
    for name, e in datasets.items():
        ns = namespace_of(str(name))
        cur = out.setdefault(ns, [0.0, 0.0, 0.0])
        cur[0] += float(e[0])
        cur[2] = max(cur[2], float(e[2]))
    keep = sorted(out, key=lambda k: -out[k][0])[: FeatureConfig().max_domains]
    return {k: out[k] for k in keep}


def time_bin(ts: int) -> int:
    """0..47: hour of day (UTC) for weekdays, 24 + hour for Saturday/Sunday."""
    day = ts // DAY_MS
    weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday (Monday = 0)
    return (24 if weekend else 0) + (ts % DAY_MS) // HOUR_MS


def _evict(m: dict[str, Entry], cap: int) -> None:
    while len(m) >= cap:
        del m[min(m, key=lambda k: m[k][0])]


class FeatureExtractor:
    """Computes feature rows and updates per-principal state; parameters are fixed at init."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        c = self.config
        self._short = float(c.short_half_life_ms)
        self._short_ms = max(int(c.short_half_life_ms), 1)
        self._window = float(c.window_half_life_ms)
        self._long_days = float(c.long_half_life_days)

    def new_state(self) -> PrincipalState:
        return PrincipalState()

    def update(self, state: PrincipalState, ev: AccessEvent) -> tuple[float, ...]:
        """Feature row of ``ev`` given ``state``; folds ``ev`` into ``state`` in place."""
        c = self.config
        t = ev.ts
        day = t // DAY_MS
        if state.n == 0:
            state.first_ts = t
            state.last_ts = t
            state.day = day
        dt = t - state.last_ts
        if dt < 0:  # out-of-order event: treat as simultaneous, never move time backwards
            dt = 0
        if day > state.day:
            self._decay_long(state, 0.5 ** ((day - state.day) / self._long_days))
            state.day = day

        window = self._window
        d_short = 0.5 ** (dt / self._short)
        d_win = 0.5 ** (dt / window)
        ok = ev.success
        state.rate = state.rate * d_short + 1.0
        state.fail = state.fail * d_short + (0.0 if ok else 1.0)
        state.volume = state.volume * d_win + ev.rows
        win_before = state.win * d_win
        state.win = win_before + 1.0

        total1 = state.total + 1.0
        log = math.log

        ds_entry = state.datasets.get(ev.dataset)
        if ds_entry is None:
            ds_recent = 0.0
            ds_prior = 0.0
        else:
            ds_recent = ds_entry[1] * 0.5 ** ((t - ds_entry[2]) / window)
            ds_prior = max(ds_entry[0] - ds_recent, 0.0)
        state.distinct = state.distinct * d_win + (1.0 if ds_recent < 0.5 else 0.0)

        ip_entry = state.ips.get(ev.source_ip)
        ip_recent, _ = self._recent_prior(ip_entry, t)
        # Unlike datasets and actions, a source address counts its uses in the current hour:
        # a working session from a new address is one novelty, not forty.
        ip_seen = ip_entry[0] if ip_entry is not None else 0.0
        act_entry = state.actions.get(ev.action)
        act_recent, act_prior = self._recent_prior(act_entry, t)
        pair = ev.action + " " + ev.dataset
        pair_entry = state.pairs.get(pair)
        pair_recent, pair_prior = self._recent_prior(pair_entry, t)
        domain = namespace_of(ev.dataset)
        dom_entry = state.domains.get(domain)
        dom_recent, dom_prior = self._recent_prior(dom_entry, t)

        b = time_bin(t)
        h = state.hours
        base = b - (b % 24)
        smooth = 0.5 * h[b] + 0.25 * (h[base + (b - 1) % 24] + h[base + (b + 1) % 24])

        lrows = math.log1p(ev.rows)
        lbytes = math.log1p(ev.bytes)
        norm = state.norms.get(ev.action)
        if norm is None or norm[0] < c.min_action_history:
            norm = state.norms.get("*")
        if norm is None:
            rows_z = bytes_z = 0.0
        else:
            rows_z = (lrows - norm[1]) / norm[2]
            bytes_z = (lbytes - norm[3]) / norm[4]
            rows_z = -_Z_CLIP if rows_z < -_Z_CLIP else (_Z_CLIP if rows_z > _Z_CLIP else rows_z)
            bytes_z = (
                -_Z_CLIP if bytes_z < -_Z_CLIP else (_Z_CLIP if bytes_z > _Z_CLIP else bytes_z)
            )

        # CUSUM of the volume z-score beyond a slack: one large access barely moves it, a
        # staged export of many moderately large ones (each within the normal tail) adds up.
        zpos = rows_z if rows_z > bytes_z else bytes_z
        cusum = state.cusum * d_win + zpos - c.cusum_slack
        state.cusum = cusum if cusum > 0.0 else 0.0
        l_run = math.log1p(ds_recent)
        share = (act_prior + 0.5) / total1
        l_rate = math.log1p(state.rate)
        l_distinct = math.log1p(state.distinct)
        l_volume = math.log1p(state.volume)
        feats = (
            rows_z,
            bytes_z,
            l_rate,
            l_rate - state.typ_rate,
            math.log1p(state.fail),
            l_distinct,
            l_distinct - state.typ_distinct,
            l_volume - state.typ_volume,
            log(total1 / (ds_prior + 0.5)),
            log(total1 / (ip_seen + 0.5)),
            log(total1 / (act_prior + 0.5)),
            log(total1 / (pair_prior + 0.5)),
            log(total1 / (smooth + 0.5)),
            math.log1p(state.cusum),
            l_run - state.typ_run,
            log((act_recent + 1.0) / (win_before * share + 1.0)),
            log(total1 / (dom_prior + 0.5)),
        )

        # --- fold the event into the state -------------------------------------------
        n = state.n
        # The typical window values move at most once per short half-life, so a burst of
        # hundreds of events cannot drag the principal's norm along with it.
        if n == 0 or t // self._short_ms != state.last_ts // self._short_ms:
            a = max(c.typical_rate, 1.0 / (n + 1))
            state.typ_rate += a * (l_rate - state.typ_rate)
            state.typ_distinct += a * (l_distinct - state.typ_distinct)
            state.typ_volume += a * (l_volume - state.typ_volume)
            state.typ_run += a * (l_run - state.typ_run)
        if ok:
            self._update_norm(state.norms, "*", lrows, lbytes)
            self._update_norm(state.norms, ev.action, lrows, lbytes)
        self._bump(state.datasets, ev.dataset, ds_entry, ds_recent, t, c.max_datasets)
        self._bump(state.ips, ev.source_ip, ip_entry, ip_recent, t, c.max_ips)
        self._bump(state.actions, ev.action, act_entry, act_recent, t, 16)
        self._bump(state.pairs, pair, pair_entry, pair_recent, t, c.max_pairs)
        self._bump(state.domains, domain, dom_entry, dom_recent, t, c.max_domains)
        h[b] += 1.0
        state.total = total1
        state.n = n + 1
        if t > state.last_ts:
            state.last_ts = t
        return feats

    def _recent_prior(self, entry: Entry | None, t: int) -> tuple[float, float]:
        if entry is None:
            return 0.0, 0.0
        recent = entry[1] * 0.5 ** ((t - entry[2]) / self._window)
        return recent, max(entry[0] - recent, 0.0)

    @staticmethod
    def _bump(
        m: dict[str, Entry], key: str, entry: Entry | None, recent: float, t: int, cap: int
    ) -> None:
        if entry is None:
            _evict(m, cap)
            m[key] = [1.0, 1.0, float(t)]
        else:
            entry[0] += 1.0
            entry[1] = recent + 1.0
            entry[2] = float(t)

    def _update_norm(self, norms: dict[str, Norm], key: str, lrows: float, lbytes: float) -> None:
        norm = norms.get(key)
        if norm is None:
            norms[key] = [1.0, lrows, 1.0, lbytes, 1.0]
            return
        k = norm[0]
        a = max(self.config.baseline_rate, 1.0 / (k + 1.0))
        for i, x in ((1, lrows), (3, lbytes)):
            mean, sd = norm[i], norm[i + 1]
            dev = x - mean
            # Huber-style: a deviation counts at most 3 sd, so one huge value (or a burst
            # of them) moves the norm by a bounded step.
            lim = 3.0 * sd
            sq = dev * dev
            if k >= self.config.min_action_history:
                dev = -lim if dev < -lim else (lim if dev > lim else dev)
                # The spread takes a deviation at most 2 sd (scaled to stay unbiased for a
                # normal law): clipped at 3 sd, a staged export of ten large events would
                # still widen it about threefold and hide the next large export.
                cap = 4.0 * sd * sd
                sq = (sq if sq < cap else cap) * _WINSOR_2SD
            norm[i] = mean + a * dev
            var = sd * sd + a * (sq - sd * sd)
            sd = math.sqrt(var) if var > 0 else 0.0
            norm[i + 1] = 0.1 if sd < 0.1 else sd
        norm[0] = k + 1.0

    @staticmethod
    def _decay_long(state: PrincipalState, f: float) -> None:
        state.total *= f
        state.hours = [x * f for x in state.hours]
        for m in (
            state.datasets,
            state.ips,
            state.actions,
            state.pairs,
            state.domains,
        ):
            for e in m.values():
                e[0] *= f
                e[1] = min(e[1], e[0])


def extract(
    extractor: FeatureExtractor, state: PrincipalState | None, event: AccessEvent
) -> tuple[tuple[float, ...], PrincipalState]:
    """Functional form: ``(features, state)`` for one event; a fresh state if ``None``."""
    st = state if state is not None else extractor.new_state()
    return extractor.update(st, event), st


@dataclass(slots=True)
class FeatureBatch:
    """Feature rows of a batch of events, in the order the events were given."""

    X: np.ndarray  # (n_events, N_FEATURES) float64
    history: np.ndarray  # (n_events,) events seen for the principal before this one
    age_ms: np.ndarray  # (n_events,) event time minus the principal's first event time


def featurize(
    extractor: FeatureExtractor,
    events: Sequence[AccessEvent],
    states: dict[str, PrincipalState] | None = None,
) -> FeatureBatch:
    """Features of ``events`` processed in event-time order (stable), rows in input order.

    ``states`` (principal -> state) is used and updated in place when given.
    """
    st = states if states is not None else {}
    n = len(events)
    X = np.empty((n, N_FEATURES), dtype=np.float64)
    hist = np.empty(n, dtype=np.int64)
    age = np.empty(n, dtype=np.int64)
    order = sorted(range(n), key=lambda i: events[i].ts)
    update = extractor.update
    for i in order:
        ev = events[i]
        s = st.get(ev.principal)
        if s is None:
            s = st[ev.principal] = PrincipalState()
        hist[i] = s.n
        X[i] = update(s, ev)
        age[i] = ev.ts - s.first_ts
    return FeatureBatch(X, hist, age)


def feature_rows(rows: Iterable[Sequence[float]]) -> np.ndarray:
    """Stack feature tuples into a 2-D float64 array."""
    return np.asarray(list(rows), dtype=np.float64).reshape(-1, N_FEATURES)
