from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.workers import WorkerProcess


@pytest.fixture
def worker_factory(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes; every one is stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def make(
        *args: str,
        name: str = "w",
        env: dict[str, str] | None = None,
        start: bool = True,
        command: tuple[str, ...] = ("streamproc.cli.main", "worker"),
    ) -> WorkerProcess:
        w = WorkerProcess(
            args,
            log_path=tmp_path / f"{name}.log",
            bootstrap=kafka_bootstrap,
            data_dir=tmp_path / f"{name}-data",
            env=env,
            command=command,
        )
        started.append(w)
        return w.start() if start else w

    yield make
    for w in started:
        w.stop()
