"""A second, independently designed generator of labelled access traces ("office" traces).

Written apart from :mod:`streamproc.testing.access_traces` so the detector can be judged on
traffic whose
shape it was not tuned on. The population is an organisation with offices in three time
zones; people of eight roles and three kinds of service account, each with its own rate
drawn log-uniformly from 0.2 to 50 events a day (service accounts more), heavy-tailed
volumes (a log-normal body with a Pareto tail), a weekly cycle (quiet Fridays, rare
weekends), public holidays, gradual drift (volumes grow, people pick up datasets over
time), and offices whose people all share a few NAT addresses.

After ``history_days`` the detector is deployed; from then on incidents of the five kinds
it targets are injected, their victims spread over the activity bands, each with a severity
knob (:class:`Severity`). Lines are access events (``schemas/access_event.avsc`` fields,
``ts`` epoch millis) plus ``label``, ``incident_id``, ``incident_kind``. Seeded.

>>> rows = generate(OfficeConfig(seed=3, n_people=12, n_services=2, days=6, history_days=4))
>>> sorted({r["incident_kind"] for r in rows if r["label"]})[:2]
['bulk_export', 'credential_stuffing']

    python -m streamproc.testing.office_traces --seed 7 --out office.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from streamproc.detector.events import DAY_MS, HOUR_MS, MINUTE_MS

SECOND_MS = 1_000
KINDS: tuple[str, ...] = (
    "bulk_export",
    "scraping",
    "off_hours_new_data",
    "credential_stuffing",
    "destructive",
)

#: Namespaces and their tables; nested names make namespaces of two levels.
CATALOG: dict[str, tuple[str, ...]] = {
    "ledger": ("journal", "accounts", "invoices", "payments", "vendors", "budget", "fx"),
    "payroll": ("salaries", "bonuses", "bank_details", "tax", "timesheets"),
    "people": ("directory", "reviews", "absences", "contracts", "candidates"),
    "crm.eu": ("leads", "contacts", "deals", "calls", "quotes"),
    "crm.us": ("leads", "contacts", "deals", "calls", "quotes"),
    "research": ("trials", "samples", "assays", "papers", "models", "notebooks"),
    "ops": ("tickets", "hosts", "deploys", "alerts", "inventory", "dns"),
    "warehouse.daily": ("orders", "sessions", "revenue", "churn", "stock"),
    "wiki": ("pages", "attachments", "comments"),
    "secrets": ("vault_audit", "keys", "certs"),
}


@dataclass(frozen=True)
class OfficeRole:
    """How people (or services) of one role behave; ``rows`` is the log-normal median."""

    name: str
    namespaces: tuple[str, ...]
    actions: tuple[tuple[str, float], ...]
    rows: float
    service: bool = False
    rate: tuple[float, float] = (0.2, 50.0)  # events a day, drawn log-uniformly


ROLES: tuple[OfficeRole, ...] = (
    OfficeRole("accountant", ("ledger", "payroll", "wiki"), (("READ", 0.8), ("WRITE", 0.2)), 300),
    OfficeRole("hr_partner", ("people", "payroll", "wiki"), (("READ", 0.85), ("WRITE", 0.15)), 40),
    OfficeRole("sales_rep", ("crm.eu", "crm.us", "wiki"), (("READ", 0.75), ("WRITE", 0.25)), 25),
    OfficeRole(
        "researcher",
        ("research", "warehouse.daily", "wiki"),
        (("READ", 0.85), ("WRITE", 0.1), ("EXPORT", 0.05)),
        20_000,
    ),
    OfficeRole(
        "sre",
        ("ops", "secrets", "wiki"),
        (("READ", 0.6), ("WRITE", 0.25), ("DELETE", 0.08), ("ADMIN", 0.07)),
        150,
    ),
    OfficeRole(
        "controller",
        ("ledger", "warehouse.daily"),
        (("READ", 0.8), ("EXPORT", 0.2)),
        5_000,
    ),
    OfficeRole("executive", ("warehouse.daily", "wiki", "crm.eu"), (("READ", 1.0),), 500),
    OfficeRole("contractor", ("research", "ops", "wiki"), (("READ", 0.9), ("WRITE", 0.1)), 1_000),
)
SERVICES: tuple[OfficeRole, ...] = (
    OfficeRole(
        "backup_svc",
        ("ledger", "payroll", "people", "research"),
        (("READ", 1.0),),
        200_000,
        service=True,
        rate=(10, 40),
    ),
    OfficeRole(
        "sync_svc",
        ("crm.eu", "crm.us"),
        (("READ", 0.5), ("WRITE", 0.5)),
        400,
        service=True,
        rate=(60, 300),
    ),
    OfficeRole(
        "report_svc",
        ("warehouse.daily", "ledger"),
        (("READ", 0.9), ("EXPORT", 0.1)),
        8_000,
        service=True,
        rate=(20, 80),
    ),
)
#: Offices: UTC offset of their working day (hours) and how many NAT addresses they share.
OFFICES: tuple[tuple[str, float, int], ...] = (("ber", 1.0, 2), ("nyc", -5.0, 3), ("sgp", 8.0, 1))


@dataclass(frozen=True)
class Severity:
    """How severe each injected incident is (the knobs a property test turns).

    ``volume_x``: rows of a bulk export as a multiple of the victim's usual; ``events``: how
    many events a scrape, a destructive burst or an off-hours session has; ``datasets``: how
    many datasets the victim has never touched it reaches; ``failures``: failed logins of a
    credential attack; ``hour``: local hour of off-hours activity.
    """

    volume_x: float = 200.0
    events: int = 60
    datasets: int = 4
    failures: int = 40
    hour: float = 3.0


@dataclass(frozen=True)
class OfficeConfig:
    """What to generate. ``incidents_per_kind=0`` gives a clean trace."""

    seed: int = 0
    n_people: int = 150
    n_services: int = 8
    days: int = 24
    history_days: int = 21
    start: str = "2025-01-06"  # a Monday
    holidays: tuple[str, ...] = ("2025-01-01", "2025-01-20", "2025-02-17", "2025-04-18")
    incidents_per_kind: int = 4
    severity: Severity = field(default_factory=Severity)
    drift_per_day: float = 0.01  # growth of log volume per day


@dataclass
class Person:
    """One principal of the population (people and service accounts alike)."""

    name: str
    role: OfficeRole
    rate: float
    tz: float
    datasets: list[str]
    weights: np.ndarray
    nat: list[str]
    own_ip: str
    rows: float
    tail: float  # Pareto index of the volume tail (smaller = heavier)
    actions: tuple[list[str], np.ndarray]
    start_hour: float


def _tables(namespaces: Sequence[str]) -> list[str]:
    return [f"{ns}.{t}" for ns in namespaces for t in CATALOG[ns]]


class OfficeGenerator:
    """Builds the population once; :meth:`normal` and :meth:`inject` append events."""

    def __init__(self, cfg: OfficeConfig) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.t0 = int(datetime.fromisoformat(cfg.start).replace(tzinfo=UTC).timestamp() * 1000)
        self.holidays = {date.fromisoformat(h) for h in cfg.holidays}
        self.all_tables = _tables(list(CATALOG))
        self.nats = {
            name: [f"198.51.{i * 10 + k}.{7 + k}" for k in range(n)]
            for i, (name, _, n) in enumerate(OFFICES)
        }
        self.vpn = ["203.0.113.10", "203.0.113.11"]
        self.rows: list[dict[str, Any]] = []
        self.people = [self._person(i, self._role()) for i in range(cfg.n_people)]
        self.people += [
            self._person(cfg.n_people + j, SERVICES[j % len(SERVICES)])
            for j in range(cfg.n_services)
        ]
        self._n = 0

    # --- population ----------------------------------------------------------------------
    def _role(self) -> OfficeRole:
        return ROLES[int(self.rng.integers(0, len(ROLES)))]

    def _person(self, i: int, role: OfficeRole) -> Person:
        r = self.rng
        office, tz, _ = OFFICES[int(r.integers(0, len(OFFICES)))]
        pool = _tables(role.namespaces)
        k = int(r.integers(2, min(len(pool), 9) + 1))
        ds = [str(x) for x in r.choice(pool, size=k, replace=False)]
        w = r.dirichlet(np.full(k, 0.7))
        acts = [a for a, _ in role.actions]
        ap = np.array([p for _, p in role.actions]) * r.uniform(0.5, 1.5, len(acts))
        lo, hi = role.rate
        return Person(
            name=f"{'svc' if role.service else 'u'}{i:04d}.{role.name}.{office}",
            role=role,
            rate=float(np.exp(r.uniform(np.log(lo), np.log(hi)))),
            tz=tz,
            datasets=ds,
            weights=w,
            nat=self.nats[office],
            own_ip=f"10.{20 + i // 250}.{i % 250}.{int(r.integers(2, 250))}",
            rows=float(role.rows * r.lognormal(0.0, 0.8)),
            tail=float(r.uniform(1.3, 2.5)),
            actions=(acts, ap / ap.sum()),
            start_hour=float(r.uniform(7.0, 10.0)),
        )

    # --- event emission --------------------------------------------------------------------
    def emit(
        self,
        p: Person,
        ts: int,
        dataset: str,
        action: str,
        rows: int,
        ip: str,
        ok: bool = True,
        incident: tuple[str, str] | None = None,
    ) -> None:
        """Append one event (bytes derive from rows and the table's row width)."""
        r = self.rng
        rows = max(int(rows), 0) if ok else 0
        width = 40 + (sum(map(ord, dataset)) % 11) * 30
        self._n += 1
        self.rows.append(
            {
                "event_id": f"of-{self.cfg.seed}-{self._n:08d}",
                "ts": int(ts),
                "principal": p.name,
                "dataset": dataset,
                "action": action,
                "rows": rows,
                "bytes": int(rows * width * r.uniform(0.9, 1.1)) + int(r.integers(100, 600)),
                "source_ip": ip,
                "success": bool(ok),
                "label": 0 if incident is None else 1,
                "incident_id": None if incident is None else incident[0],
                "incident_kind": None if incident is None else incident[1],
            }
        )

    def volume(self, p: Person, day: int, scale: float = 1.0) -> int:
        """Rows of one access: log-normal body, Pareto tail (5 %), drifting upwards."""
        r = self.rng
        base = p.rows * scale * float(np.exp(self.cfg.drift_per_day * day))
        if r.random() < 0.05:
            return int(base * (1.0 + r.pareto(p.tail)) * 3.0)
        return int(max(1.0, r.lognormal(np.log(base), 0.9)))

    def pick(self, p: Person) -> str:
        return str(p.datasets[int(self.rng.choice(len(p.datasets), p=p.weights))])

    def action(self, p: Person) -> str:
        acts, ap = p.actions
        return str(acts[int(self.rng.choice(len(acts), p=ap))])

    def ip(self, p: Person) -> str:
        if p.role.service:
            return p.own_ip
        u = self.rng.random()
        return str(self.rng.choice(self.vpn)) if u < 0.15 else str(self.rng.choice(p.nat))

    # --- normal traffic --------------------------------------------------------------------
    def normal(self) -> None:
        for d in range(self.cfg.days):
            day0 = self.t0 + d * DAY_MS
            today = datetime.fromtimestamp(day0 / 1000, UTC).date()
            weekday = today.weekday()
            for p in self.people:
                if p.role.service:
                    self._service_day(p, d, day0)
                else:
                    self._person_day(p, d, day0, weekday, today in self.holidays)

    def _person_day(self, p: Person, d: int, day0: int, weekday: int, holiday: bool) -> None:
        r = self.rng
        factor = (1.1, 1.1, 1.05, 1.0, 0.7, 0.06, 0.04)[weekday] * (0.08 if holiday else 1.0)
        n = int(r.poisson(p.rate * factor))
        if n == 0:
            return
        if r.random() < 0.004 * (d + 1) / self.cfg.days:  # drift: pick up a table of the role
            extra = [x for x in _tables(p.role.namespaces) if x not in p.datasets]
            if extra:
                p.datasets.append(str(r.choice(extra)))
                p.weights = np.append(p.weights * 0.9, 0.1)
        start = day0 + int((p.start_hour - p.tz + r.normal(0, 0.7)) * HOUR_MS)
        sessions = max(1, min(n, int(r.integers(1, 4))))
        ip = self.ip(p)
        for _ in range(sessions):
            t = start + int(r.uniform(0, 9) * HOUR_MS)
            for _e in range(max(1, n // sessions)):
                self.emit(p, t, self.pick(p), self.action(p), self.volume(p, d), ip)
                t += int(r.exponential(120) * SECOND_MS) + SECOND_MS
            if r.random() < 0.01:  # a mistyped password, then in
                self.emit(p, t, self.pick(p), "READ", 0, ip, ok=False)

    def _service_day(self, p: Person, d: int, day0: int) -> None:
        r = self.rng
        if p.role.name == "backup_svc":  # nightly, every table once, at ~01:00 UTC
            t = day0 + HOUR_MS + int(r.uniform(0, 20) * MINUTE_MS)
            for ds in p.datasets:
                self.emit(p, t, ds, "READ", self.volume(p, d), p.own_ip)
                t += int(r.uniform(20, 200) * SECOND_MS)
            return
        step = DAY_MS / max(p.rate, 1.0)
        t = day0 + int(r.uniform(0, step))
        while t < day0 + DAY_MS:
            self.emit(p, t, self.pick(p), self.action(p), self.volume(p, d), p.own_ip)
            t += int(r.exponential(step)) + SECOND_MS

    # --- incidents -------------------------------------------------------------------------
    def incidents(self) -> None:
        """``incidents_per_kind`` incidents of each kind, victims spread over rates."""
        cfg = self.cfg
        if cfg.incidents_per_kind <= 0 or cfg.days <= cfg.history_days:
            return
        humans = sorted((p for p in self.people if not p.role.service), key=lambda p: p.rate)
        if not humans:
            return
        k = 0
        for kind in KINDS:
            for j in range(cfg.incidents_per_kind):
                # the j-th incident of a kind takes its victim from the j-th slice of the
                # population ordered by rate: quiet and busy principals alike are hit
                lo = j * len(humans) // cfg.incidents_per_kind
                hi = max(lo + 1, (j + 1) * len(humans) // cfg.incidents_per_kind)
                victim = humans[int(self.rng.integers(lo, hi))]
                k += 1
                day = int(self.rng.integers(cfg.history_days, cfg.days))
                self.inject(kind, victim, day, f"oinc-{cfg.seed}-{k:03d}-{kind}", cfg.severity)

    def _new_tables(self, p: Person, k: int, namespaces: Sequence[str] = ()) -> list[str]:
        pool = [
            x
            for x in self.all_tables
            if x not in p.datasets and (not namespaces or x.rpartition(".")[0] in namespaces)
        ] or [x for x in self.all_tables if x not in p.datasets]
        k = max(1, min(k, len(pool)))
        return [str(x) for x in self.rng.choice(pool, size=k, replace=False)]

    def inject(self, kind: str, p: Person, day: int, incident_id: str, sev: Severity) -> None:
        """Append one incident of ``kind`` by ``p`` on ``day`` (days since start)."""
        r = self.rng
        inc = (incident_id, kind)
        day0 = self.t0 + day * DAY_MS
        work = day0 + int((p.start_hour - p.tz + r.uniform(1, 6)) * HOUR_MS)
        if kind == "bulk_export":
            for _ in range(int(r.integers(1, 4))):
                rows = int(p.rows * np.exp(self.cfg.drift_per_day * day) * sev.volume_x)
                self.emit(p, work, self.pick(p), "EXPORT", rows, self.ip(p), incident=inc)
                work += int(r.uniform(1, 10) * MINUTE_MS)
        elif kind == "scraping":
            targets = p.datasets + self._new_tables(p, sev.datasets)
            for _ in range(sev.events):
                ds = str(r.choice(targets))
                self.emit(p, work, ds, "READ", self.volume(p, day), self.ip(p), incident=inc)
                work += int(r.uniform(0.5, 4) * SECOND_MS)
        elif kind == "off_hours_new_data":
            t = day0 + int(((sev.hour - p.tz) % 24 + r.uniform(0, 0.5)) * HOUR_MS)
            targets = self._new_tables(p, sev.datasets, ("payroll", "secrets", "people"))
            ip = f"192.0.2.{int(r.integers(1, 250))}"
            for _ in range(max(3, sev.events // 10)):
                ds = str(r.choice(targets))
                self.emit(p, t, ds, "READ", self.volume(p, day), ip, incident=inc)
                t += int(r.uniform(0.5, 5) * MINUTE_MS)
        elif kind == "credential_stuffing":
            t = day0 + int(r.uniform(0, 24) * HOUR_MS)
            ips = [f"100.{int(r.integers(64, 128))}.{int(r.integers(0, 256))}.9" for _ in range(5)]
            for _ in range(sev.failures):
                self.emit(p, t, self.pick(p), "READ", 0, str(r.choice(ips)), ok=False, incident=inc)
                t += int(r.uniform(0.3, 5) * SECOND_MS)
        elif kind == "destructive":
            targets = p.datasets + self._new_tables(p, sev.datasets, p.role.namespaces)
            for _ in range(max(5, sev.events // 3)):
                ds = str(r.choice(targets))
                self.emit(p, work, ds, "DELETE", self.volume(p, day), self.ip(p), incident=inc)
                work += int(r.uniform(1, 10) * SECOND_MS)
        else:
            raise ValueError(f"unknown incident kind {kind!r}")


def generate(cfg: OfficeConfig) -> list[dict[str, Any]]:
    """The whole trace as event dicts sorted by ``ts`` (ties keep generation order)."""
    g = OfficeGenerator(cfg)
    g.normal()
    g.incidents()
    g.rows.sort(key=lambda e: e["ts"])
    return g.rows


def deploy_ts(cfg: OfficeConfig) -> int:
    """Epoch millis at which the detector is deployed (the end of the history)."""
    start = datetime.fromisoformat(cfg.start).replace(tzinfo=UTC)
    return int((start + timedelta(days=cfg.history_days)).timestamp() * 1000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--people", type=int, default=150)
    ap.add_argument("--services", type=int, default=8)
    ap.add_argument("--days", type=int, default=24)
    ap.add_argument("--history-days", type=int, default=21)
    ap.add_argument("--incidents-per-kind", type=int, default=4)
    ap.add_argument("--volume-x", type=float, default=Severity.volume_x)
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args(argv)
    cfg = OfficeConfig(
        seed=a.seed,
        n_people=a.people,
        n_services=a.services,
        days=a.days,
        history_days=a.history_days,
        incidents_per_kind=a.incidents_per_kind,
    )
    cfg = replace(cfg, severity=replace(cfg.severity, volume_x=a.volume_x))
    rows = generate(cfg)
    with a.out.open("w", encoding="utf-8") as fh:
        for e in rows:
            fh.write(json.dumps(e, separators=(",", ":")) + "\n")
    n_inc = len({e["incident_id"] for e in rows if e["incident_id"]})
    print(f"{len(rows)} events, {n_inc} incidents -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
