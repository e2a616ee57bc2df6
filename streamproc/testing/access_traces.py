"""Realistic, labelled access-log traces for the access-anomaly detector.

A population of principals with roles (analysts, data scientists, engineers, support staff,
admins, ETL and BI service accounts), each with its own datasets, source IPs, volumes and a
daily/weekly rhythm, plus benign oddities (travel IPs, onboarding to new datasets, overtime,
typos at login, quarter-end exports, the BI service's hourly fan-out). After ``history_days``
of normal traffic, labelled incidents of five kinds are injected, several variants each, some
subtle: bulk export, scraping, off-hours access to new datasets, credential stuffing,
destructive bursts.

Every line is one access event (``schemas/access_event.avsc`` fields, ``ts`` in epoch
millis) plus ``label`` (0 normal, 1 incident), ``incident_id`` and ``incident_kind`` which
the detector ignores. Seeded: the same config gives the same trace.

    python -m streamproc.testing.access_traces --seed 7 --principals 120 --days 21 --out trace.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from streamproc.detector.events import DAY_MS, HOUR_MS, MINUTE_MS

DAY = DAY_MS
HOUR = HOUR_MS
MIN = MINUTE_MS
SEC = 1_000

KINDS: tuple[str, ...] = (
    "bulk_export",
    "scraping",
    "off_hours_new_data",
    "credential_stuffing",
    "destructive",
)
VARIANTS: dict[str, tuple[str, ...]] = {
    "bulk_export": ("massive", "staged", "foreign"),
    "scraping": ("fast", "slow", "paging"),
    "off_hours_new_data": ("night", "weekend", "night_new_ip"),
    "credential_stuffing": ("burst", "spray", "takeover"),
    "destructive": ("mass_delete", "overwrite", "subtle_delete"),
}

DOMAINS: dict[str, int] = {
    "sales": 14,
    "marketing": 10,
    "finance": 10,
    "hr": 8,
    "crm": 10,
    "support": 8,
    "ml": 18,
    "logs": 10,
    "staging": 16,
    "prod": 14,
    "security": 5,
}
SENSITIVE = ("hr", "finance", "security", "crm")


@dataclass(frozen=True)
class Role:
    """Behaviour of one role; volumes are log-normal (median, sigma)."""

    name: str
    human: bool
    domains: tuple[str, ...]
    n_datasets: tuple[int, int]
    events_per_day: float
    actions: dict[str, float]
    rows_median: float
    rows_sigma: float
    start_hour: tuple[float, float] = (7.5, 10.5)
    day_length: tuple[float, float] = (7.0, 9.5)
    weekend_prob: float = 0.05
    interval_s: float = 60.0  # services: mean seconds between events


ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role(
            "analyst",
            True,
            ("sales", "marketing", "finance", "crm"),
            (6, 16),
            40,
            {"READ": 0.9, "EXPORT": 0.08, "WRITE": 0.02},
            2_000,
            1.1,
        ),
        Role(
            "data_scientist",
            True,
            ("ml", "logs", "sales", "marketing"),
            (8, 20),
            55,
            {"READ": 0.86, "WRITE": 0.1, "EXPORT": 0.04},
            50_000,
            1.4,
            start_hour=(9.0, 11.5),
            weekend_prob=0.1,
        ),
        Role(
            "engineer",
            True,
            ("staging", "prod", "logs", "ml"),
            (8, 18),
            50,
            {"READ": 0.6, "WRITE": 0.3, "DELETE": 0.05, "ADMIN": 0.05},
            5_000,
            1.3,
            weekend_prob=0.08,
        ),
        Role(
            "support",
            True,
            ("support", "crm"),
            (4, 10),
            110,
            {"READ": 0.97, "WRITE": 0.03},
            5,
            0.8,
            start_hour=(6.0, 12.0),
            weekend_prob=0.25,
        ),
        Role(
            "admin",
            True,
            ("security", "prod", "staging"),
            (4, 10),
            20,
            {"READ": 0.5, "ADMIN": 0.45, "WRITE": 0.05},
            50,
            1.0,
        ),
        Role(
            "etl_service",
            False,
            ("staging", "prod", "logs", "ml", "sales"),
            (4, 12),
            0,
            {"READ": 0.5, "WRITE": 0.5},
            100_000,
            0.6,
            interval_s=240.0,
        ),
        Role(
            "bi_service",
            False,
            ("sales", "marketing", "finance", "ml"),
            (10, 25),
            0,
            {"READ": 1.0},
            20_000,
            0.7,
        ),
    )
}

DEFAULT_ROLE_MIX: dict[str, float] = {
    "analyst": 0.3,
    "data_scientist": 0.18,
    "engineer": 0.2,
    "support": 0.14,
    "admin": 0.04,
    "etl_service": 0.1,
    "bi_service": 0.04,
}


@dataclass(frozen=True)
class TraceConfig:
    """What to generate. ``incidents_per_kind=0`` gives a clean baseline."""

    seed: int = 0
    n_principals: int = 80
    days: int = 21
    history_days: int = 14
    start: str = "2024-03-04"  # a Monday
    role_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ROLE_MIX))
    incidents_per_kind: int = 6
    benign_noise: float = 1.0  # scales the rate of benign oddities


@dataclass
class Principal:
    name: str
    role: Role
    datasets: list[str]
    weights: np.ndarray
    ips: list[str]
    home_ip: str
    start_hour: float
    day_length: float
    rate_scale: float
    rows_median: float
    actions: tuple[list[str], np.ndarray]


class _Gen:
    def __init__(self, cfg: TraceConfig) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.t0 = int(datetime.fromisoformat(cfg.start).replace(tzinfo=UTC).timestamp() * 1000)
        self.catalog = {d: [f"{d}.t{i:02d}" for i in range(n)] for d, n in DOMAINS.items()}
        self.all_datasets = [x for v in self.catalog.values() for x in v]
        self.events: list[dict[str, Any]] = []
        self.principals = self._population()

    # --- population -------------------------------------------------------------------
    def _public_ip(self) -> str:
        r = self.rng
        first = int(r.choice([24, 45, 73, 81, 98, 142, 176, 185, 203, 213]))
        return f"{first}.{r.integers(0, 256)}.{r.integers(0, 256)}.{r.integers(1, 255)}"

    def _population(self) -> list[Principal]:
        r = self.rng
        names = list(self.cfg.role_mix)
        p = np.array([self.cfg.role_mix[n] for n in names], dtype=float)
        p /= p.sum()
        roles = [names[i] for i in r.choice(len(names), size=self.cfg.n_principals, p=p)]
        out = []
        for i, rn in enumerate(roles):
            role = ROLES[rn]
            pool = [x for d in role.domains for x in self.catalog[d]]
            k = int(r.integers(role.n_datasets[0], role.n_datasets[1] + 1))
            ds = [str(x) for x in r.choice(pool, size=min(k, len(pool)), replace=False)]
            w = 1.0 / np.arange(1, len(ds) + 1) ** r.uniform(0.8, 1.3)
            if role.human:
                site = int(r.integers(1, 4))
                net = f"10.{site}.{r.integers(0, 40)}"
                ips = [f"{net}.{r.integers(2, 250)}" for _ in range(int(r.integers(1, 3)))]
                ips.append(f"10.99.{r.integers(0, 8)}.{r.integers(2, 250)}")  # VPN
            else:
                ips = [f"10.0.{r.integers(0, 4)}.{r.integers(2, 250)}"]
            acts = list(role.actions)
            ap = np.array([role.actions[a] for a in acts]) * r.uniform(0.6, 1.4, len(acts))
            out.append(
                Principal(
                    name=f"{rn.replace('_', '-')}-{self.cfg.seed % 1000:03d}-{i:04d}",
                    role=role,
                    datasets=ds,
                    weights=w / w.sum(),
                    ips=ips,
                    home_ip=self._public_ip(),
                    start_hour=float(r.uniform(*role.start_hour)),
                    day_length=float(r.uniform(*role.day_length)),
                    rate_scale=float(r.lognormal(0.0, 0.4)),
                    rows_median=float(role.rows_median * r.lognormal(0.0, 0.6)),
                    actions=(acts, ap / ap.sum()),
                )
            )
        return out

    # --- emit -------------------------------------------------------------------------
    def emit(
        self,
        p: Principal,
        ts: int,
        dataset: str,
        action: str,
        rows: int,
        ip: str,
        success: bool = True,
        incident: tuple[str, str] | None = None,
    ) -> None:
        rows = max(int(rows), 0) if success else 0
        width = 60 + (zlib.crc32(dataset.encode()) % 7) * 40  # bytes per row differs per dataset
        nbytes = int(rows * width * self.rng.uniform(0.8, 1.25)) + (
            int(self.rng.integers(200, 900)) if success else 0
        )
        self.events.append(
            {
                "event_id": f"ev-{self.rng.integers(0, 2**62):016x}",
                "ts": int(ts),
                "principal": p.name,
                "dataset": dataset,
                "action": action,
                "rows": rows,
                "bytes": nbytes,
                "source_ip": ip,
                "success": bool(success),
                "label": 0 if incident is None else 1,
                "incident_id": None if incident is None else incident[0],
                "incident_kind": None if incident is None else incident[1],
            }
        )

    def _rows(self, p: Principal, scale: float = 1.0, sigma: float | None = None) -> int:
        s = p.role.rows_sigma if sigma is None else sigma
        return int(max(1.0, self.rng.lognormal(np.log(p.rows_median * scale), s)))

    def _pick(self, p: Principal) -> str:
        return str(p.datasets[int(self.rng.choice(len(p.datasets), p=p.weights))])

    def _action(self, p: Principal) -> str:
        acts, ap = p.actions
        return str(acts[int(self.rng.choice(len(acts), p=ap))])

    # --- normal traffic ----------------------------------------------------------------
    def normal(self) -> None:
        for p in self.principals:
            for d in range(self.cfg.days):
                day0 = self.t0 + d * DAY
                weekend = d % 7 >= 5
                if p.role.name == "etl_service":
                    self._etl_day(p, day0)
                elif p.role.name == "bi_service":
                    self._bi_day(p, day0, weekend)
                else:
                    self._human_day(p, day0, weekend)

    def _human_day(self, p: Principal, day0: int, weekend: bool) -> None:
        r = self.rng
        noise = self.cfg.benign_noise
        if weekend and r.random() > p.role.weekend_prob:
            return
        if not weekend and r.random() < 0.04:  # day off
            return
        if r.random() < 0.01 * noise:  # onboarding: a new dataset of the role's domains
            pool = [x for dmn in p.role.domains for x in self.catalog[dmn] if x not in p.datasets]
            if pool:
                p.datasets.append(str(r.choice(pool)))
                w = np.append(p.weights, p.weights.mean())
                p.weights = w / w.sum()
        remote = r.random() < 0.2
        travel_ip = self._public_ip() if r.random() < 0.015 * noise else None
        n_events = int(r.poisson(p.role.events_per_day * p.rate_scale * (0.5 if weekend else 1)))
        start = p.start_hour + r.normal(0, 0.5)
        length = p.day_length * (0.6 if weekend else 1.0)
        n_sessions = int(r.integers(1, 5))
        per = max(1, n_events // n_sessions)
        for _ in range(n_sessions):
            t = day0 + int((start + r.uniform(0, length)) * HOUR)
            ip = travel_ip or (p.home_ip if remote else str(r.choice(p.ips)))
            if r.random() < 0.006 * noise:  # a typo at login, then success
                for _ in range(int(r.integers(1, 3))):
                    self.emit(p, t, self._pick(p), "READ", 0, ip, success=False)
                    t += int(r.uniform(3, 20) * SEC)
            ds = self._pick(p)
            for _ in range(int(r.poisson(per)) + 1):
                if r.random() < 0.35:
                    ds = self._pick(p)
                action = self._action(p)
                scale = 1.0
                if action == "EXPORT" and r.random() < 0.02 * noise:
                    scale = 8.0  # quarter-end report
                self.emit(p, t, ds, action, self._rows(p, scale), ip)
                t += int(r.exponential(90) * SEC) + SEC
        if r.random() < 0.05 * noise:  # overtime in the evening
            t = day0 + int(r.uniform(19, 22.5) * HOUR)
            ip = p.home_ip
            for _ in range(int(r.integers(2, 10))):
                self.emit(p, t, self._pick(p), self._action(p), self._rows(p), ip)
                t += int(r.exponential(120) * SEC) + SEC

    def _etl_day(self, p: Principal, day0: int) -> None:
        r = self.rng
        t = day0 + int(r.uniform(0, 60) * SEC)
        step = p.role.interval_s * p.rate_scale
        while t < day0 + DAY:
            ds = self._pick(p)
            self.emit(p, t, ds, self._action(p), self._rows(p), p.ips[0])
            t += int(r.exponential(step) * SEC) + 5 * SEC
        # nightly partition clean-up on staging: routine DELETEs
        t = day0 + 2 * HOUR + int(r.uniform(0, 10) * MIN)
        for ds in p.datasets[:3]:
            if ds.startswith("staging."):
                self.emit(p, t, ds, "DELETE", self._rows(p), p.ips[0])
                t += int(r.uniform(2, 20) * SEC)

    def _bi_day(self, p: Principal, day0: int, weekend: bool) -> None:
        r = self.rng
        minute = (zlib.crc32(p.name.encode()) % 50) + 2
        for hour in range(24):
            if weekend and hour % 4:
                continue
            t = day0 + hour * HOUR + minute * MIN + int(r.uniform(0, 30) * SEC)
            for ds in p.datasets:
                if r.random() < 0.8:
                    self.emit(p, t, ds, "READ", self._rows(p), p.ips[0])
                    t += int(r.uniform(0.5, 4) * SEC)

    # --- incidents ---------------------------------------------------------------------
    def incidents(self) -> None:
        cfg = self.cfg
        humans = [p for p in self.principals if p.role.human]
        if not humans or cfg.incidents_per_kind <= 0 or cfg.days <= cfg.history_days:
            return
        n = 0
        for kind in KINDS:
            for j in range(cfg.incidents_per_kind):
                variant = VARIANTS[kind][j % len(VARIANTS[kind])]
                n += 1
                inc = (f"inc-{cfg.seed}-{n:03d}-{kind}-{variant}", kind)
                getattr(self, f"_inc_{kind}")(variant, humans, inc)

    def _when(self, hour_lo: float, hour_hi: float, weekday: bool | None = True) -> int:
        r = self.rng
        for _ in range(100):
            d = int(r.integers(self.cfg.history_days, self.cfg.days))
            if weekday is None or (d % 7 < 5) == weekday:
                break
        return self.t0 + d * DAY + int(r.uniform(hour_lo, hour_hi) * HOUR)

    def _victim(self, humans: list[Principal], roles: tuple[str, ...] = ()) -> Principal:
        cands = [p for p in humans if not roles or p.role.name in roles] or humans
        return cands[int(self.rng.integers(0, len(cands)))]

    def _new_datasets(self, p: Principal, k: int, domains: tuple[str, ...] = ()) -> list[str]:
        pool = [
            x
            for x in self.all_datasets
            if x not in p.datasets and (not domains or x.split(".")[0] in domains)
        ]
        k = min(k, len(pool))
        return [str(x) for x in self.rng.choice(pool, size=k, replace=False)]

    def _inc_bulk_export(self, v: str, humans: list[Principal], inc: tuple[str, str]) -> None:
        r = self.rng
        p = self._victim(humans, ("analyst", "data_scientist", "support"))
        t = self._when(10, 16)
        if v == "massive":
            for _ in range(int(r.integers(1, 4))):
                self.emit(
                    p,
                    t,
                    self._pick(p),
                    "EXPORT",
                    self._rows(p, r.uniform(200, 1000), 0.3),
                    p.ips[0],
                    incident=inc,
                )
                t += int(r.uniform(1, 10) * MIN)
        elif v == "staged":
            for _ in range(int(r.integers(5, 16))):
                self.emit(
                    p,
                    t,
                    self._pick(p),
                    str(r.choice(["EXPORT", "READ"])),
                    self._rows(p, r.uniform(15, 40), 0.3),
                    p.ips[0],
                    incident=inc,
                )
                t += int(r.uniform(2, 12) * MIN)
        else:  # foreign: large reads from an unknown IP in the evening
            t = self._when(19, 23)
            ip = self._public_ip()
            for _ in range(int(r.integers(2, 7))):
                self.emit(
                    p,
                    t,
                    self._pick(p),
                    "READ",
                    self._rows(p, r.uniform(30, 80), 0.3),
                    ip,
                    incident=inc,
                )
                t += int(r.uniform(1, 8) * MIN)

    def _inc_scraping(self, v: str, humans: list[Principal], inc: tuple[str, str]) -> None:
        r = self.rng
        p = self._victim(humans)
        t = self._when(9, 17)
        ip = str(r.choice(p.ips))
        if v == "fast":
            targets = p.datasets + self._new_datasets(p, int(r.integers(30, 80)))
            for _ in range(int(r.integers(150, 400))):
                self.emit(
                    p, t, str(r.choice(targets)), "READ", int(r.integers(50, 500)), ip, incident=inc
                )
                t += int(r.uniform(0.3, 3) * SEC)
        elif v == "slow":
            targets = self._new_datasets(p, int(r.integers(40, 80)))
            for ds in targets:
                self.emit(p, t, ds, "READ", int(r.integers(100, 2000)), ip, incident=inc)
                t += int(r.uniform(20, 90) * SEC)
        else:  # paging through a known dataset, small pages, fast
            ds = self._pick(p)
            for _ in range(int(r.integers(100, 300))):
                self.emit(p, t, ds, "READ", int(r.integers(50, 200)), ip, incident=inc)
                t += int(r.uniform(0.5, 4) * SEC)

    def _inc_off_hours_new_data(
        self, v: str, humans: list[Principal], inc: tuple[str, str]
    ) -> None:
        r = self.rng
        p = self._victim(humans, ("analyst", "data_scientist", "engineer", "admin"))
        if v == "night":
            t, ip = self._when(1, 4.5), str(r.choice([p.home_ip, *p.ips]))
        elif v == "weekend":
            t, ip = self._when(13, 18, weekday=False), p.home_ip
        else:
            t, ip = self._when(0.5, 5), self._public_ip()
        targets = self._new_datasets(p, int(r.integers(2, 6)), SENSITIVE)
        for _ in range(int(r.integers(3, 11))):
            ds = str(r.choice(targets)) if r.random() < 0.8 else self._pick(p)
            self.emit(p, t, ds, "READ", self._rows(p, r.uniform(0.5, 3)), ip, incident=inc)
            t += int(r.uniform(0.5, 6) * MIN)

    def _inc_credential_stuffing(
        self, v: str, humans: list[Principal], inc: tuple[str, str]
    ) -> None:
        r = self.rng
        t = self._when(0, 24, weekday=None)
        if v == "burst":
            p = self._victim(humans)
            ips = [self._public_ip() for _ in range(int(r.integers(3, 30)))]
            for _ in range(int(r.integers(30, 150))):
                self.emit(
                    p, t, self._pick(p), "READ", 0, str(r.choice(ips)), success=False, incident=inc
                )
                t += int(r.uniform(0.2, 4) * SEC)
        elif v == "spray":
            k = min(len(humans), int(r.integers(8, 25)))
            for idx in r.choice(len(humans), size=k, replace=False):
                p = humans[int(idx)]
                ip = self._public_ip()
                for _ in range(int(r.integers(1, 4))):
                    self.emit(p, t, self._pick(p), "READ", 0, ip, success=False, incident=inc)
                    t += int(r.uniform(1, 30) * SEC)
                t += int(r.uniform(1, 5) * MIN)
        else:  # takeover: failures from one new IP, then success and reads from it
            p = self._victim(humans)
            ip = self._public_ip()
            for _ in range(int(r.integers(4, 12))):
                self.emit(p, t, self._pick(p), "READ", 0, ip, success=False, incident=inc)
                t += int(r.uniform(1, 10) * SEC)
            for _ in range(int(r.integers(3, 10))):
                self.emit(p, t, self._pick(p), "READ", self._rows(p), ip, incident=inc)
                t += int(r.uniform(5, 60) * SEC)

    def _inc_destructive(self, v: str, humans: list[Principal], inc: tuple[str, str]) -> None:
        r = self.rng
        t = self._when(8, 20)
        if v == "mass_delete":
            p = self._victim(humans)
            targets = p.datasets + self._new_datasets(p, int(r.integers(3, 15)), ("prod",))
            for _ in range(int(r.integers(20, 100))):
                self.emit(
                    p,
                    t,
                    str(r.choice(targets)),
                    "DELETE",
                    self._rows(p, 5, 0.5),
                    p.ips[0],
                    incident=inc,
                )
                t += int(r.uniform(1, 8) * SEC)
        elif v == "overwrite":
            p = self._victim(humans, ("analyst", "support"))
            for _ in range(int(r.integers(10, 40))):
                self.emit(
                    p,
                    t,
                    self._pick(p),
                    "WRITE",
                    self._rows(p, r.uniform(20, 80), 0.3),
                    p.ips[0],
                    incident=inc,
                )
                t += int(r.uniform(2, 20) * SEC)
        else:  # subtle: an engineer who deletes sometimes deletes several prod tables
            p = self._victim(humans, ("engineer",))
            targets = self._new_datasets(p, int(r.integers(2, 6)), ("prod",)) or p.datasets
            for _ in range(int(r.integers(5, 11))):
                self.emit(
                    p, t, str(r.choice(targets)), "DELETE", self._rows(p), p.ips[0], incident=inc
                )
                t += int(r.uniform(10, 60) * SEC)


def generate(cfg: TraceConfig) -> list[dict[str, Any]]:
    """The whole trace as event dicts sorted by ``ts`` (ties keep generation order)."""
    g = _Gen(cfg)
    g.normal()
    g.incidents()
    g.events.sort(key=lambda e: e["ts"])
    return g.events


def write_jsonl(events: list[dict[str, Any]], path: str | Path) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for e in events:
            fh.write(json.dumps(e, separators=(",", ":")))
            fh.write("\n")


def iter_trace(cfg: TraceConfig) -> Iterator[dict[str, Any]]:
    yield from generate(cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--principals", type=int, default=80)
    ap.add_argument("--days", type=int, default=21)
    ap.add_argument("--history-days", type=int, default=14)
    ap.add_argument("--incidents-per-kind", type=int, default=6)
    ap.add_argument("--baseline", action="store_true", help="no incidents (training traffic)")
    ap.add_argument("--role-mix", default=None, help="role=weight,... (default: the built-in mix)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    cfg = TraceConfig(
        seed=a.seed,
        n_principals=a.principals,
        days=a.days,
        history_days=a.history_days,
        incidents_per_kind=0 if a.baseline else a.incidents_per_kind,
    )
    if a.role_mix:
        mix = {k: float(v) for k, v in (kv.split("=") for kv in a.role_mix.split(","))}
        cfg = replace(cfg, role_mix=mix)
    ev = generate(cfg)
    write_jsonl(ev, a.out)
    n_inc = len({e["incident_id"] for e in ev if e["incident_id"]})
    print(f"{len(ev)} events, {n_inc} incidents -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
