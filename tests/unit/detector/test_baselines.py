"""Peer-group and population baselines: a new principal is judged against its peers."""

from __future__ import annotations

import json

import pytest

from streamproc.detector.baselines import POPULATION, Baselines, build_baselines, read_groups
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
