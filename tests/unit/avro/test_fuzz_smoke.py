"""A short coverage-guided fuzz run (atheris) over decode + sanitize; ``make fuzz`` runs 10^6."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_short_fuzz_run_finds_no_crash_and_accounts_for_every_input(tmp_path: Path) -> None:
    n = 20_000
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "load.fuzz_decode",
            "--inputs",
            str(n),
            "--corpus",
            str(tmp_path / "corpus"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    m = re.search(
        r"fuzz summary: (\d+) inputs accounted for \((.*)\); (\d+) unaccounted; "
        r"(\d+) crashes; slowest input ([\d.]+) ms",
        out,
    )
    assert m, out[-3000:]
    total, reasons, unaccounted, crashes, slowest = m.groups()
    assert int(total) == n and int(unaccounted) == 0 and int(crashes) == 0
    assert float(slowest) < 1000.0
    # The fuzzer reached deep: records that decode and sanitize, and the bounds checks.
    counts = dict(item.split("=") for item in reasons.split(", "))
    assert int(counts.get("sanitized", 0)) > 0
    assert "internal_error" not in counts
