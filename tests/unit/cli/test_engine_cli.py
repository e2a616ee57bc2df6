"""keys / schema derive / sanitize / reveal through the command-line entry point."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streamproc.cli.main import main
from streamproc.keys import Keyring

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def v1_record(i: int) -> dict[str, Any]:
    return {
        "customer_id": f"C{i}",
        "full_name": "Ann Lee",
        "email": "ann.lee@example.com",
        "phone": "+44 7700 900123",
        "national_id": f"AB{i:06d}C",
        "birth_date": dt.date(1980, 5, 17),
        "postcode": "SW1A 1AA",
        "city": "London",
        "country": "GB",
        "gender": "FEMALE",
        "annual_income": 52_000.0,
        "credit_score": 710,
        "signup_ts": dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    }


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    assert main(["keys", "init", "--out", str(path)]) == 0
    return path


@pytest.fixture
def v1_file(tmp_path: Path) -> Path:
    schema = fastavro.parse_schema(json.loads((SCHEMAS / "customer_profile.v1.avsc").read_text()))
    path = tmp_path / "in.avro"
    with path.open("wb") as fh:
        fastavro.writer(fh, schema, [v1_record(i) for i in range(200)], codec="deflate")
    return path


def read(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    with path.open("rb") as fh:
        reader = fastavro.reader(fh)
        return list(reader), reader.writer_schema  # type: ignore[return-value]


def test_keys_init_rotate_list(keyring_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert os.stat(keyring_path).st_mode & 0o777 == 0o600
    assert Keyring.load(keyring_path).names() == ("default", "quarantine")
    assert main(["keys", "init", "--out", str(keyring_path)]) == 1  # no silent overwrite
    assert main(["keys", "rotate", "--keyring", str(keyring_path), "--name", "default"]) == 0
    kr = Keyring.load(keyring_path)
    assert kr.current_version("default") == 2 and kr.current_version("quarantine") == 1
    capsys.readouterr()
    assert main(["keys", "list", "--keyring", str(keyring_path)]) == 0
    out = capsys.readouterr().out
    assert "default\tcurrent=v2\tversions=1,2" in out
    material = json.loads(keyring_path.read_text())["keys"]["default"]["versions"]["1"]
    assert material["material"] not in out


def test_rotate_refuses_an_unknown_name_unless_asked_to_create(
    keyring_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = keyring_path.read_bytes()
    assert main(["keys", "rotate", "--keyring", str(keyring_path), "--name", "defualt"]) != 0
    assert "has no key 'defualt'" in capsys.readouterr().err
    assert keyring_path.read_bytes() == before  # nothing written
    args = ["keys", "rotate", "--keyring", str(keyring_path), "--name", "billing", "--create"]
    assert main(args) == 0
    assert Keyring.load(keyring_path).versions("billing") == (1,)


def test_keyring_from_environment_and_refused_when_permissive(
    keyring_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMPROC_KEYRING", str(keyring_path))
    assert main(["keys", "rotate"]) == 0
    assert Keyring.load(keyring_path).current_version("quarantine") == 2
    keyring_path.chmod(0o644)
    capsys.readouterr()
    assert main(["keys", "list"]) == 1
    assert "too permissive" in capsys.readouterr().err


def test_schema_derive_prints_the_derived_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "derive", str(SCHEMAS / "claims.avsc")]) == 0
    derived = json.loads(capsys.readouterr().out)
    fastavro.parse_schema(derived)
    names = [f["name"] for f in derived["fields"]]
    assert "patient_id" in names and derived["streamproc"]["policy_fingerprint"]


def test_schema_derive_strict_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "derive", "--strict", str(SCHEMAS / "customer_profile.avsc")]) == 1
    err = capsys.readouterr().err
    assert "credit_score" in err and "strict" in err
    tags = tmp_path / "tags.yaml"
    tags.write_text("PII: {action: drop}\n")
    assert main(["schema", "derive", "--tags", str(tags), str(SCHEMAS / "claims.avsc")]) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sanitize_resolves_an_older_writer_schema(
    workers: str,
    keyring_path: Path,
    v1_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out.avro"
    rc = main(
        [
            "sanitize",
            "--schema",
            str(SCHEMAS / "customer_profile.avsc"),
            "--keyring",
            str(keyring_path),
            "--workers",
            workers,
            str(v1_file),
            str(out),
        ]
    )
    if workers == "2":  # the shipped policy declares k = 5: the file is one group
        assert rc == 1 and "--workers above 1 is refused" in capsys.readouterr().err
        return
    assert rc == 0
    summary = capsys.readouterr().out
    assert "sanitized 200 records (8 fields transformed, 3 dropped)" in summary
    records, schema = read(out)
    assert len(records) == 200
    assert schema["streamproc"]["policy_fingerprint"]
    assert {"full_name", "phone", "credit_score"}.isdisjoint(records[0])
    assert records[0]["segment"] is None  # added by resolution to the v2 reader schema
    assert records[0]["national_id"].startswith("enc:d:default:1:")
    assert b"Ann Lee" not in out.read_bytes()
    with out.open("rb") as fh:
        assert fastavro.reader(fh).codec == "deflate"  # the input's codec, kept


def test_sanitize_fails_closed_without_partial_output(
    keyring_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.avro"
    bad.write_bytes(b"not avro at all")
    out = tmp_path / "out.avro"
    rc = main(
        [
            "sanitize",
            "--schema",
            str(SCHEMAS / "customer_profile.avsc"),
            "--keyring",
            str(keyring_path),
            str(bad),
            str(out),
        ]
    )
    assert rc == 1 and not out.exists()
    assert not list(tmp_path.glob(".out.avro*"))


def test_rotation_then_reveal_both_versions(
    keyring_path: Path, v1_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = str(SCHEMAS / "customer_profile.avsc")
    before, after = tmp_path / "before.avro", tmp_path / "after.avro"
    assert (
        main(
            [
                "sanitize",
                "--schema",
                schema,
                "--keyring",
                str(keyring_path),
                str(v1_file),
                str(before),
            ]
        )
        == 0
    )
    assert main(["keys", "rotate", "--keyring", str(keyring_path)]) == 0
    assert (
        main(
            [
                "sanitize",
                "--schema",
                schema,
                "--keyring",
                str(keyring_path),
                str(v1_file),
                str(after),
            ]
        )
        == 0
    )
    (r1, *_), _ = read(before)
    (r2, *_), _ = read(after)
    assert r1["national_id"].startswith("enc:d:default:1:")
    assert r2["national_id"].startswith("enc:d:default:2:")
    assert r1["customer_id"].startswith("ps1:") and r2["customer_id"].startswith("ps2:")
    capsys.readouterr()
    assert (
        main(
            [
                "reveal",
                "--keyring",
                str(keyring_path),
                "--reason",
                "audit test",
                r1["national_id"],
                r2["national_id"],
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.split() == ['"AB000000C"', '"AB000000C"']
    assert (
        main(
            ["reveal", "--keyring", str(keyring_path), "--reason", "audit test", "--in", str(after)]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 200
    assert json.loads(lines[7])["national_id"] == "AB000007C"


def test_reveal_refuses_a_tampered_token(
    keyring_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "reveal",
            "--keyring",
            str(keyring_path),
            "--reason",
            "x",
            "enc:d:default:1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ]
    )
    assert rc == 1
    assert "does not verify" in capsys.readouterr().err
