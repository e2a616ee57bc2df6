"""``streamproc demo`` (what ``make demo`` runs) from a wheel installed outside the checkout.

The wheel is built from this tree and installed into a fresh venv whose dependencies come
from the test's own environment (a path entry, so no download); the demo then runs from a
folder that is not the checkout, so it can only use what the package ships.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q")
DEMO_ARGS = ("demo", "--records", "3000")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("streamproc-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with only the wheel installed; dependencies through a path entry."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A plain path line: the dependencies' folder, without processing its .pth files (so the
    # checkout's editable install of streamproc is not picked up).
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    scripts = env_dir / "bin" / "streamproc"
    scripts.write_text(
        f"#!{py}\nimport sys\nfrom streamproc.cli.main import main\nsys.exit(main())\n"
    )
    scripts.chmod(0o755)
    return env_dir


def test_wheel_ships_examples_and_no_dev_tooling(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "streamproc/examples/schemas/customer_profile.avsc",
        "streamproc/examples/schemas/access_event.avsc",
        "streamproc/examples/schemas/containment.avsc",
        "streamproc/examples/topologies/customers.yaml",
        "streamproc/localkafka/pom.xml",
        "streamproc/testing/access_traces.py",
    ):
        assert required in names, required
    assert not [n for n in names if n.startswith(("tests/", "load/"))]
    assert not [n for n in names if "/agents/" in n or n.startswith("streamproc/samples/")]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_installed_package_is_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import streamproc; print(streamproc.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_clean_env(),
    ).stdout
    assert where.startswith(str(installed)), where


def test_demo_runs_end_to_end(installed: Path, kafka_bootstrap: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    argv = [*DEMO_ARGS, "--report", str(report), "--broker", kafka_bootstrap]
    proc = subprocess.run(
        [str(installed / "bin" / "streamproc"), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_clean_env(),
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
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
