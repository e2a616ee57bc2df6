"""``streamproc sanitize --workers N``: block-parallel output equals the inline output."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import fastavro
import pytest

from streamproc.avro.schema import read_schema_json
from streamproc.cli.main import main
from streamproc.keys import Keyring
from streamproc.pipeline import batch as parallel
from streamproc.policy import compile_plan
from streamproc.testing.customers import customer_records, policy_without_k

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "schemas" / "customer_profile.avsc"


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The customer policy without record-level k: chunks are sanitized independently only
    then (a k-anonymous plan is refused above one worker, tested in test_sanitize_anonymity)."""
    path = tmp_path_factory.mktemp("schema") / "customer_profile.avsc"
    path.write_text(json.dumps(policy_without_k(read_schema_json(SHIPPED)[0])))
    return path


DETERMINISTIC = ("customer_id", "email", "national_id", "birth_date", "postcode", "city")


@pytest.fixture
def files(tmp_path: Path, schema: Path) -> tuple[Path, Path]:
    keyring = Keyring.generate()
    kr = tmp_path / "keyring.json"
    keyring.save(kr)
    plan = compile_plan(schema, keyring)
    src = tmp_path / "in.avro"
    with src.open("wb") as fh:
        fastavro.writer(
            fh,
            plan.source_schema,
            (r for r, _ in customer_records(5000, seed=2)),
            sync_interval=16 * 1024,
        )
    return kr, src


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_parallel_equals_inline(
    files: tuple[Path, Path],
    schema: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    start_method: str,
) -> None:
    """Forked workers (Linux) inherit the plan; spawned ones (macOS, Windows) compile their
    own from the schema and keyring paths: both give the inline output."""
    monkeypatch.setattr(parallel, "_context", lambda: multiprocessing.get_context(start_method))
    kr, src = files
    outs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}.avro"
        assert (
            main(
                [
                    "sanitize",
                    "--schema",
                    str(schema),
                    "--keyring",
                    str(kr),
                    "--workers",
                    str(workers),
                    "--no-progress",
                    str(src),
                    str(out),
                ]
            )
            == 0
        )
        assert "sanitized 5000 records" in capsys.readouterr().out
        with out.open("rb") as fh:
            reader = fastavro.reader(fh)
            assert "full_name" not in [f["name"] for f in reader.writer_schema["fields"]]
            outs[workers] = list(reader)
    assert len(outs[1]) == len(outs[2]) == 5000
    for a, b in zip(outs[1], outs[2], strict=True):
        assert {k: a[k] for k in DETERMINISTIC} == {k: b[k] for k in DETERMINISTIC}


def test_parallel_fails_closed_on_a_corrupt_block(
    files: tuple[Path, Path], schema: Path, tmp_path: Path
) -> None:
    kr, src = files
    data = bytearray(src.read_bytes())
    # Corrupt bytes deep inside the data (past the header) so a block fails to decode.
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] = 0xFF
    bad = tmp_path / "bad.avro"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.avro"
    assert (
        main(
            [
                "sanitize",
                "--schema",
                str(schema),
                "--keyring",
                str(kr),
                "--workers",
                "2",
                "--no-progress",
                str(bad),
                str(out),
            ]
        )
        != 0
    )
    assert not out.exists()
    assert not list(tmp_path.glob(".out.avro.partial"))


def _run_on_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run the ``streamproc`` entry point with stderr on a pseudo-terminal (as a user would)."""
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from streamproc.cli.main import main; sys.exit(main())",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=120)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_progress_bar_on_a_terminal_only(
    files: tuple[Path, Path], schema: Path, tmp_path: Path, workers: str
) -> None:
    kr, src = files
    args = ["sanitize", "--schema", str(schema), "--keyring", str(kr), "--workers", workers]
    rc, out, term = _run_on_a_terminal([*args, str(src), str(tmp_path / "a.avro")])
    assert rc == 0, term
    assert "sanitized 5000 records (6 fields transformed, 3 dropped)" in out
    assert "records/s" in out and "[" not in out  # the summary line alone on stdout
    assert "100.0% 5,000 records" in term  # the bar ends full, on the terminal
    assert "#" * 30 in term
    # --no-progress: nothing drawn on the terminal.
    rc, out, term = _run_on_a_terminal([*args, "--no-progress", str(src), str(tmp_path / "b.avro")])
    assert rc == 0
    assert "sanitized 5000 records" in out
    assert "records" not in term and "#" not in term
