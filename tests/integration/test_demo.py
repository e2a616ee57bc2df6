"""``streamproc demo`` (what ``make demo`` runs) succeeds on the real broker."""

from __future__ import annotations

import pytest

from streamproc.cli.main import main

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end(kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--broker", kafka_bootstrap, "--records", "3000"]) == 0
    out = capsys.readouterr().out
    assert "RESULT: OK" in out
    assert "sanitized out    3000" in out
    assert "raw sensitive values found in sanitized records or keys: 0" in out
