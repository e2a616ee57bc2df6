"""``streamproc sanitize --workers N``: block-parallel output equals the inline output."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import fastavro
import pytest

from streamproc import parallel
from streamproc.cli.main import main
from streamproc.keys import Keyring
from streamproc.policy import compile_plan
from streamproc.samples.customers import customer_records

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "schemas" / "customer_profile.avsc"
DETERMINISTIC = ("customer_id", "email", "national_id", "birth_date", "postcode", "city")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    keyring = Keyring.generate()
    kr = tmp_path / "keyring.json"
    keyring.save(kr)
    plan = compile_plan(SCHEMA, keyring)
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
                    str(SCHEMA),
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


def test_parallel_fails_closed_on_a_corrupt_block(files: tuple[Path, Path], tmp_path: Path) -> None:
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
                str(SCHEMA),
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
