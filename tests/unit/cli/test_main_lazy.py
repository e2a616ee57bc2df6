"""``streamproc COMMAND`` imports only its command's module (start-up time of the worker)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streamproc.cli import main

HEAVY = ("faust", "sklearn", "scipy", "pandas", "openlineage")


def _modules_after(code: str) -> dict[str, bool]:
    report = f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    probe = f"{code}\nimport json, sys\n{report}"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_worker_command_loads_no_heavy_library_before_its_hot_path() -> None:
    # What `streamproc worker` imports before prepare_topologies starts the hot path.
    loaded = _modules_after(
        "from streamproc.cli.main import build_parser\n"
        "build_parser(['worker', '--topology', 't.yaml'])\n"
        "import streamproc.runtime.wiring"
    )
    assert not any(loaded.values()), loaded


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["worker", "--topology", "t.yaml"], "worker"),
        (["--log-level", "DEBUG", "dlq", "inspect"], "dlq"),
        (["--log-level=DEBUG", "keys", "list"], "keys"),
        (["--help"], None),
        ([], None),
        (["no-such-command"], None),
    ],
)
def test_the_command_is_found_in_argv(argv: list[str], command: str | None) -> None:
    assert main._command_of(argv) == command


def test_help_lists_every_command() -> None:
    parser = main.build_parser([])
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == list(main.GROUPS)  # type: ignore[attr-defined]


def test_one_command_registers_one_group() -> None:
    parser = main.build_parser(["worker", "--topology", "t.yaml"])
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == ["worker"]  # type: ignore[attr-defined]
    args = parser.parse_args(["worker", "--topology", "t.yaml"])
    assert args.topology == ["t.yaml"]
