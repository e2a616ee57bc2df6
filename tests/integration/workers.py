"""Run real ``streamproc worker`` processes from tests (no test_context, no fakes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

READY_MARK = "[^Worker]: Ready"


class WorkerProcess:
    """One worker subprocess whose output goes to a log file the test can read."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        log_path: Path,
        bootstrap: str,
        data_dir: Path,
        env: dict[str, str] | None = None,
        command: Sequence[str] = ("streamproc.cli.main", "worker"),
    ) -> None:
        self.args = list(args)
        self.command = list(command)
        self.log_path = log_path
        self.env = {
            **os.environ,
            "STREAMPROC_BROKER": bootstrap,
            "STREAMPROC_DATA_DIR": str(data_dir),
            "STREAMPROC_METRICS_PORT": "0",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self, *, wait_ready: float = 60.0) -> WorkerProcess:
        log = self.log_path.open("ab")
        self._offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.command, *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        if wait_ready:
            self.wait_for(READY_MARK, timeout=wait_ready)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, mark: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            text = self.log_text()[self._offset :]
            if mark in text:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{text[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker not {mark!r} in {timeout} s:\n{self.log_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)
