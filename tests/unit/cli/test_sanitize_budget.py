"""``streamproc sanitize`` with a budgeted policy: the budget holds over the whole file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streamproc.cli.main import main
from streamproc.keys import Keyring

CANARY = "CANARY-a17c"
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Payment",
    "namespace": "test",
    "fields": [
        {"name": "member_id", "type": "string", "privacy": {"action": "pseudonymize"}},
        {
            "name": "amount",
            "type": "double",
            "privacy": {
                "action": "noise",
                "epsilon": 0.25,
                "sensitivity": 100,
                "subject": "member_id",
                "budget": 1.0,
                "budget_window_days": 30,
            },
        },
        {
            "name": "count",
            "type": "long",
            "privacy": {
                "action": "noise",
                "epsilon": 0.5,
                "sensitivity": 1,
                "subject": "member_id",
                "budget": 1.0,
                "on_exhausted": "null",
            },
        },
    ],
}
SUBJECTS = 7
PER_SUBJECT = 9


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    keyring = Keyring.generate()
    kr = tmp_path / "keyring.json"
    keyring.save(kr)
    schema = tmp_path / "payment.avsc"
    schema.write_text(json.dumps(SCHEMA))
    src = tmp_path / "in.avro"
    # Interleaved subjects, small blocks: a per-block ledger would grant far more.
    rows = [
        {"member_id": f"{CANARY}-{s}", "amount": 10.0 * s, "count": s}
        for _ in range(PER_SUBJECT)
        for s in range(SUBJECTS)
    ]
    with src.open("wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(SCHEMA), rows, sync_interval=64)
    return kr, schema, src


def run(kr: Path, schema: Path, src: Path, out: Path, *extra: str) -> int:
    head = ["sanitize", "--schema", str(schema), "--keyring", str(kr), "--no-progress"]
    return main([*head, *extra, str(src), str(out)])


def test_budget_over_the_whole_file(
    files: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kr, schema, src = files
    out = tmp_path / "out.avro"
    assert run(kr, schema, src, out) == 0  # default workers: one, for a budgeted policy
    printed = capsys.readouterr()
    with out.open("rb") as fh:
        rows = list(fastavro.reader(fh))
    assert len(rows) == SUBJECTS * PER_SUBJECT
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_subject.setdefault(r["member_id"], []).append(r)
    assert len(by_subject) == SUBJECTS
    for recs in by_subject.values():
        amounts = [r["amount"] for r in recs]
        assert len(set(amounts)) == 4  # 1.0 / 0.25 fresh values, then the 4th repeated
        assert amounts[4:] == [amounts[3]] * (PER_SUBJECT - 4)
        counts = [r["count"] for r in recs]
        assert all(c is not None for c in counts[:2]) and counts[2:] == [None] * 7
    summary = printed.out.splitlines()[-1]
    assert summary == (
        f"budget: {SUBJECTS} subjects exhausted, {SUBJECTS * (5 + 7)} values re-released "
        f"or nulled, epsilon spent {SUBJECTS * 2.0:g} in total"
    )
    assert CANARY not in printed.out + printed.err


def test_explicit_parallel_workers_are_refused(
    files: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kr, schema, src = files
    out = tmp_path / "out.avro"
    assert run(kr, schema, src, out, "--workers", "2") == 1
    err = capsys.readouterr().err
    assert "fields amount, count have a per-subject noise budget" in err
    assert "--workers 1" in err and not out.exists()
