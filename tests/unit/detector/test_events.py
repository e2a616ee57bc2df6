from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest

from streamproc.detector.events import AccessEvent, parse_event, read_events
from streamproc.errors import DetectorError, RecordError

SCHEMA = Path(__file__).parents[3] / "schemas" / "access_event.avsc"

ROW = {
    "event_id": "e1",
    "ts": 1_709_546_400_000,
    "principal": "analyst-7",
    "dataset": "sales.orders",
    "action": "READ",
    "rows": 12,
    "bytes": 3400,
    "source_ip": "10.1.2.3",
    "success": True,
    "label": 1,
    "incident_id": "x",
}


def test_json_row_parses_and_ignores_labels() -> None:
    ev = parse_event(ROW)
    assert ev == AccessEvent(
        "e1", 1_709_546_400_000, "analyst-7", "sales.orders", "READ", 12, 3400, "10.1.2.3", True
    )


def test_avro_round_trip_gives_the_same_event() -> None:
    schema = fastavro.parse_schema(json.loads(SCHEMA.read_text()))
    ev = parse_event(ROW)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, ev.to_avro_dict())
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, schema, schema)
    assert isinstance(decoded, dict)
    assert isinstance(decoded["ts"], datetime) and decoded["ts"].tzinfo == UTC
    assert parse_event(decoded) == ev


def test_schema_has_the_issue_fields() -> None:
    fields = [f["name"] for f in json.loads(SCHEMA.read_text())["fields"]]
    assert fields == [
        "event_id",
        "ts",
        "principal",
        "dataset",
        "action",
        "rows",
        "bytes",
        "source_ip",
        "success",
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "STEAL"),
        ("rows", -1),
        ("rows", "12"),
        ("success", "yes"),
        ("ts", "2024-01-01"),
        ("principal", 7),
    ],
)
def test_bad_field_is_named_but_value_is_not_echoed(field: str, value: object) -> None:
    with pytest.raises(RecordError) as ei:
        parse_event(ROW | {field: value})
    assert field in str(ei.value)
    assert ei.value.reason == "bad_access_event"
    if isinstance(value, str):
        assert value not in str(ei.value)


def test_missing_field_is_named() -> None:
    row = dict(ROW)
    del row["source_ip"]
    with pytest.raises(RecordError, match="source_ip"):
        parse_event(row)


def test_read_events_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text(json.dumps(ROW) + "\n\n" + "{not json\n")
    with pytest.raises(DetectorError, match=r"e\.jsonl:3"):
        read_events(p)
