"""A local Prometheus and Alertmanager (Debian packages) on loopback, for on-call rehearsal.

``make observe-up`` / ``make observe-down`` and the alerting tests use it. Each
:class:`LocalObserve` has its own folder (configs, data, logs, PID files) under
``.cache/observe/<name>``, so a test can run its own pair beside a developer's. Both servers
listen on ``host`` only; Alertmanager's gossip listener (``0.0.0.0:9094`` by default) is off.

The configs are the project's own files rendered for the loopback setting: the scrape config
(``deploy/prometheus/prometheus.yml``) with the worker targets, rule files and the
Alertmanager address replaced; the Alertmanager route (``deploy/alertmanager/alertmanager.yml``)
with the webhook URL replaced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streamproc.errors import LocalObserveError
from streamproc.localkafka import cache_dir

DEFAULT_HOST = "127.0.0.1"
# Not 9090/9093: 9093 is the local broker's controller port.
DEFAULT_PROMETHEUS_PORT = 9490
DEFAULT_ALERTMANAGER_PORT = 9493
DEFAULT_TARGET = "127.0.0.1:9464"
DEFAULT_WEBHOOK = "http://127.0.0.1:9499/alerts"
JOB = "streamproc"

# Binary names: Debian's package, then the upstream name.
BINARIES: Mapping[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
}


@dataclass(frozen=True)
class ObserveSpec:
    """What one local Prometheus + Alertmanager pair looks like."""

    prometheus_config: Path  # the project's scrape config (base)
    rules: tuple[Path, ...]  # alert rule files
    alertmanager_config: Path  # the project's Alertmanager route (base)
    name: str = "default"
    host: str = DEFAULT_HOST
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT
    alertmanager_port: int = DEFAULT_ALERTMANAGER_PORT
    targets: tuple[str, ...] = (DEFAULT_TARGET,)
    webhook_url: str = DEFAULT_WEBHOOK
    # None keeps the base file's value; tests set short ones.
    scrape_interval: str | None = None
    evaluation_interval: str | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    home: Path | None = None  # default: .cache/observe/<name>

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.host}:{self.alertmanager_port}"


def render_prometheus(spec: ObserveSpec) -> dict[str, Any]:
    """The base scrape config with loopback targets, absolute rule files, local Alertmanager."""
    doc = _read_yaml(spec.prometheus_config)
    glob = dict(doc.get("global") or {})
    if spec.scrape_interval:
        glob["scrape_interval"] = spec.scrape_interval
    if spec.evaluation_interval:
        glob["evaluation_interval"] = spec.evaluation_interval
    doc["global"] = glob
    jobs = [j for j in doc.get("scrape_configs") or [] if j.get("job_name") == JOB]
    if not jobs:
        raise LocalObserveError(f"{spec.prometheus_config}: no scrape job named {JOB!r}")
    for job in jobs:
        job["static_configs"] = [{"targets": list(spec.targets)}]
    doc["rule_files"] = [str(Path(r).resolve()) for r in spec.rules]
    doc["alerting"] = {
        "alertmanagers": [
            {"static_configs": [{"targets": [f"{spec.host}:{spec.alertmanager_port}"]}]}
        ]
    }
    return doc


def render_alertmanager(spec: ObserveSpec) -> dict[str, Any]:
    """The base route with every webhook pointed at ``spec.webhook_url``."""
    doc = _read_yaml(spec.alertmanager_config)
    hooks = [w for r in doc.get("receivers") or [] for w in r.get("webhook_configs") or []]
    if not hooks:
        raise LocalObserveError(f"{spec.alertmanager_config}: no webhook receiver")
    for hook in hooks:
        hook["url"] = spec.webhook_url
    routes = [doc["route"], *doc["route"].get("routes", [])]
    for route in routes:
        if spec.group_wait:
            route["group_wait"] = spec.group_wait
        if spec.group_interval:
            route["group_interval"] = spec.group_interval
    return doc


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LocalObserveError(f"{path}: cannot read ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise LocalObserveError(f"{path}: not a YAML mapping")
    return doc


def find_binary(kind: str) -> str:
    """Path of the Prometheus or Alertmanager binary; a clear error when not installed."""
    for name in BINARIES[kind]:
        path = shutil.which(name)
        if path:
            return path
    raise LocalObserveError(f"{kind} is not installed; run `make deps` to install it")


@dataclass
class _Server:
    """One of the two processes: its command line, PID file and readiness URL."""

    kind: str
    args: list[str]
    pid_file: Path
    log_file: Path
    ready_url: str
    started: float = field(default=0.0)


class LocalObserve:
    """Lifecycle of one local Prometheus + Alertmanager pair: render, start, wait, stop."""

    def __init__(self, spec: ObserveSpec) -> None:
        self.spec = spec
        self.home = (spec.home or cache_dir() / "observe" / spec.name).resolve()
        self.prometheus_file = self.home / "prometheus.yml"
        self.alertmanager_file = self.home / "alertmanager.yml"
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def _servers(self) -> list[_Server]:
        s, h = self.spec, self.home
        return [
            _Server(
                "alertmanager",
                [
                    f"--config.file={self.alertmanager_file}",
                    f"--storage.path={h / 'alertmanager-data'}",
                    f"--web.listen-address={s.host}:{s.alertmanager_port}",
                    "--cluster.listen-address=",
                ],
                h / "alertmanager.pid",
                h / "alertmanager.log",
                f"{s.alertmanager_url}/-/ready",
            ),
            _Server(
                "prometheus",
                [
                    f"--config.file={self.prometheus_file}",
                    f"--storage.tsdb.path={h / 'prometheus-data'}",
                    "--storage.tsdb.retention.time=2d",
                    f"--web.listen-address={s.host}:{s.prometheus_port}",
                ],
                h / "prometheus.pid",
                h / "prometheus.log",
                f"{s.prometheus_url}/-/ready",
            ),
        ]

    def write_configs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.prometheus_file.write_text(yaml.safe_dump(render_prometheus(self.spec)))
        self.alertmanager_file.write_text(yaml.safe_dump(render_alertmanager(self.spec)))

    def pids(self) -> dict[str, int]:
        """PIDs of the servers of this instance that run (by PID file and command line)."""
        out = {}
        for srv in self._servers():
            pid = _running_pid(srv.pid_file, BINARIES[srv.kind])
            if pid is not None:
                out[srv.kind] = pid
        return out

    def ready(self) -> bool:
        return all(_answers(srv.ready_url) for srv in self._servers())

    def start(self, *, timeout: float = 30.0) -> float:
        """Start both servers unless they run; wait until they answer. Returns seconds spent."""
        t0 = time.monotonic()
        self.write_configs()
        running = self.pids()
        for srv in self._servers():
            if srv.kind not in running:
                self._spawn(srv)
        deadline = t0 + timeout
        for srv in self._servers():
            while not _answers(srv.ready_url):
                if self._exited(srv.kind):
                    self.stop()
                    raise LocalObserveError(
                        f"{srv.kind} exited during start-up; see {srv.log_file}:\n"
                        f"{_tail(srv.log_file)}"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise LocalObserveError(
                        f"{srv.kind} did not answer on {srv.ready_url} within {timeout:.0f} s"
                    )
                time.sleep(0.2)
        return time.monotonic() - t0

    def _exited(self, kind: str) -> bool:
        """Whether the server of ``kind`` is gone. A child we spawned is asked directly: right
        after the fork its command line is still ours (not yet the server's), so the PID-file
        check alone would call a slow start an exit."""
        child = self._children.get(kind)
        if child is not None:
            return child.poll() is not None
        return kind not in self.pids()

    def _spawn(self, srv: _Server) -> None:
        for sub in ("alertmanager-data", "prometheus-data"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        with srv.log_file.open("ab") as log:
            proc = subprocess.Popen(
                [find_binary(srv.kind), *srv.args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        srv.pid_file.write_text(f"{proc.pid}\n")
        self._children[srv.kind] = proc

    def reload(self) -> None:
        """Re-render the configs and make both servers re-read them (SIGHUP)."""
        self.write_configs()
        for pid in self.pids().values():
            os.kill(pid, signal.SIGHUP)

    def stop(self, *, timeout: float = 15.0) -> bool:
        """Stop whatever of this instance runs (SIGTERM, SIGKILL after ``timeout``)."""
        stopped = False
        for srv in self._servers():
            pid = _running_pid(srv.pid_file, BINARIES[srv.kind])
            if pid is not None:
                _terminate(pid, timeout)
                stopped = True
            srv.pid_file.unlink(missing_ok=True)
        for child in self._children.values():  # one caught before its exec, if any
            if child.poll() is None:
                _terminate(child.pid, timeout)
                stopped = True
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1)
        self._children.clear()
        return stopped

    def log_tail(self, kind: str, lines: int = 30) -> str:
        return _tail(self.home / f"{kind}.log", lines)


def _running_pid(pid_file: Path, names: Sequence[str]) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    # A recycled PID would not run our binary.
    argv0 = Path(cmdline.split(b"\0", 1)[0].decode(errors="replace")).name
    if argv0 not in names or _zombie(pid):
        return None
    return pid


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z"
    except (OSError, IndexError):
        return True


def _terminate(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
