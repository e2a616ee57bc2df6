"""Values that decode but cannot be written again: named by field path, never by value."""

from __future__ import annotations

import decimal
import io

import pytest
from fastavro import parse_schema, schemaless_writer

from streamproc.avro.codec import Encoder, decimal_overflow_path
from streamproc.errors import EncodeError

DEC = {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}
SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "Claim",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "total", "type": DEC},
            {
                "name": "lines",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Line",
                        "fields": [{"name": "amount", "type": ["null", DEC]}],
                    },
                },
            },
            {"name": "by_code", "type": {"type": "map", "values": DEC}},
            {"name": "last", "type": ["null", "Line"]},
        ],
    }
)


def record(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "c1",
        "total": decimal.Decimal("1234.56"),
        "lines": [{"amount": decimal.Decimal("1.00")}, {"amount": None}],
        "by_code": {"A": decimal.Decimal("9999.99")},
        "last": {"amount": decimal.Decimal("0.01")},
    }
    base.update(over)
    return base


def test_a_record_within_precision_encodes_and_has_no_path() -> None:
    assert decimal_overflow_path(SCHEMA, record()) is None
    assert Encoder(SCHEMA).encode(record())[:2] == b"\xc3\x01"


@pytest.mark.parametrize(
    ("over", "path"),
    [
        ({"total": decimal.Decimal("98765432.10")}, "total"),
        ({"total": decimal.Decimal("1.234")}, "total"),  # more places than the scale
        ({"lines": [{"amount": None}, {"amount": decimal.Decimal("-1234567")}]}, "lines[].amount"),
        ({"by_code": {"B": decimal.Decimal("123456789")}}, "by_code{}"),
        ({"last": {"amount": decimal.Decimal("7777777.77")}}, "last.amount"),
    ],
)
def test_decimal_overflow_is_a_dead_letter_naming_the_field(
    over: dict[str, object], path: str
) -> None:
    rec = record(**over)
    with pytest.raises(ValueError):  # fastavro itself refuses to write it
        schemaless_writer(io.BytesIO(), SCHEMA, rec)
    assert decimal_overflow_path(SCHEMA, rec) == path
    with pytest.raises(EncodeError) as err:
        Encoder(SCHEMA).encode(rec)
    assert err.value.reason == "decimal_overflow"
    assert f"field {path}:" in str(err.value)
    for v in ("98765432", "1.234", "1234567", "123456789", "7777777"):
        assert v not in str(err.value)


def test_other_encode_failures_keep_the_generic_reason() -> None:
    with pytest.raises(EncodeError) as err:
        Encoder(SCHEMA).encode(record(id=12345))
    assert err.value.reason == "encode_error"
    assert "12345" not in str(err.value)
