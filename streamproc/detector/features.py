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
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from streamproc.detector.baselines import Baseline, Baselines, phase_of
from streamproc.detector.catalog import (
    FEATURE_BOUNDS,
    FEATURE_NAMES,
    N_FEATURES,
    SIGNED_FEATURES,
)
from streamproc.detector.events import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    AccessEvent,
    is_weekend,
    namespace_of,
)
from streamproc.errors import DetectorError

__all__ = [
    "DAY_MS",
    "FEATURE_BOUNDS",
    "FEATURE_NAMES",
    "HOUR_MS",
    "N_FEATURES",
    "SIGNED_FEATURES",
    "FeatureBatch",
    "FeatureConfig",
    "FeatureExtractor",
    "PrincipalState",
    "extract",
    "featurize",
    "namespace_of",
    "time_bin",
]

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
    prior_events: float = 8.0  # weight of the peer-group baseline, in events (baselines.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        # max_nets belonged to the source-network rarity of formats 1 and 2
        return cls(**{k: v for k, v in d.items() if k != "max_nets"})


# A keyed counter entry: [long-term count (decayed daily), window count, ts of window count].
Entry = list[float]
# A volume norm: [events, rows mean, rows sd, bytes mean, bytes sd] on log1p scale (robust).
Norm = list[float]


#: Version of the ``PrincipalState.to_dict`` layout. Fields added after version 1 say since
#: when in their metadata; an older state gets their default (``domains``: rebuilt).
STATE_VERSION = 6


@dataclass(slots=True)
class PrincipalState:
    """Everything the detector remembers about one principal; JSON-safe via ``to_dict``.

    ``alert_ts``, ``flagged``, ``reported`` and ``scores`` belong to the decision side
    (cooldown, triggering event ids, the actions the open incident has sent, a histogram of
    the principal's own scores) and are kept here so one table entry per principal carries
    all of it.
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
    # version 1 lacked these; they start from zero and warm up in about an hour
    win: float = field(default=0.0, metadata={"since": 2})
    cusum: float = field(default=0.0, metadata={"since": 2})
    typ_run: float = field(default=0.0, metadata={"since": 2})
    norms: dict[str, Norm] = field(default_factory=dict)
    datasets: dict[str, Entry] = field(default_factory=dict)
    ips: dict[str, Entry] = field(default_factory=dict)
    actions: dict[str, Entry] = field(default_factory=dict)
    pairs: dict[str, Entry] = field(default_factory=dict)
    domains: dict[str, Entry] = field(default_factory=dict, metadata={"since": 3})
    hours: list[float] = field(default_factory=lambda: [0.0] * 48)
    alert_ts: int = -1
    flagged: list[list[Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    group: str = field(default="", metadata={"since": 4})  # peer group (baselines.py)
    phase: int = field(default=-1, metadata={"since": 5})  # hour phase (baselines.phase_of)
    # RecommendedAction values the open incident has sent (decide.py). Empty in a state from
    # before version 6: its open incident may then send each action once more, never less.
    reported: list[str] = field(default_factory=list, metadata={"since": 6})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (numbers, strings, lists, dicts) that ``from_dict`` restores."""
        out: dict[str, Any] = {"v": STATE_VERSION}
        for f in fields(self):
            out[f.name] = _COPY[f.type](getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrincipalState:
        """Restore a state written by :meth:`to_dict`; raises DetectorError if malformed."""
        try:
            version = d.get("v")
            if not isinstance(version, int) or not 1 <= version <= STATE_VERSION:
                raise ValueError("version")
            kw: dict[str, Any] = {}
            for f in fields(cls):
                if f.name in d:
                    kw[f.name] = _PARSE[f.type](d[f.name])
                elif version >= f.metadata.get("since", 1):
                    raise KeyError(f.name)
            if "domains" not in kw:  # versions 1 and 2 lacked them
                kw["domains"] = _namespaces_of(d["datasets"])
            if len(kw["hours"]) != 48:
                raise ValueError("hours")
            return cls(**kw)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            raise DetectorError("principal state does not have the expected layout") from None


def _parse_map(m: Any) -> dict[str, list[float]]:
    return {str(k): [float(x) for x in v] for k, v in m.items()}


def _parse_strs(xs: Any) -> list[str]:
    if isinstance(xs, str):  # a bare string would parse as its characters
        raise TypeError("expected a list of strings")
    return [str(x) for x in xs]


def _parse_flagged(fl: Any) -> list[list[Any]]:
    return [[str(f[0]), int(f[1])] for f in fl]


# How each field type of PrincipalState is copied out (to_dict) and parsed back (from_dict),
# keyed by its annotation (a string under ``from __future__ import annotations``).
_COPY: dict[Any, Any] = {
    "str": lambda x: x,
    "int": lambda x: x,
    "float": lambda x: x,
    "dict[str, Norm]": lambda m: {k: list(v) for k, v in m.items()},
    "dict[str, Entry]": lambda m: {k: list(v) for k, v in m.items()},
    "list[float]": list,
    "list[str]": list,
    "list[list[Any]]": lambda fl: [list(f) for f in fl],
}
_PARSE: dict[Any, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "dict[str, Norm]": _parse_map,
    "dict[str, Entry]": _parse_map,
    "list[float]": lambda xs: [float(x) for x in xs],
    "list[str]": _parse_strs,
    "list[list[Any]]": _parse_flagged,
}


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
    return (24 if is_weekend(ts) else 0) + (ts % DAY_MS) // HOUR_MS


def _blend_norm(own: Norm | None, prior: Norm, k: float) -> Norm:
    """A volume norm of ``own`` events shrunk towards ``prior`` with the weight of ``k``
    events (the group's norm alone for a principal with none)."""
    if own is None:
        return prior
    w = k / (own[0] + k)
    return [
        own[0],
        own[1] + w * (prior[1] - own[1]),
        math.sqrt(own[2] ** 2 + w * (prior[2] ** 2 - own[2] ** 2)),
        own[3] + w * (prior[3] - own[3]),
        math.sqrt(own[4] ** 2 + w * (prior[4] ** 2 - own[4] ** 2)),
    ]


def _evict(m: dict[str, Entry], cap: int) -> None:
    while len(m) >= cap:
        del m[min(m, key=lambda k: m[k][0])]


class FeatureExtractor:
    """Computes feature rows and updates per-principal state; parameters are fixed at init."""

    def __init__(
        self, config: FeatureConfig | None = None, baselines: Baselines | None = None
    ) -> None:
        self.config = config or FeatureConfig()
        self.baselines = baselines
        # without baselines the prior weighs nothing and every feature is the principal's own
        self._k = float(self.config.prior_events) if baselines is not None else 0.0
        self._none = Baseline()
        c = self.config
        self._short = float(c.short_half_life_ms)
        self._short_ms = max(int(c.short_half_life_ms), 1)
        self._window = float(c.window_half_life_ms)
        self._long_days = float(c.long_half_life_days)

    def new_state(self) -> PrincipalState:
        return PrincipalState()

    def update(self, state: PrincipalState, ev: AccessEvent) -> tuple[float, ...]:
        """Feature row of ``ev`` given ``state``; folds ``ev`` into ``state`` in place."""
        # One function on purpose: it runs once per event on the stream path, and its locals
        # feed both the feature row and the fold (docs/detector.md has the throughput).
        t = ev.ts
        base, base_hours = self._baseline(state, ev)
        k = self._k
        win_before, d_win = self._advance(state, ev)
        window = self._window
        total1 = state.total + 1.0
        totk = total1 + k
        log = math.log

        ds_entry = state.datasets.get(ev.dataset)
        if ds_entry is None:
            ds_recent = 0.0
            ds_prior = 0.0
        else:
            # an event older than the entry's last use (out of order) counts as simultaneous
            # with it: a negative age would multiply the recent count instead of decaying it
            ds_recent = ds_entry[1] * 0.5 ** (max(t - ds_entry[2], 0.0) / window)
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
        hb = b - (b % 24)
        smooth = 0.5 * h[b] + 0.25 * (h[hb + (b - 1) % 24] + h[hb + (b + 1) % 24])

        rows_z, bytes_z = self._volume_z(state, ev, d_win, base)
        l_run = math.log1p(ds_recent)
        act_k = act_prior + k * base.actions.get(ev.action, 0.0)
        # The pseudo-count of an unseen key in a rarity: half an event of the principal's
        # own, shrunk by the square of its share of the evidence (0.5 without baselines).
        # Shrunk once, a quiet account's read of a dataset, address, namespace and hour that
        # nobody in its group uses sat at about the rarities of an ordinary new principal's
        # first event (the sparse off-hours misses of format 5); the action share of
        # ``action_burst`` keeps the single shrink.
        half = 0.5 * total1 / totk
        share = (act_k + half) / totk
        half = half * total1 / totk
        l_rate = math.log1p(state.rate)
        l_distinct = math.log1p(state.distinct)
        l_volume = math.log1p(state.volume)
        n = state.n
        typ = base.typical
        # the principal's typical window values, shrunk towards its group's while it is young
        wk = k / (n + k) if n + k > 0 else 0.0
        feats = (
            rows_z,
            bytes_z,
            l_rate,
            l_rate - (state.typ_rate + wk * (typ[0] - state.typ_rate)),
            math.log1p(state.fail),
            l_distinct,
            l_distinct - (state.typ_distinct + wk * (typ[1] - state.typ_distinct)),
            l_volume - (state.typ_volume + wk * (typ[2] - state.typ_volume)),
            log(totk / (ds_prior + k * base.datasets.get(ev.dataset, 0.0) + half)),
            log(totk / (ip_seen + k * base.ips.get(ev.source_ip, 0.0) + half)),
            log(totk / (act_k + half)),
            log(totk / (pair_prior + k * base.pairs.get(pair, 0.0) + half)),
            log(totk / (smooth + k * base_hours[b] + half)),
            math.log1p(state.cusum),
            l_run - (state.typ_run + wk * (typ[3] - state.typ_run)),
            log((act_recent + 1.0) / (win_before * share + 1.0)),
            log(totk / (dom_prior + k * base.domains.get(domain, 0.0) + half)),
        )

        self._typicals(state, t, l_rate, l_distinct, l_volume, l_run)
        c = self.config
        if ev.success:
            lrows = math.log1p(ev.rows)
            lbytes = math.log1p(ev.bytes)
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

    def _baseline(self, state: PrincipalState, ev: AccessEvent) -> tuple[Baseline, list[float]]:
        """The peer-group baseline of the principal (an empty one without baselines) and the
        hour profile to judge it against (its phase group's, baselines.py). Group and phase
        are re-derived while the principal is young and then once a day."""
        bl = self.baselines
        if bl is None:
            return self._none, self._none.hours
        if not state.group or state.n < 32 or ev.ts // DAY_MS != state.day:
            state.group = bl.group_of(ev.principal, state.domains, namespace_of(ev.dataset))
            state.phase = phase_of(state.hours)
        base = bl.for_group(state.group)
        return base, bl.hours_of(state.phase, base)

    def _advance(self, state: PrincipalState, ev: AccessEvent) -> tuple[float, float]:
        """Decay the state to ``ev.ts`` and count ``ev`` in the short-window rates; returns
        the decayed window event count before ``ev`` and the window's decay factor."""
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
        d_short = 0.5 ** (dt / self._short)
        d_win = 0.5 ** (dt / self._window)
        state.rate = state.rate * d_short + 1.0
        state.fail = state.fail * d_short + (0.0 if ev.success else 1.0)
        state.volume = state.volume * d_win + ev.rows
        win_before = state.win * d_win
        state.win = win_before + 1.0
        return win_before, d_win

    def _volume_z(
        self, state: PrincipalState, ev: AccessEvent, d_win: float, base: Baseline
    ) -> tuple[float, float]:
        """Robust z-scores of the event's rows and bytes against the principal's norm for its
        action (or for all its actions, while that one is young; blended with its group's
        norm for the action by evidence); updates the volume CUSUM."""
        c = self.config
        norm = state.norms.get(ev.action)
        mature = norm is not None and norm[0] >= c.min_action_history
        if not mature:
            norm = state.norms.get("*")
            if norm is not None and norm[0] >= c.min_action_history:
                mature = True  # a seasoned principal's new action: its own overall norm
        if not mature and self._k > 0:
            prior = base.norms.get(ev.action) or base.norms.get("*")
            if prior is not None:
                norm = _blend_norm(norm, prior, self._k)
        elif norm is not None and self._k > 0 and norm is state.norms.get(ev.action):
            prior = base.norms.get(ev.action)
            if prior is not None:
                norm = _blend_norm(norm, prior, self._k)
        if norm is None:
            rows_z = bytes_z = 0.0
        else:
            rows_z = (math.log1p(ev.rows) - norm[1]) / norm[2]
            bytes_z = (math.log1p(ev.bytes) - norm[3]) / norm[4]
            rows_z = -_Z_CLIP if rows_z < -_Z_CLIP else (_Z_CLIP if rows_z > _Z_CLIP else rows_z)
            bytes_z = (
                -_Z_CLIP if bytes_z < -_Z_CLIP else (_Z_CLIP if bytes_z > _Z_CLIP else bytes_z)
            )
        # CUSUM of the volume z-score beyond a slack: one large access barely moves it, a
        # staged export of many moderately large ones (each within the normal tail) adds up.
        zpos = rows_z if rows_z > bytes_z else bytes_z
        cusum = state.cusum * d_win + zpos - c.cusum_slack
        state.cusum = cusum if cusum > 0.0 else 0.0
        return rows_z, bytes_z

    def _typicals(
        self,
        state: PrincipalState,
        t: int,
        l_rate: float,
        l_distinct: float,
        l_volume: float,
        l_run: float,
    ) -> None:
        # The typical window values move at most once per short half-life, so a burst of
        # hundreds of events cannot drag the principal's norm along with it.
        n = state.n
        if n == 0 or t // self._short_ms != state.last_ts // self._short_ms:
            a = max(self.config.typical_rate, 1.0 / (n + 1))
            state.typ_rate += a * (l_rate - state.typ_rate)
            state.typ_distinct += a * (l_distinct - state.typ_distinct)
            state.typ_volume += a * (l_volume - state.typ_volume)
            state.typ_run += a * (l_run - state.typ_run)

    def _recent_prior(self, entry: Entry | None, t: int) -> tuple[float, float]:
        if entry is None:
            return 0.0, 0.0
        recent = entry[1] * 0.5 ** (max(t - entry[2], 0.0) / self._window)
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
    order: list[int]  # indices of the events in the order they were processed (event time)


def featurize(
    extractor: FeatureExtractor,
    events: Sequence[AccessEvent],
    states: MutableMapping[str, PrincipalState] | None = None,
) -> FeatureBatch:
    """Features of ``events`` processed in event-time order (stable), rows in input order.

    ``states`` (principal -> state) is used and updated in place when given.
    """
    st: MutableMapping[str, PrincipalState] = states if states is not None else {}
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
    return FeatureBatch(X, hist, age, order)


def feature_rows(rows: Iterable[Sequence[float]]) -> np.ndarray:
    """Stack feature tuples into a 2-D float64 array."""
    return np.asarray(list(rows), dtype=np.float64).reshape(-1, N_FEATURES)
