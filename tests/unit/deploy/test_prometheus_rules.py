"""Alert rules checked and unit-tested with the real promtool (Debian package prometheus)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool missing: `make deps` installs the Debian package prometheus")
    return path


def test_rules_are_valid(promtool: str) -> None:
    out = subprocess.run(
        [promtool, "check", "rules", str(RULES / "rules.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_fire_as_designed(promtool: str) -> None:
    out = subprocess.run(
        [promtool, "test", "rules", "rules_test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_catches_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: x\n  rules:\n  - alert: A\n    expr: rate(x[5m]\n")
    out = subprocess.run(
        [promtool, "check", "rules", str(bad)], capture_output=True, text=True, check=False
    )
    assert out.returncode != 0
