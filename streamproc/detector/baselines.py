"""Baselines above the principal: its peer group and the whole population.

A principal with little history says little about itself, so every per-principal quantity
the features compare against (how often it touches a dataset, an address, an action, an
hour; its usual volume per action; its usual rates) is blended with the same quantity of
its peer group, which is itself blended with the population, each weighted by its evidence:

    p(key) = (own count + K * p_group(key)) / (own total + K)
    p_group = (n_group * p_members + K_pop * p_population) / (n_group + K_pop)

``K`` (``FeatureConfig.prior_events``) is worth a few events: a principal with hundreds of
events is judged against itself, a new one against its peers. The peer group is the role
declared for the principal (``--groups``) or else a learned one: the namespace it uses most
(``ns:<namespace>``), so a new account is compared with the people working on the same
data. Baselines are built once at training from the end-of-training states, each principal
weighing one, so a chatty service account does not define its group's normal.

The hour profile is the exception: people working on the same data may sit in offices many
time zones apart, so a namespace group's hours cover most of the day and no hour is "off".
Hours are judged against a *phase* group instead: the principals whose busiest
``PHASE_WINDOW``-hour stretch of the day starts at the same hour (UTC, +-1 hour), learned from
their hour counts (:func:`phase_of`). A principal with fewer than ``MIN_PHASE_EVENTS`` events
has no phase yet and keeps its namespace group's hours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamproc.errors import DetectorError

#: keys kept per share map of a baseline (the rest share the floor)
MAX_KEYS = 400
#: evidence of the population baseline against a group's, in principals
POPULATION_WEIGHT = 2.0
POPULATION = "*"
#: length of the working day whose start defines a principal's phase, in hours
PHASE_WINDOW = 9
#: (decayed) events of its own before a principal's hours define its phase
MIN_PHASE_EVENTS = 3.0


def phase_of(hours: Sequence[float]) -> int:
    """Start hour (UTC, 0-23) of the busiest ``PHASE_WINDOW``-hour stretch of the day in a
    48-bin hour profile (weekday and weekend bins folded), or -1 with too little evidence.

    >>> phase_of([0.0] * 8 + [1.0] * 8 + [0.0] * 32)
    8
    >>> phase_of([0.0] * 48)
    -1
    """
    day = [hours[h] + hours[24 + h] for h in range(24)]
    if sum(day) < MIN_PHASE_EVENTS:
        return -1
    win = sum(day[h] for h in range(PHASE_WINDOW))
    best, start = win, 0
    for h in range(1, 24):
        win += day[(h + PHASE_WINDOW - 1) % 24] - day[h - 1]
        if win > best + 1e-9:
            best, start = win, h
    return start


@dataclass(slots=True)
class Baseline:
    """Normal behaviour of a group of principals (shares sum to at most 1 per map)."""

    members: float = 0.0
    datasets: dict[str, float] = field(default_factory=dict)
    ips: dict[str, float] = field(default_factory=dict)
    actions: dict[str, float] = field(default_factory=dict)
    pairs: dict[str, float] = field(default_factory=dict)
    domains: dict[str, float] = field(default_factory=dict)
    hours: list[float] = field(default_factory=lambda: [1.0 / 48] * 48)
    norms: dict[str, list[float]] = field(default_factory=dict)  # like PrincipalState.norms
    typical: list[float] = field(default_factory=lambda: [0.0] * 4)  # rate, distinct, volume, run

    def to_dict(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "datasets": self.datasets,
            "ips": self.ips,
            "actions": self.actions,
            "pairs": self.pairs,
            "domains": self.domains,
            "hours": self.hours,
            "norms": self.norms,
            "typical": self.typical,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Baseline:
        def shares(m: Any) -> dict[str, float]:
            return {str(k): float(v) for k, v in m.items()}

        b = cls(
            members=float(d["members"]),
            datasets=shares(d["datasets"]),
            ips=shares(d["ips"]),
            actions=shares(d["actions"]),
            pairs=shares(d["pairs"]),
            domains=shares(d["domains"]),
            hours=[float(x) for x in d["hours"]],
            norms={str(k): [float(x) for x in v] for k, v in d["norms"].items()},
            typical=[float(x) for x in d["typical"]],
        )
        if len(b.hours) != 48 or len(b.typical) != 4 or any(len(v) != 5 for v in b.norms.values()):
            raise DetectorError("baseline does not have the expected layout")
        return b


@dataclass(slots=True)
class Baselines:
    """Peer-group and population baselines plus the declared groups of principals."""

    groups: dict[str, Baseline] = field(default_factory=dict)  # includes POPULATION
    declared: dict[str, str] = field(default_factory=dict)  # principal -> group
    #: hour profile (48 bins) per phase 0-23, blended with the population's; empty: none
    phases: list[list[float]] = field(default_factory=list)

    def hours_of(self, phase: int, group: Baseline) -> list[float]:
        """The hour profile to judge a principal of ``phase`` against: its phase group's,
        else (no phase yet, or no phase groups in the model) its peer group's."""
        if 0 <= phase < len(self.phases) and self.phases[phase]:
            return self.phases[phase]
        return group.hours

    def group_of(self, principal: str, domains: Mapping[str, list[float]], event_ns: str) -> str:
        """The declared group, else ``ns:`` + the namespace used most (the event's if none)."""
        g = self.declared.get(principal)
        if g is not None:
            return g
        if domains:
            return "ns:" + max(domains, key=lambda k: domains[k][0])
        return "ns:" + event_ns

    def for_group(self, group: str) -> Baseline:
        """The baseline of ``group`` (blended with the population), or the population's."""
        return self.groups.get(group) or self.groups.get(POPULATION) or Baseline()

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": {k: v.to_dict() for k, v in sorted(self.groups.items())},
            "declared": dict(sorted(self.declared.items())),
            "phases": self.phases,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Baselines:
        try:
            # models written before phase groups have none: hours judged by peer group
            phases = [[float(x) for x in p] for p in d.get("phases", [])]
            out = cls(
                {str(k): Baseline.from_dict(v) for k, v in d["groups"].items()},
                {str(k): str(v) for k, v in d["declared"].items()},
                phases,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DetectorError("baselines do not have the expected layout") from None
        if phases and (len(phases) != 24 or any(len(p) not in (0, 48) for p in phases)):
            raise DetectorError("baselines do not have the expected layout")
        return out


class _Acc:
    """Accumulates members' normalised maps, norms and typical values."""

    def __init__(self) -> None:
        self.n = 0.0
        self.maps: dict[str, dict[str, float]] = {
            k: {} for k in ("datasets", "ips", "actions", "pairs", "domains")
        }
        self.hours = [0.0] * 48
        self.norm: dict[str, list[float]] = {}  # action -> [members, sum mean, sum mean^2,
        #   sum sd^2, sum bmean, sum bmean^2, sum bsd^2, sum events]
        self.typ = [0.0] * 4

    def add(self, st: Any) -> None:
        self.n += 1.0
        for name, acc in self.maps.items():
            m = getattr(st, name)
            tot = sum(e[0] for e in m.values())
            if tot > 0:
                for k, e in m.items():
                    acc[k] = acc.get(k, 0.0) + e[0] / tot
        tot = sum(st.hours)
        if tot > 0:
            for i, h in enumerate(st.hours):
                self.hours[i] += h / tot
        for action, nm in st.norms.items():
            a = self.norm.setdefault(action, [0.0] * 8)
            vals = (1.0, nm[1], nm[1] ** 2, nm[2] ** 2, nm[3], nm[3] ** 2, nm[4] ** 2, nm[0])
            for i, v in enumerate(vals):
                a[i] += v
        for i, v in enumerate((st.typ_rate, st.typ_distinct, st.typ_volume, st.typ_run)):
            self.typ[i] += v

    def baseline(self) -> Baseline:
        n = max(self.n, 1.0)
        maps = {
            k: dict(sorted(((x, v / n) for x, v in m.items()), key=lambda kv: -kv[1])[:MAX_KEYS])
            for k, m in self.maps.items()
        }
        h = sum(self.hours)
        hours = [x / h for x in self.hours] if h > 0 else [1.0 / 48] * 48
        norms = {}
        for action, a in self.norm.items():
            k = a[0]
            mean, bmean = a[1] / k, a[4] / k
            # pooled spread: members' own spread plus the spread of their means
            sd = math.sqrt(max(a[3] / k + a[2] / k - mean * mean, 0.01))
            bsd = math.sqrt(max(a[6] / k + a[5] / k - bmean * bmean, 0.01))
            norms[action] = [a[7], mean, sd, bmean, bsd]
        return Baseline(
            members=self.n,
            datasets=maps["datasets"],
            ips=maps["ips"],
            actions=maps["actions"],
            pairs=maps["pairs"],
            domains=maps["domains"],
            hours=hours,
            norms=norms,
            typical=[t / n for t in self.typ],
        )


def _blend(g: Baseline, pop: Baseline) -> Baseline:
    """``g`` shrunk towards ``pop`` by its evidence (members against POPULATION_WEIGHT)."""
    w = g.members / (g.members + POPULATION_WEIGHT)

    def mix(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        keys = set(a) | set(b)
        out = {k: w * a.get(k, 0.0) + (1 - w) * b.get(k, 0.0) for k in keys}
        return dict(sorted(out.items(), key=lambda kv: -kv[1])[:MAX_KEYS])

    norms = {}
    for action in set(g.norms) | set(pop.norms):
        a, b = g.norms.get(action), pop.norms.get(action)
        if a is None or b is None:
            norms[action] = list(a or b or [])
            continue
        norms[action] = [
            a[0] + b[0],
            w * a[1] + (1 - w) * b[1],
            math.sqrt(w * a[2] ** 2 + (1 - w) * b[2] ** 2),
            w * a[3] + (1 - w) * b[3],
            math.sqrt(w * a[4] ** 2 + (1 - w) * b[4] ** 2),
        ]
    return Baseline(
        members=g.members,
        datasets=mix(g.datasets, pop.datasets),
        ips=mix(g.ips, pop.ips),
        actions=mix(g.actions, pop.actions),
        pairs=mix(g.pairs, pop.pairs),
        domains=mix(g.domains, pop.domains),
        hours=[w * x + (1 - w) * y for x, y in zip(g.hours, pop.hours, strict=True)],
        norms=norms,
        typical=[w * x + (1 - w) * y for x, y in zip(g.typical, pop.typical, strict=True)],
    )


def build_baselines(
    states: Mapping[str, Any], declared: Mapping[str, str] | None = None
) -> Baselines:
    """Baselines of every group found in ``states`` (principal -> PrincipalState)."""
    decl = dict(declared or {})
    shell = Baselines(declared=decl)
    pop = _Acc()
    accs: dict[str, _Acc] = {}
    for principal, st in states.items():
        if st.n == 0:
            continue
        pop.add(st)
        g = shell.group_of(principal, st.domains, "")
        accs.setdefault(g, _Acc()).add(st)
    population = pop.baseline()
    groups = {g: _blend(a.baseline(), population) for g, a in accs.items()}
    groups[POPULATION] = population
    return Baselines(groups, decl, _phase_profiles(states, population))


def _phase_profiles(states: Mapping[str, Any], population: Baseline) -> list[list[float]]:
    """Hour profile per phase: members of the phase and its two neighbours (a start hour
    is noisy by about an hour), each weighing one, blended with the population's hours by
    their number like a peer group."""
    acc = [[0.0] * 48 for _ in range(24)]
    members = [0.0] * 24
    for st in states.values():
        ph = phase_of(st.hours)
        if ph < 0:
            continue
        tot = sum(st.hours)
        for q in (ph - 1, ph, ph + 1):
            q %= 24
            members[q] += 1.0
            row = acc[q]
            for i, h in enumerate(st.hours):
                row[i] += h / tot
    out: list[list[float]] = []
    for q in range(24):
        n = members[q]
        if n == 0:
            out.append([])
            continue
        w = n / (n + POPULATION_WEIGHT)
        out.append([w * a / n + (1 - w) * b for a, b in zip(acc[q], population.hours, strict=True)])
    return out


def read_groups(rows: Iterable[tuple[str, str]]) -> dict[str, str]:
    """principal -> group from ``(principal, group)`` pairs; a principal declared twice with
    different groups is an error (naming the principal, which is access metadata)."""
    out: dict[str, str] = {}
    for p, g in rows:
        if out.get(p, g) != g:
            raise DetectorError(f"principal {p} is declared in two groups")
        out[p] = g
    return out
