"""``streamproc worker --offload``: how many helper processes each engine gets."""

from __future__ import annotations

import pytest

from streamproc.cli import worker
from streamproc.errors import ConfigError


@pytest.mark.parametrize(
    ("cpus", "hotpath", "agent"),
    [(1, 0, 0), (2, 0, 1), (3, 2, 1), (8, 7, 1)],
)
def test_auto_leaves_the_hot_path_thread_a_core(
    monkeypatch: pytest.MonkeyPatch, cpus: int, hotpath: int, agent: int
) -> None:
    monkeypatch.setattr(worker.os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    assert worker._offload("auto", "hotpath") == hotpath
    assert worker._offload("auto", "agent") == agent
    assert worker._offload("3", "hotpath") == 3  # an explicit count is taken as given


@pytest.mark.parametrize("bad", ["-1", "two"])
def test_bad_counts_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="--offload"):
        worker._offload(bad)
