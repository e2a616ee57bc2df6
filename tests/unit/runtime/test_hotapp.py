"""The hot path's wiring rules: the default consumer group, the one guarantee per worker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from streamproc.config.topology import Topology, default_app_id, load_topology
from streamproc.errors import ConfigError
from streamproc.runtime.hotapp import default_instance, guarantee_of
from streamproc.runtime.hotpath import HotPathSpec

ROOT = Path(__file__).resolve().parents[3]


def shipped(name: str) -> Topology:
    return load_topology(ROOT / "topologies" / f"{name}.yaml")


def test_default_app_id_is_stable_readable_and_order_free() -> None:
    claims, customers = shipped("claims"), shipped("customers")
    a = default_app_id([claims, customers])
    assert a == default_app_id([customers, claims])
    assert a.startswith("streamproc-claims.customers-") and len(a.rsplit("-", 1)[1]) == 8
    # Only characters that are legal in topic names (Faust prefixes changelogs with it).
    assert all(c.isalnum() or c in "._-" for c in a)


def test_default_app_id_tells_deployments_apart() -> None:
    customers = shipped("customers")
    other_source = replace(customers, source=replace(customers.source, topic="staging.raw"))
    assert default_app_id([customers]) != default_app_id([other_source])
    assert default_app_id([customers]) != default_app_id([customers, shipped("claims")])


def test_a_worker_runs_one_guarantee() -> None:
    # Both shipped training-data topologies are exactly_once.
    assert guarantee_of([shipped("customers"), shipped("claims")]) == "exactly_once"
    customers = replace(shipped("customers"), processing_guarantee="at_least_once")
    assert guarantee_of([customers]) == "at_least_once"
    with pytest.raises(ConfigError, match="share processing_guarantee") as err:
        guarantee_of([customers, shipped("claims")])
    assert "claims.yaml" in str(err.value)


def test_exactly_once_needs_a_transactional_id() -> None:
    with pytest.raises(ValueError, match="transactional id"):
        HotPathSpec(group="g", guarantee="exactly_once")
    spec = HotPathSpec(group="g", guarantee="exactly_once", transactional_id="g-a")
    assert spec.transactional_id == "g-a"


def test_default_instance_is_a_legal_id_part() -> None:
    inst = default_instance()
    assert inst and all(c.isalnum() or c in "._-" for c in inst)


def test_early_signals_are_held_then_redelivered() -> None:
    """A SIGTERM before Faust listens does not end the process; it reaches Faust's handler
    once that is installed (and the default handlers come back on restore)."""
    import os
    import signal

    from streamproc.runtime.hotapp import EarlySignals

    before = signal.getsignal(signal.SIGTERM)
    held = EarlySignals()
    try:
        held.install()
        os.kill(os.getpid(), signal.SIGTERM)
        assert held.pending == [signal.SIGTERM]
        got: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))  # "Faust's"
        held.redeliver()
        assert got == [signal.SIGTERM] and held.pending == []
        held.install()
        held.restore()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize(
    ("choice", "eager"), [(None, False), ("interval", False), ("caught-up", True)]
)
def test_eos_commit_flag_reaches_the_hot_path_spec(
    monkeypatch: pytest.MonkeyPatch, choice: str | None, eager: bool
) -> None:
    """``worker --eos-commit`` is parsed and handed through to ``HotPathSpec``."""
    from streamproc.cli.main import build_parser
    from streamproc.runtime import hotapp

    argv = ["worker", "--topology", "t.yaml", *(["--eos-commit", choice] if choice else [])]
    args = build_parser(argv).parse_args(argv)
    want = args.eos_commit == "caught-up"
    assert want is eager

    seen: list[HotPathSpec] = []

    class Stop(Exception):
        pass

    def ensure_outputs(*_a: object, **_k: object) -> None:
        raise Stop

    monkeypatch.setattr(hotapp, "HotPathSpec", lambda **kw: seen.append(HotPathSpec(**kw)))
    monkeypatch.setattr(hotapp, "ensure_outputs", ensure_outputs)

    class Flow:
        topology = replace(shipped("claims"), processing_guarantee="exactly_once")
        anonymity = budget = None

    class Settings:
        def kafka_config(self) -> dict[str, str]:
            return {}

    with pytest.raises(Stop):
        hotapp.start_hot_path(
            "app",
            Settings(),
            [Flow()],
            None,
            commit_when_caught_up=want,  # type: ignore[list-item, arg-type]
        )
    assert [s.commit_when_caught_up for s in seen] == [eager]
