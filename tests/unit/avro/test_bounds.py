from __future__ import annotations

import io
import time

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.avro.bounds import Limits, compile_bounds
from streamproc.errors import DecodeError, OversizeError
from streamproc.testing.customers import zigzag

NESTED = parse_schema(
    {
        "type": "record",
        "name": "Outer",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": {"type": "map", "values": ["null", "long"]}},
            {"name": "marks", "type": {"type": "array", "items": "null"}},
            {
                "name": "kids",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Kid",
                        "fields": [
                            {"name": "n", "type": "int"},
                            {
                                "name": "e",
                                "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]},
                            },
                            {"name": "f", "type": {"type": "fixed", "name": "F", "size": 3}},
                            {"name": "d", "type": "double"},
                        ],
                    },
                },
            },
        ],
    }
)


def encode(schema: object, record: dict) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, record)
    return buf.getvalue()


def test_schema_without_collections_needs_no_scan() -> None:
    flat = parse_schema(
        {"type": "record", "name": "F", "fields": [{"name": "s", "type": "string"}]}
    )
    assert compile_bounds(flat, Limits()) is None


def test_billion_null_items_rejected_fast_without_allocating() -> None:
    schema = parse_schema(
        {
            "type": "record",
            "name": "T",
            "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}],
        }
    )
    check = compile_bounds(schema, Limits(max_items=100_000))
    assert check is not None
    payload = zigzag(10**9) + b"\x00"
    assert len(payload) <= 6
    t0 = time.monotonic()
    with pytest.raises(OversizeError) as err:
        check(payload)
    assert time.monotonic() - t0 < 0.5
    assert err.value.reason == "oversize_items"


def test_negative_block_counts_are_counted_too() -> None:
    schema = parse_schema({"type": "array", "items": "null"})
    check = compile_bounds(schema, Limits(max_items=10))
    assert check is not None
    with pytest.raises(OversizeError):
        check(zigzag(-11) + zigzag(0) + b"\x00")
    check(zigzag(-3) + zigzag(0) + b"\x00")


def test_long_strings_rejected_before_decoding() -> None:
    check = compile_bounds(NESTED, Limits(max_string_bytes=8))
    assert check is not None
    ok = encode(NESTED, {"id": "short", "tags": [], "attrs": {}, "marks": [], "kids": []})
    check(ok)
    too_long = encode(NESTED, {"id": "x" * 9, "tags": [], "attrs": {}, "marks": [], "kids": []})
    with pytest.raises(OversizeError):
        check(too_long)


def test_truncations_and_trailing_bytes_are_decode_errors() -> None:
    check = compile_bounds(NESTED, Limits())
    assert check is not None
    body = encode(
        NESTED,
        {
            "id": "a",
            "tags": ["x", "y"],
            "attrs": {"k": 1},
            "marks": [None],
            "kids": [{"n": 1, "e": "B", "f": b"abc", "d": 1.5}],
        },
    )
    check(body)
    for cut in range(len(body)):
        with pytest.raises(DecodeError):
            check(body[:cut])
    with pytest.raises(DecodeError):
        check(body + b"\x00")


@settings(max_examples=150, deadline=None)
@given(
    st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=5),
    st.dictionaries(
        st.text(max_size=4), st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=4
    ),
    st.lists(st.none(), max_size=5),
    st.lists(
        st.tuples(
            st.integers(-(2**31), 2**31 - 1),
            st.sampled_from(["A", "B"]),
            st.binary(min_size=3, max_size=3),
            st.floats(allow_nan=False),
        ),
        max_size=3,
    ),
)
def test_every_valid_record_passes_the_scan(id_, tags, attrs, marks, kids) -> None:
    record = {
        "id": id_,
        "tags": tags,
        "attrs": attrs,
        "marks": marks,
        "kids": [{"n": n, "e": e, "f": f, "d": d} for n, e, f, d in kids],
    }
    check = compile_bounds(NESTED, Limits())
    assert check is not None
    check(encode(NESTED, record))
