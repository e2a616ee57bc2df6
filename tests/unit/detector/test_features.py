from __future__ import annotations

import json
import math

import numpy as np
import pytest

from streamproc.detector.catalog import FEATURE_INDEX
from streamproc.detector.events import AccessEvent
from streamproc.detector.features import (
    FEATURE_BOUNDS,
    FEATURE_NAMES,
    FeatureConfig,
    FeatureExtractor,
    PrincipalState,
    extract,
    featurize,
    namespace_of,
    time_bin,
)
from streamproc.detector.state import copy_state
from streamproc.errors import DetectorError

T0 = 1_709_546_400_000  # Monday 2024-03-04 10:00 UTC
MIN = 60_000
HOUR_MS_FOR_TEST = 3_600_000
IDX = {n: i for i, n in enumerate(FEATURE_NAMES)}


def ev(
    i: int,
    ts: int,
    *,
    dataset: str = "sales.orders",
    action: str = "READ",
    rows: int = 100,
    ip: str = "10.1.2.3",
    success: bool = True,
    principal: str = "p",
) -> AccessEvent:
    return AccessEvent(f"e{i}", ts, principal, dataset, action, rows, rows * 50, ip, success)


def routine(n: int = 300) -> list[AccessEvent]:
    """A principal reading two datasets during office hours on weekdays."""
    out = []
    rng = np.random.default_rng(0)
    for i in range(n):
        day = i // 30
        ts = T0 + (day + 2 * (day // 5)) * 86_400_000 + (i % 30) * 10 * MIN
        out.append(ev(i, ts, dataset=("a", "b")[i % 2], rows=int(rng.integers(80, 130))))
    return out


def run(
    events: list[AccessEvent], st: PrincipalState | None = None
) -> tuple[np.ndarray, PrincipalState]:
    fx = FeatureExtractor()
    st = st or PrincipalState()
    rows = [fx.update(st, e) for e in events]
    return np.array(rows), st


def test_names_and_bounds_agree() -> None:
    assert len(FEATURE_NAMES) == len(FEATURE_BOUNDS) == len(set(FEATURE_NAMES))
    assert all(lo < hi for lo, hi in FEATURE_BOUNDS)


def test_deterministic_and_finite() -> None:
    a, _ = run(routine())
    b, _ = run(routine())
    assert np.array_equal(a, b)
    assert np.isfinite(a).all()


def test_state_round_trip_through_json_continues_identically() -> None:
    events = routine(400)
    full, _ = run(events)
    _, st = run(events[:250])
    restored = PrincipalState.from_dict(json.loads(json.dumps(st.to_dict())))
    tail, _ = run(events[250:], restored)
    assert np.array_equal(full[250:], tail)


def test_malformed_state_is_refused() -> None:
    with pytest.raises(DetectorError):
        PrincipalState.from_dict({"v": 1, "n": 3})


def test_new_dataset_ip_and_action_are_rarer_than_known_ones() -> None:
    events = routine()
    _, st = run(events)
    t = events[-1].ts + MIN
    fx = FeatureExtractor()
    known = fx.update(PrincipalState.from_dict(st.to_dict()), ev(1, t, dataset="a"))
    novel = fx.update(
        PrincipalState.from_dict(st.to_dict()),
        ev(2, t, dataset="hr.salaries", action="DELETE", ip="185.1.2.3"),
    )
    for name in ("dataset_rare", "ip_rare", "action_rare", "pair_rare", "domain_rare"):
        assert novel[IDX[name]] > known[IDX[name]] + 3, name


def test_namespace_rarity_tells_a_new_table_from_a_new_area() -> None:
    rng = np.random.default_rng(1)
    events = [
        ev(
            i,
            T0 + (i // 30) * 86_400_000 + (i % 30) * 10 * MIN,
            dataset=("sales.orders", "sales.leads")[i % 2],
            rows=int(rng.integers(80, 130)),
        )
        for i in range(300)
    ]
    _, st = run(events)
    t = events[-1].ts + MIN
    fx = FeatureExtractor()
    sibling = fx.update(PrincipalState.from_dict(st.to_dict()), ev(1, t, dataset="sales.refunds"))
    session, _ = run(
        [ev(2 + k, t + k * MIN, dataset=f"hr.t{k % 3}") for k in range(10)],
        PrincipalState.from_dict(st.to_dict()),
    )
    # a new table next to known ones is a new dataset, not a new area
    assert sibling[IDX["dataset_rare"]] > 5
    assert sibling[IDX["domain_rare"]] < 1
    # a new namespace is rare, and stays rare for the rest of that hour's session
    assert session[0, IDX["domain_rare"]] > 5
    assert session[-1, IDX["domain_rare"]] > 5
    assert namespace_of("db.schema.table") == "db.schema" and namespace_of("plain") == ""


def test_burst_stays_rare_while_it_lasts() -> None:
    events = routine()
    _, st = run(events)
    t = events[-1].ts + MIN
    burst = [
        ev(1000 + k, t + k * 5_000, dataset=f"prod.t{k % 5}", action="DELETE") for k in range(60)
    ]
    X, _ = run(burst, st)
    # the 60th DELETE within five minutes is still nearly as rare an action as the first
    assert X[-1, IDX["action_rare"]] > 0.7 * X[0, IDX["action_rare"]]
    assert X[-1, IDX["rate_short"]] > X[0, IDX["rate_short"]] + 2


def test_failures_and_volume_register() -> None:
    events = routine()
    _, st = run(events)
    t = events[-1].ts + MIN
    fails, _ = run(
        [ev(2000 + k, t + k * 1000, success=False, rows=0) for k in range(20)],
        PrincipalState.from_dict(st.to_dict()),
    )
    assert math.expm1(fails[-1, IDX["fail_short"]]) > 15
    big, _ = run(
        [ev(3000, t, rows=1_000_000, action="EXPORT")], PrincipalState.from_dict(st.to_dict())
    )
    assert big[0, IDX["rows_z"]] > 5


def test_memory_is_bounded() -> None:
    cfg = FeatureConfig(max_datasets=16, max_ips=8, max_pairs=16, max_domains=4)
    fx = FeatureExtractor(cfg)
    st = PrincipalState()
    for k in range(2000):
        fx.update(st, ev(k, T0 + k * 1000, dataset=f"n{k}.d", ip=f"10.{k % 250}.{k // 250}.1"))
    assert len(st.datasets) <= 16 and len(st.pairs) <= 16 and len(st.domains) <= 4
    assert len(st.ips) <= 8
    assert len(json.dumps(st.to_dict())) < 10_000


def test_out_of_order_event_does_not_move_time_backwards() -> None:
    events = routine(50)
    _, st = run(events)
    last = st.last_ts
    f, st = extract(FeatureExtractor(), st, ev(9, last - 3_600_000))
    assert st.last_ts == last and np.isfinite(f).all()


def test_featurize_processes_in_time_order_but_returns_input_order() -> None:
    events = routine(120)
    shuffled = list(reversed(events))
    a = featurize(FeatureExtractor(), events)
    b = featurize(FeatureExtractor(), shuffled)
    assert np.array_equal(a.X, b.X[::-1])
    assert list(a.history[:3]) == [0, 1, 2]


def test_time_bin_weekday_and_weekend() -> None:
    assert time_bin(T0) == 10  # Monday 10:00
    assert time_bin(T0 + 5 * 86_400_000) == 34  # Saturday 10:00


def test_version_1_and_2_states_are_migrated() -> None:
    _, st = run(routine(100))
    d = st.to_dict()
    assert d["v"] == 6 and d["domains"]
    old = {
        k: v
        for k, v in d.items()
        if k not in ("win", "cusum", "typ_run", "domains", "group", "phase", "reported")
    }
    old["v"] = 1
    restored = PrincipalState.from_dict(old)
    assert restored.n == st.n and restored.cusum == 0.0 and restored.win == 0.0
    v2 = {k: v for k, v in d.items() if k not in ("domains", "group", "phase", "reported")}
    v2["v"] = 2
    restored = PrincipalState.from_dict(v2)
    assert restored.cusum == st.cusum
    # the namespace counts are rebuilt from the dataset counts: nothing looks new after an upgrade
    assert set(restored.domains) == set(st.domains)
    for k, e in restored.domains.items():
        assert e[0] == pytest.approx(st.domains[k][0])
    with pytest.raises(DetectorError):
        PrincipalState.from_dict({**d, "v": 7})
    with pytest.raises(DetectorError):  # a version-6 state must carry its group and phase
        PrincipalState.from_dict({k: v for k, v in d.items() if k != "phase"})
    with pytest.raises(DetectorError):  # ... and the actions its open incident sent
        PrincipalState.from_dict({k: v for k, v in d.items() if k != "reported"})
    # a version-4 state has no hour phase yet: it is derived again at the next event
    v4 = {k: v for k, v in d.items() if k not in ("phase", "reported")}
    v4["v"] = 4
    assert PrincipalState.from_dict(v4).phase == -1


def test_staged_export_accumulates_in_the_volume_cusum() -> None:
    events = routine()
    _, st = run(events)
    t = events[-1].ts + MIN
    # ten reads each ~30x the usual rows: each one alone sits in the normal tail
    staged = [ev(4000 + k, t + k * 5 * MIN, rows=3_000) for k in range(10)]
    X, _ = run(staged, PrincipalState.from_dict(st.to_dict()))
    assert X[-1, IDX["volume_cusum"]] > X[0, IDX["volume_cusum"]] + 1.5
    usual, _ = run([ev(5000 + k, t + k * 5 * MIN) for k in range(10)], st)
    assert usual[:, IDX["volume_cusum"]].max() < 1.0


def test_a_staged_export_does_not_widen_the_volume_norm_much() -> None:
    events = routine()
    _, st = run(events)
    sd_before = st.norms["READ"][2]
    t = events[-1].ts + MIN
    _, st = run([ev(4000 + k, t + k * 5 * MIN, rows=3_000) for k in range(10)], st)
    # a 3-sd cap on the spread update would widen it ~2.9x over ten such events
    assert st.norms["READ"][2] < 2.0 * sd_before
    big, _ = run([ev(6000, t + HOUR_MS_FOR_TEST, rows=200_000)], st)
    assert big[0, IDX["rows_z"]] > 5


def test_paging_and_write_bursts_register() -> None:
    events = routine()
    _, st = run(events)
    t = events[-1].ts + MIN
    paging, _ = run(
        [ev(7000 + k, t + k * 2_000, dataset="a") for k in range(120)],
        PrincipalState.from_dict(st.to_dict()),
    )
    assert paging[-1, IDX["dataset_run"]] > 2.5
    writes, _ = run(
        [ev(8000 + k, t + k * 10_000, action="WRITE") for k in range(20)],
        PrincipalState.from_dict(st.to_dict()),
    )
    assert writes[-1, IDX["action_burst"]] > 2.0
    usual, _ = run([ev(9000 + k, t + k * 10 * MIN, dataset="ab"[k % 2]) for k in range(12)], st)
    assert usual[:, IDX["dataset_run"]].max() < 1.0
    assert usual[:, IDX["action_burst"]].max() < 1.0


def test_a_session_from_a_new_address_is_novel_at_its_start_only() -> None:
    events = routine()
    _, st = run(events)
    t = events[-1].ts + MIN
    X, _ = run([ev(9500 + k, t + k * MIN, ip="203.0.113.7") for k in range(20)], st)
    assert X[0, IDX["ip_rare"]] > X[-1, IDX["ip_rare"]] + 1.5


def test_an_out_of_order_event_never_inflates_recent_counts() -> None:
    """An event older than a key's last use counts as simultaneous with it: a negative age
    would multiply the decayed count (2^10 for ten hours late) instead of decaying it."""

    def at(i: int, t: int) -> AccessEvent:
        return AccessEvent(f"e{i}", t, "p", "hr.x", "READ", 10, 1000, "10.0.0.1", True)

    fx = FeatureExtractor()
    st = PrincipalState()
    for i in range(30):
        fx.update(st, at(i, T0 + i * 10 * MIN))
    # as late as ten hours, it counts like an event at the time of the last one
    late, now = at(98, T0 - 10 * HOUR_MS_FOR_TEST), at(99, T0 + 290 * MIN)
    a, b = copy_state(st), copy_state(st)
    f_late, f_now = fx.update(a, late), fx.update(b, now)
    for name in ("dataset_run", "action_burst"):
        assert f_late[FEATURE_INDEX[name]] <= f_now[FEATURE_INDEX[name]] + 1e-9
    assert all(v[1] <= v[0] + 1e-9 for v in a.datasets.values())
