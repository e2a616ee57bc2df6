"""``streamproc sanitize`` under record-level k: the guarantee holds over the output file.

A hypothesis property writes generated files (ladders on ints, dates, prefixes, categories;
skewed values; k, l and the sensitive values drawn) and checks the sanitized file with
``streamproc.risk.measure`` (an independent grouping): every quasi-identifier combination not
fully suppressed occurs >= k times with >= l distinct sensitive values, and no raw value of a
bucket/date/prefix ladder field is in the output bytes. The shipped customer policy reaches
k_min >= 5 on the demo's data, as ``streamproc risk`` reports.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.avro.schema import parse, read_schema_json
from streamproc.cli.main import main
from streamproc.keys import Keyring
from streamproc.policy import derive_schema
from streamproc.risk import measure, quasi_fields
from streamproc.testing.customers import customer_records

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
CUSTOMERS = SCHEMAS / "customer_profile.avsc"
CITIES = ["Aachen", "Bonn", "Cologne", "Dresden", "Essen"]


def ladder_schema(k: int, l_div: int) -> dict[str, Any]:
    privacy: dict[str, Any] = {"k": k, "max_suppressed": 0.05}
    if l_div > 1:
        privacy |= {"l": l_div, "sensitive": ["diag"]}
    return {
        "type": "record",
        "name": "Visit",
        "privacy": privacy,
        "fields": [
            {
                "name": "age",
                "type": "int",
                "privacy": {"class": "quasi", "action": "generalize", "bucket": [2, 10, 50]},
            },
            {
                "name": "born",
                "type": {"type": "int", "logicalType": "date"},
                "privacy": {"class": "quasi", "action": "generalize", "to": ["month", "year"]},
            },
            {
                "name": "zip",
                "type": "string",
                "privacy": {"class": "quasi", "action": "generalize", "prefix": [4, 2]},
            },
            {
                "name": "city",
                "type": ["null", "string"],
                "privacy": {
                    "class": "quasi",
                    "action": "generalize",
                    "levels": [
                        {"Aachen": "West", "Bonn": "West", "Cologne": "West", "Dresden": "East"}
                    ],
                },
            },
            {"name": "diag", "type": "string", "privacy": {"class": "sensitive", "action": "keep"}},
            {"name": "note", "type": "string", "privacy": {"action": "drop"}},
        ],
    }


@st.composite
def visits(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 60))
    ages = st.integers(0, 99) if draw(st.booleans()) else st.sampled_from([30, 31, 44])
    rows = []
    for i in range(n):
        rows.append(
            {
                "age": draw(ages),
                "born": dt.date(1960, 1, 1) + dt.timedelta(days=draw(st.integers(0, 9000))),
                # Raw zips are 6 characters and unique (a marker), so the scan can find them.
                "zip": f"{draw(st.sampled_from('1234'))}{draw(st.sampled_from('56'))}Q{i:03d}",
                "city": draw(st.sampled_from([*CITIES, None])),  # Essen is not in the map
                "diag": draw(st.sampled_from(["a", "b", "c"])),
                "note": f"NOTE-{i}",
            }
        )
    return rows


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    Keyring.generate().save(path)
    return path


def sanitize(
    schema_path: Path, records: list[dict[str, Any]], work: Path, keyring: Path
) -> tuple[int, Path]:
    raw, clean = work / "raw.avro", work / "clean.avro"
    with raw.open("wb") as fh:
        fastavro.writer(fh, parse(read_schema_json(schema_path)[0]), records)
    argv = ["sanitize", "--schema", str(schema_path), "--keyring", str(keyring)]
    return main([*argv, str(raw), str(clean)]), clean


def read(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as fh:
        return list(fastavro.reader(fh))  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(records=visits(), k=st.integers(2, 6), l_div=st.integers(1, 3))
def test_every_output_combination_has_k_records_and_l_values(
    tmp_path_factory: pytest.TempPathFactory,
    keyring: Path,
    records: list[dict[str, Any]],
    k: int,
    l_div: int,
) -> None:
    work = tmp_path_factory.mktemp("anon")
    schema_path = work / "visit.avsc"
    schema_path.write_text(json.dumps(ladder_schema(k, l_div)))
    rc, clean = sanitize(schema_path, records, work, keyring)
    assert rc == 0
    out = read(clean)
    assert len(out) == len(records)
    quasi = quasi_fields(derive_schema(schema_path).derived_schema_json)
    assert quasi == ["age", "born", "zip", "city"]
    report = measure(out, quasi, sensitive="diag", k=k)
    assert report.k_min is None or report.k_min >= k
    if l_div > 1:
        assert report.l_min is None or report.l_min >= l_div
    blob = clean.read_bytes()
    for raw, got in zip(records, out, strict=True):
        assert raw["zip"].encode() not in blob and b"NOTE-" not in blob
        assert got["age"] is None or got["age"]["lo"] <= raw["age"] < got["age"]["hi"]
        assert got["born"] is None or got["born"]["lo"] <= raw["born"] < got["born"]["hi"]
        assert got["zip"] is None or (len(got["zip"]) <= 4 and raw["zip"].startswith(got["zip"]))
        assert got["diag"] == raw["diag"]
    assert not list(work.glob(".clean.avro*"))  # no staging file left behind


@pytest.fixture(scope="module")
def customers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo's data through the shipped k = 5 policy, with lineage."""
    work = tmp_path_factory.mktemp("customers")
    raw, clean, keys = work / "raw.avro", work / "clean.avro", work / "keys.json"
    lineage = work / "lineage.jsonl"
    records = [r for r, _ in customer_records(5000, seed=42, v1_every=7)]
    with raw.open("wb") as fh:
        fastavro.writer(fh, parse(read_schema_json(CUSTOMERS)[0]), records)
    assert main(["keys", "init", "--out", str(keys)]) == 0
    argv = ["sanitize", "--schema", str(CUSTOMERS), "--keyring", str(keys), "--lineage"]
    return {"argv": [*argv, str(lineage)], "raw": raw, "clean": clean, "lineage": lineage}


def test_shipped_customer_policy_reaches_k5_and_says_so(
    customers: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*customers["argv"], str(customers["raw"]), str(customers["clean"])]) == 0
    summary = capsys.readouterr().out
    assert "k-anonymity: k=5 l=1 on birth_date, postcode, city, gender: k_min=" in summary
    assert "information loss (NCP" in summary and "birth_date " in summary
    assert main(["risk", "--schema", str(CUSTOMERS), str(customers["clean"]), "--json"]) in (0,)
    risk = json.loads(capsys.readouterr().out)
    assert risk["records"] == 5000 and risk["k_min"] >= 5
    assert risk["quasi_identifiers"] == ["birth_date", "postcode", "city", "gender"]
    assert f"k_min={risk['k_min']}" in summary
    raw = {r["postcode"] for r, _ in customer_records(5000, seed=42, v1_every=7)}
    out = {r["postcode"] for r in read(customers["clean"])}
    assert not raw & out  # a 5-character postcode never survives whole


def test_lineage_facet_carries_k_and_the_measured_loss(customers: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")  # dev extra
    assert main([*customers["argv"], str(customers["raw"]), str(customers["clean"])]) == 0
    events = [json.loads(line) for line in customers["lineage"].read_text().splitlines()]
    facet = events[-1]["outputs"][0]["facets"]["streamproc_policy"]
    facet_schema = json.loads((SCHEMAS.parent / "docs" / "lineage-facet.json").read_text())
    jsonschema.validate(facet, facet_schema)
    anon = facet["anonymity"]
    assert (anon["k"], anon["l"]) == (5, 1)
    measured = anon["measured"]
    assert measured["records"] == 5000 and measured["kMin"] >= 5
    assert set(measured["ncpByField"]) == {"birth_date", "postcode", "city", "gender"}
    fields = measured["ncpByField"].values()
    assert measured["ncp"] == pytest.approx(sum(fields) / len(fields))
    assert events[-1]["eventType"] == "COMPLETE"
    assert events[-1]["outputs"][0]["namespace"] == "file"


def test_more_than_one_worker_is_refused(
    customers: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.avro"
    assert main([*customers["argv"], "--workers", "2", str(customers["raw"]), str(out)]) == 1
    assert "--workers above 1 is refused" in capsys.readouterr().err
    assert not out.exists()


def test_schema_derive_shows_the_range_records(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "derive", str(CUSTOMERS)]) == 0
    derived = json.loads(capsys.readouterr().out)
    by_name = {f["name"]: f for f in derived["fields"]}
    null, rng = by_name["birth_date"]["type"]
    assert null == "null" and [f["name"] for f in rng["fields"]] == ["lo", "hi"]
    assert by_name["postcode"]["type"] == ["null", "string"]
