"""Rendering the project's Prometheus and Alertmanager configs for loopback, checked by the
servers' own tools (promtool, amtool from the Debian packages)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streamproc.errors import LocalObserveError
from streamproc.localobserve import (
    LocalObserve,
    ObserveSpec,
    render_alertmanager,
    render_prometheus,
)

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def spec(tmp: Path, **kw: object) -> ObserveSpec:
    base: dict[str, object] = {
        "prometheus_config": DEPLOY / "prometheus" / "prometheus.yml",
        "rules": (DEPLOY / "prometheus" / "rules.yml",),
        "alertmanager_config": DEPLOY / "alertmanager" / "alertmanager.yml",
        "home": tmp / "obs",
        "prometheus_port": 19990,
        "alertmanager_port": 19993,
        "targets": ("127.0.0.1:19464", "127.0.0.1:19465"),
        "webhook_url": "http://127.0.0.1:19999/hook",
    }
    return ObserveSpec(**{**base, **kw})  # type: ignore[arg-type]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} missing: `make deps` installs it")
    return path


def test_prometheus_config_points_at_loopback(tmp_path: Path) -> None:
    doc = render_prometheus(spec(tmp_path, scrape_interval="1s"))
    job = doc["scrape_configs"][0]
    assert job["job_name"] == "streamproc"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:19464", "127.0.0.1:19465"]}]
    assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:19993"
    ]
    assert doc["rule_files"] == [str((DEPLOY / "prometheus" / "rules.yml").resolve())]
    assert doc["global"]["scrape_interval"] == "1s"
    assert doc["global"]["evaluation_interval"] == "5s"  # the base file's value is kept


def test_alertmanager_config_delivers_to_the_webhook(tmp_path: Path) -> None:
    doc = render_alertmanager(spec(tmp_path, group_wait="1s"))
    hooks = [w for r in doc["receivers"] for w in r["webhook_configs"]]
    assert [h["url"] for h in hooks] == ["http://127.0.0.1:19999/hook"]
    assert doc["route"]["group_wait"] == "1s"
    assert all(r["group_wait"] == "1s" for r in doc["route"]["routes"])
    assert "topology" in doc["route"]["group_by"]


def test_rendered_configs_pass_the_servers_checks(tmp_path: Path) -> None:
    obs = LocalObserve(spec(tmp_path))
    obs.write_configs()
    for cmd in (
        [tool("promtool"), "check", "config", str(obs.prometheus_file)],
        [tool("amtool"), "check-config", str(obs.alertmanager_file)],
        [tool("amtool"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")],
    ):
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stdout + out.stderr


def test_server_flags_bind_loopback_and_disable_gossip(tmp_path: Path) -> None:
    servers = {s.kind: s.args for s in LocalObserve(spec(tmp_path))._servers()}
    assert "--web.listen-address=127.0.0.1:19990" in servers["prometheus"]
    assert "--web.listen-address=127.0.0.1:19993" in servers["alertmanager"]
    assert "--cluster.listen-address=" in servers["alertmanager"]
    for args in servers.values():
        assert all(str(tmp_path) in a for a in args if "path" in a or "config.file" in a)


def test_a_base_config_without_the_job_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "prom.yml"
    other.write_text(yaml.safe_dump({"scrape_configs": [{"job_name": "other"}]}))
    with pytest.raises(LocalObserveError, match="no scrape job named 'streamproc'"):
        render_prometheus(spec(tmp_path, prometheus_config=other))


def test_stop_without_servers_is_a_no_op(tmp_path: Path) -> None:
    obs = LocalObserve(spec(tmp_path))
    assert obs.pids() == {}
    assert obs.stop() is False
