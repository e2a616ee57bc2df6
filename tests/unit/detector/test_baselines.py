"""Peer-group and population baselines: a new principal is judged against its peers."""

from __future__ import annotations

import json

import pytest

from streamproc.detector.baselines import (
    POPULATION,
    Baselines,
    build_baselines,
    phase_of,
    read_groups,
)
from streamproc.detector.catalog import FEATURE_INDEX
from streamproc.detector.events import AccessEvent
from streamproc.detector.features import FeatureExtractor, PrincipalState
from streamproc.errors import DetectorError

T0 = 1_709_546_400_000  # Monday 10:00 UTC


def ev(i: int, who: str, ds: str = "hr.x", action: str = "READ", rows: int = 20) -> AccessEvent:
    t = T0 + i * 90_000
    return AccessEvent(f"e{i}", t, who, ds, action, rows, rows * 100, "10.0.0.1", True)


def peers(n: int = 6, k: int = 120) -> dict[str, PrincipalState]:
    fx = FeatureExtractor()
    states: dict[str, PrincipalState] = {}
    for j in range(n):
        st = states.setdefault(f"hr{j}", PrincipalState())
        for i in range(k):
            fx.update(st, ev(i, f"hr{j}", ds=f"hr.t{i % 3}"))
    return states


def test_learned_groups_follow_the_namespace_used_most_and_declared_ones_win() -> None:
    b = build_baselines(peers(), {"hr0": "people-team"})
    assert set(b.groups) == {"ns:hr", "people-team", POPULATION}
    assert b.group_of("hr1", peers(1)["hr0"].domains, "x") == "ns:hr"
    assert b.group_of("hr0", {}, "x") == "people-team"
    assert b.group_of("new", {}, "ops") == "ns:ops"
    hr = b.for_group("ns:hr")
    assert hr.actions["READ"] == pytest.approx(1.0)
    assert sum(hr.datasets.values()) == pytest.approx(1.0)
    assert b.for_group("unknown") is b.groups[POPULATION]


def test_round_trip() -> None:
    b = build_baselines(peers())
    back = Baselines.from_dict(json.loads(json.dumps(b.to_dict())))
    assert back.to_dict() == b.to_dict()
    with pytest.raises(DetectorError):
        Baselines.from_dict({"groups": {"g": {"members": 1}}, "declared": {}})


def test_a_new_accounts_first_deletes_and_huge_export_stand_out_against_its_peers() -> None:
    fx = FeatureExtractor(baselines=build_baselines(peers()))
    blind = FeatureExtractor()

    def first(x: FeatureExtractor, e: AccessEvent) -> tuple[float, ...]:
        return x.update(PrincipalState(), e)

    usual, delete = ev(0, "new", ds="hr.t1"), ev(0, "new", ds="hr.t1", action="DELETE")
    i = FEATURE_INDEX["action_rare"]
    assert first(fx, delete)[i] > first(fx, usual)[i] + 2.0
    assert first(blind, delete)[i] == first(blind, usual)[i]  # alone it knows nothing
    z = FEATURE_INDEX["rows_z"]
    huge = ev(0, "new", ds="hr.t1", action="READ", rows=20 * 500)
    assert first(fx, huge)[z] > 3.0 and first(blind, huge)[z] == 0.0
    # a principal with a long history of its own is judged mostly against itself
    own = peers(1, 400)["hr0"]
    assert fx.update(own, ev(401, "hr0", ds="hr.t1"))[i] < 1.0


def test_a_principal_declared_twice_is_an_error() -> None:
    assert read_groups([("a", "x"), ("a", "x")]) == {"a": "x"}
    with pytest.raises(DetectorError, match="principal b"):
        read_groups([("b", "x"), ("b", "y")])


def _office(start_hour: int, who: str, days: int = 10) -> list[AccessEvent]:
    """A principal working 8 hours a day from ``start_hour`` UTC, four events a day."""
    out = []
    for d in range(days):
        for j in range(4):
            t = T0 - 10 * 3_600_000 + d * 86_400_000 + (start_hour + 2 * j) * 3_600_000
            out.append(AccessEvent(f"{who}-{d}-{j}", t, who, "hr.x", "READ", 20, 2000, "ip", True))
    return out


def test_phase_of_finds_the_working_day_across_midnight() -> None:
    hours = [0.0] * 48
    for h in (22, 23, 0, 1, 2, 3):
        hours[h] = 2.0
    assert phase_of(hours) in (19, 20, 21, 22)  # a 9-hour window covering 22-03
    hours[24 + 1] = 1.0  # a weekend event counts for its hour of day
    assert phase_of(hours) in (19, 20, 21, 22)
    assert phase_of([0.0] * 47 + [2.0]) == -1  # two events: no phase yet


def test_hours_are_judged_against_the_principals_time_zone_not_its_namespace() -> None:
    # one namespace staffed in three time zones: together they cover almost the whole day
    fx = FeatureExtractor()
    states: dict[str, PrincipalState] = {}
    for start in (0, 7, 13):
        for j in range(10):
            who = f"p{start}-{j}"
            st = states.setdefault(who, PrincipalState())
            for e in _office(start, who):
                fx.update(st, e)
    bl = build_baselines(states)
    assert [len(p) for p in bl.phases].count(48) >= 3
    judged = FeatureExtractor(baselines=bl)
    mixed = FeatureExtractor(baselines=Baselines(bl.groups, bl.declared))  # no phase groups
    i = FEATURE_INDEX["time_rare"]

    def night_read(x: FeatureExtractor) -> float:
        # a quiet account of the 00-08 UTC office, ten events, then a read at 17:00 UTC,
        # when only the 13-21 UTC office works
        st = PrincipalState()
        for e in _office(0, "quiet", days=3)[:10]:
            x.update(st, e)
        late = AccessEvent(
            "late",
            T0 + 5 * 86_400_000 + 7 * 3_600_000,
            "quiet",
            "hr.x",
            "READ",
            20,
            2000,
            "ip",
            True,
        )
        return x.update(st, late)[i]

    assert night_read(judged) > night_read(mixed) + 0.3  # 4.64 against 4.11


def test_a_quiet_accounts_key_nobody_uses_stands_further_from_one_its_group_uses() -> None:
    # The pseudo-count of a key unseen by the principal and its group shrinks with the
    # group's share of the evidence squared: for a principal with a handful of events, a
    # dataset in a namespace nobody works in is not capped near a group-known one.
    fx = FeatureExtractor(baselines=build_baselines(peers()))
    i = FEATURE_INDEX["dataset_rare"]
    for n in (5, 10):

        def after(ds: str, n: int = n) -> float:
            st = PrincipalState()
            for j in range(n):
                fx.update(st, ev(j, "quiet", ds="hr.t0"))
            return fx.update(st, ev(n, "quiet", ds=ds))[i]

        assert after("payroll.x") - after("hr.t1") > 2.7  # 2.60 and 2.32 with half an event
