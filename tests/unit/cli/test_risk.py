"""``streamproc risk`` on container files: the JSON contract, the table, exit codes, errors,
and no raw value in any output (canary records)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streamproc.avro.schema import parse, read_schema_json
from streamproc.cli.main import main
from streamproc.policy import derive_schema
from streamproc.risk import measure
from streamproc.testing.customers import customer_records, policy_without_k

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
QUASI = ["birth_date", "postcode", "city", "gender"]
CONTRACT = ("records", "quasi_identifiers", "classes", "k_min", "unique_share", "below_k_share")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A raw canary file of 400 customers, and its sanitized twin.

    Sanitized by the customer policy before record-level k: these tests need a sanitized file
    that is still risky (test_sanitize_anonymity.py checks the shipped k = 5 policy).
    """
    work = tmp_path_factory.mktemp("risk")
    schema = work / "customer_profile.avsc"
    schema.write_text(
        json.dumps(policy_without_k(read_schema_json(SCHEMAS / "customer_profile.avsc")[0]))
    )
    raw, clean, keys = work / "raw.avro", work / "clean.avro", work / "keys.json"
    records = [r for r, _ in customer_records(400, seed=11, canary=True)]
    with raw.open("wb") as fh:
        fastavro.writer(fh, parse(read_schema_json(schema)[0]), records)
    assert main(["keys", "init", "--out", str(keys)]) == 0
    argv = ["sanitize", "--schema", str(schema), "--keyring", str(keys), "--workers", "1"]
    assert main([*argv, str(raw), str(clean)]) == 0
    derived = work / "derived.avsc"
    derived.write_text(json.dumps(derive_schema(schema).derived_schema_json))
    return {"raw": raw, "clean": clean, "derived": derived, "schema": schema}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["risk", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def read(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as fh:
        return list(fastavro.reader(fh))  # type: ignore[arg-type]


@pytest.mark.parametrize("which", ["raw", "clean"])
def test_json_contract_matches_measure(
    which: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = run(
        capsys, "--schema", str(files["schema"]), str(files[which]), "--json", "--k", "3"
    )
    doc = json.loads(out)
    assert rc == 0 and all(key in doc for key in CONTRACT)
    assert doc["quasi_identifiers"] == QUASI and doc["k"] == 3
    expected = measure(read(files[which]), QUASI, k=3).to_json()
    assert {k: doc[k] for k in expected} == expected


def test_sanitized_file_is_less_unique(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(run(capsys, "--schema", str(files["schema"]), str(files["raw"]), "--json")[1])
    clean = json.loads(
        run(capsys, "--schema", str(files["schema"]), str(files["clean"]), "--json")[1]
    )
    assert raw["unique_share"] == 1.0  # full birth dates and postcodes: everyone is unique
    assert clean["classes"] < raw["classes"] and clean["unique_share"] < raw["unique_share"]


def test_derived_schema_finds_the_same_quasi_identifiers(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    by_source = run(capsys, "--schema", str(files["schema"]), str(files["clean"]), "--json")[1]
    by_derived = run(capsys, "--schema", str(files["derived"]), str(files["clean"]), "--json")[1]
    assert json.loads(by_derived) == json.loads(by_source)


def test_sensitive_adds_l_diversity(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("--schema", str(files["schema"]), str(files["clean"]), "--quasi", "gender", "--json")
    doc = json.loads(run(capsys, *argv, "--sensitive", "city")[1])
    assert doc["quasi_identifiers"] == ["gender"] and doc["l_min"] == 6  # every city per gender
    assert doc["k_min"] > 5


def test_no_raw_value_in_any_output(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # The raw file's postcodes, emails and names are canaries; quasi and sensitive on them.
    argv = ["--schema", str(files["schema"]), str(files["raw"]), "--sensitive", "email"]
    for extra in ([], ["--json"], ["--quasi", "postcode,full_name,gender"]):
        rc, out, err = run(capsys, *argv, *extra)
        assert rc == 0 and "CANARY" not in out + err
        assert "Berlin" not in out + err and "FEMALE" not in out + err


def test_table_lists_the_riskiest_first(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = run(capsys, "--schema", str(files["schema"]), str(files["clean"]))
    assert rc == 0 and "records in classes smaller than 5" in out
    sizes = out.split("class sizes, smallest first:")[1].split("\n\n")[0].splitlines()[2:]
    firsts = [line.split()[0] for line in sizes]
    assert firsts[0] == "1" and firsts == sorted(
        firsts, key=lambda s: int(s.split("-")[0].rstrip("+"))
    )


@pytest.mark.parametrize(
    ("extra", "rc"),
    [
        (["--fail-below-k"], 1),
        (["--fail-below-k", "--quasi", "gender"], 0),
        (["--fail-below-k", "--quasi", "gender", "--k", "1000"], 1),
        ([], 0),
    ],
)
def test_fail_below_k(
    extra: list[str], rc: int, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--schema", str(files["schema"]), str(files["clean"]), *extra)[0] == rc


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--quasi", "birth_date,nope"], "--quasi: field nope is not in schema"),
        (["--quasi", "full_name"], "field full_name is not in schema"),  # dropped by the policy
        (["--sensitive", "nope"], "--sensitive: field nope is not in schema"),
        (["--topic", "t"], "either IN.avro or --topic"),
    ],
)
def test_errors_name_fields(
    extra: list[str], message: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run(capsys, "--schema", str(files["schema"]), str(files["clean"]), *extra)
    assert rc == 1 and message in err and "CANARY" not in out + err


def test_not_a_container_file(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.avro"
    bad.write_bytes(b"CANARY-not-avro")
    rc, out, err = run(capsys, "--schema", str(files["schema"]), str(bad))
    assert rc == 1 and "not an Avro object container file" in err and "CANARY" not in out + err


def test_dropped_quasi_identifiers_are_listed_as_absent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = policy_without_k(read_schema_json(SCHEMAS / "customer_profile.avsc")[0])
    for f in doc["fields"]:
        if f["name"] == "city":
            f["privacy"] = {"class": "quasi", "action": "drop"}
    schema = tmp_path / "s.avsc"
    schema.write_text(json.dumps(doc))
    keys, raw, clean = tmp_path / "k.json", tmp_path / "raw.avro", tmp_path / "clean.avro"
    with raw.open("wb") as fh:
        fastavro.writer(fh, parse(doc), [r for r, _ in customer_records(50)])
    assert main(["keys", "init", "--out", str(keys)]) == 0
    argv = ["sanitize", "--schema", str(schema), "--keyring", str(keys), "--workers", "1"]
    assert main([*argv, str(raw), str(clean)]) == 0
    out = json.loads(run(capsys, "--schema", str(schema), str(clean), "--json")[1])
    assert out["absent_quasi_identifiers"] == ["city"]
    assert out["quasi_identifiers"] == ["birth_date", "postcode", "gender"]
