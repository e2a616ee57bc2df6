"""``streamproc observe up|status|down`` (what ``make observe-up/down`` run) on the real
Prometheus and Alertmanager binaries, in a private cache folder and on free ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.cli.main import main
from tests.integration.test_sanitize_pipeline import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_up_status_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMPROC_CACHE", str(tmp_path))
    ports = ["--name", "cli", "--prometheus-port", str(free_port())]
    ports += ["--alertmanager-port", str(free_port())]
    up = [
        *("observe", "up", "--config", str(DEPLOY / "prometheus" / "prometheus.yml")),
        *("--rules", str(DEPLOY / "prometheus" / "rules.yml")),
        *("--alertmanager-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")),
        *ports,
    ]
    try:
        assert main(up) == 0
        assert main(["observe", "status", *ports]) == 0
        assert main(up) == 0  # already running: a no-op
        home = tmp_path / "observe" / "cli"
        assert {p.name for p in home.glob("*.pid")} == {"prometheus.pid", "alertmanager.pid"}
    finally:
        assert main(["observe", "down", *ports]) == 0
    assert main(["observe", "status", *ports]) == 1
    out = capsys.readouterr().out
    assert "Prometheus http://127.0.0.1:" in out and "stopped" in out and "not running" in out
    assert not list((tmp_path / "observe" / "cli").glob("*.pid"))


def test_up_with_a_broken_rule_file_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMPROC_CACHE", str(tmp_path))
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: x\n  rules:\n  - alert: A\n    expr: rate(x[5m]\n")
    ports = ["--name", "bad", "--prometheus-port", str(free_port())]
    ports += ["--alertmanager-port", str(free_port())]
    argv = [
        *("observe", "up", "--config", str(DEPLOY / "prometheus" / "prometheus.yml")),
        *("--rules", str(bad)),
        *("--alertmanager-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")),
        *ports,
    ]
    try:
        assert main(argv) == 1
        assert "prometheus exited during start-up" in capsys.readouterr().err
        # Nothing is left running: the Alertmanager it had started is stopped too.
        assert main(["observe", "status", *ports]) == 1
        assert "not running" in capsys.readouterr().out
    finally:
        main(["observe", "down", *ports])
