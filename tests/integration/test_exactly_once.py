"""exactly_once under faults, on a broker of the test's own (never the shared one):
``kill -9`` of the worker three times and SIGKILL + restart of the broker twice during one
run; a read_committed consumer sees every source offset exactly once (sink + dead letters).
``STREAMPROC_EOS_RECORDS`` sets the size (default 20k; ``make bench`` runs 300k through
``load/bench_eos_faults.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.eos_faults import run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_kills_and_broker_restarts_lose_and_duplicate_nothing(tmp_path: Path, capsys) -> None:
    n = int(os.environ.get("STREAMPROC_EOS_RECORDS", "20000"))
    out = run_scenario(n, tmp_path, log=lambda _: None)
    assert len(out.faults) == 5, out.faults
    assert len(out.expected) == n
    assert out.lost == 0, f"{out.lost} source offsets missing"
    assert out.duplicates == 0, f"{out.duplicates} duplicates"
    assert out.unexpected == 0
    assert out.dead_letters == n // 500, "the non-Avro records are dead letters, once each"
    # Their audit entries too: written before each commit, once per source coordinate.
    assert set(out.audited) == out.dead_coordinates, "a dead letter without its audit entry"
    assert max(out.audited.values()) == 1, "a dead letter audited twice"
    # The schema's k = 5 held across the faults: records waited in the buffer through them.
    assert out.k_min is not None and out.k_min >= 5
    with capsys.disabled():
        print(
            f"\n[exactly-once faults] {n} records, {', '.join(out.faults)}: "
            f"{out.lost} lost, {out.duplicates} duplicates, {out.dead_letters} dead letters "
            f"({sum(out.audited.values())} audit entries), "
            f"{out.restarts} self-exits restarted, {out.seconds:.0f} s; k_min {out.k_min}, "
            f"{out.suppressed} suppressed"
        )
