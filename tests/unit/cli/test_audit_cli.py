"""``streamproc audit keygen|verify|show|anchor`` on files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from streamproc.audit import AuditLog, CheckpointSigner, FileSink
from streamproc.cli.main import main
from tests.unit.audit.conftest import FakeClock, write_trail


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    assert main(["audit", "keygen", "--out", str(tmp_path / "keys")]) == 0
    out = capsys.readouterr().out
    private, public = (
        tmp_path / "keys" / "audit-signing.pem",
        tmp_path / "keys" / "audit-signing.pub.pem",
    )
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert "key id:" in out and "PRIVATE" not in out
    return private, public


def _trail(path: Path, private: Path, n: int = 50, close: bool = True) -> None:
    log = AuditLog(
        FileSink(path), CheckpointSigner.from_file(private), checkpoint_every=10, clock=FakeClock()
    )
    write_trail(log, n)
    if close:
        log.close()


def test_keygen_refuses_to_overwrite(keys: tuple[Path, Path]) -> None:
    assert main(["audit", "keygen", "--out", str(keys[0].parent)]) == 1


def test_group_readable_signing_key_is_refused(keys: tuple[Path, Path]) -> None:
    keys[0].chmod(0o640)
    with pytest.raises(Exception, match="chmod 600"):
        CheckpointSigner.from_file(keys[0])


def test_verify_ok_then_tampered(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "audit.jsonl"
    _trail(trail, keys[0])
    args = ["audit", "verify", "--file", str(trail), "--public-key", str(keys[1])]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert ": OK" in out and "entries: 50" in out and "anchor: 4:" in out
    lines = trail.read_bytes().splitlines(keepends=True)
    del lines[20]  # line 21: entry seq 19, the last of the second interval
    trail.write_bytes(b"".join(lines))
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and "DELETED: entry seq 19 missing between line 20 and line 22" in out


def test_verify_json_and_unsigned_tail(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "audit.jsonl"
    _trail(trail, keys[0], n=25, close=False)  # 2 checkpoints, 5 entries unsigned
    args = ["audit", "verify", "--file", str(trail), "--public-key", str(keys[1]), "--json"]
    assert main(args) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["findings"] == []
    assert report["unsigned_tail"] == {"count": 5, "first_seq": 20, "last_seq": 24}
    assert main([*args, "--allow-unsigned-tail"]) == 0


def test_anchor_detects_truncation(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "audit.jsonl"
    _trail(trail, keys[0], n=40)
    src = ["--file", str(trail), "--public-key", str(keys[1])]
    assert main(["audit", "anchor", *src]) == 0
    anchor = capsys.readouterr().out.strip()
    assert anchor.startswith("3:")
    lines = trail.read_bytes().splitlines(keepends=True)
    trail.write_bytes(b"".join(lines[:33]))  # cut exactly after checkpoint #2: looks complete
    assert main(["audit", "verify", *src]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", *src, "--anchor", anchor]) == 1
    assert "TRUNCATED" in capsys.readouterr().out


def test_verify_with_wrong_key_reports_untrusted(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "audit.jsonl"
    _trail(trail, keys[0], n=10)
    main(["audit", "keygen", "--out", str(tmp_path / "other")])
    capsys.readouterr()
    other = tmp_path / "other" / "audit-signing.pub.pem"
    assert main(["audit", "verify", "--file", str(trail), "--public-key", str(other)]) == 1
    assert "UNTRUSTED_KEY" in capsys.readouterr().out


def test_show_filters_by_kind(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "audit.jsonl"
    _trail(trail, keys[0], n=12)
    assert main(["audit", "show", "--file", str(trail), "--kind", "reveal"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(" reveal " in line and 'who="User:alice"' in line for line in out)


def test_missing_file_is_an_error(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    args = ["audit", "verify", "--file", str(tmp_path / "nope"), "--public-key", str(keys[1])]
    assert main(args) == 1
