"""``streamproc demo`` (what ``make demo`` runs) succeeds on the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.cli.main import main

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    argv = ["demo", "--broker", kafka_bootstrap, "--records", "3000", "--report", str(report)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"steward's report (customer flow): {report}" in out
    assert '<svg class="plot"' in report.read_text()
    assert "dashboard: deploy/grafana/dashboards/streamproc.json" in out
    assert "RESULT: OK" in out
    assert "sanitized out    3000" in out
    assert "raw sensitive values found in sanitized records or keys: 0" in out
    # The access-log flow: one staged exfiltration, one containment message for on-call.
    assert "ACCESS RESULT: OK: the staged exfiltration was contained, for exactly " in out
    victim = out.split("ACCESS RESULT: OK: the staged exfiltration was contained, for exactly ")[1]
    victim = victim.split()[0]
    assert "containment message on-call receives:" in out
    assert f"  principal          {victim}" in out
    assert "  score / threshold  " in out and "  reasons\n    - " in out
    assert "1 for the staged exfiltration" in out
    assert "  recommended action SUSPEND_READ" in out or "  recommended action NOTIFY" in out
