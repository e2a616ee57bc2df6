"""The generated bounds scan agrees with the interpreting one it replaced, on every input:
the same verdict, and for a refusal the same exception type, reason and message."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.avro.bounds import Limits, compile_bounds
from streamproc.avro.schema import read_schema_json
from streamproc.testing import claims as claim_samples
from streamproc.testing.customers import zigzag
from tests.unit.avro.reference_bounds import reference_bounds
from tests.unit.avro.test_bounds import NESTED

ROOT = Path(__file__).resolve().parents[3]
CLAIMS = parse_schema(read_schema_json(ROOT / "schemas" / "claims.avsc")[0])
LIST = parse_schema(  # recursive, through a union
    {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "v", "type": "long"},
            {"name": "tags", "type": {"type": "map", "values": "null"}},
            {"name": "next", "type": ["null", "Node"]},
        ],
    }
)
EMPTY = parse_schema(  # items of zero bytes, a fixed and an enum by name
    {
        "type": "record",
        "name": "Z",
        "fields": [
            {"name": "e", "type": {"type": "record", "name": "E0", "fields": []}},
            {"name": "es", "type": {"type": "array", "items": "E0"}},
            {"name": "f", "type": {"type": "fixed", "name": "F2", "size": 2}},
            {"name": "fs", "type": {"type": "array", "items": ["null", "F2", "boolean"]}},
            {"name": "k", "type": {"type": "enum", "name": "K", "symbols": ["A", "B", "C"]}},
            {"name": "ks", "type": {"type": "map", "values": "K"}},
        ],
    }
)


def _deep(levels: int) -> Any:
    """Arrays nested ``levels`` deep under unions: past the generated code's block limit."""
    s: Any = {"type": "array", "items": ["null", "string", "double"]}
    for _ in range(levels):
        s = {"type": "array", "items": ["null", s]}
    return parse_schema({"type": "record", "name": "D", "fields": [{"name": "a", "type": s}]})


DEEP = _deep(12)
SCHEMAS = {"nested": NESTED, "claims": CLAIMS, "list": LIST, "empty": EMPTY, "deep": DEEP}
LIMITS = (Limits(), Limits(max_string_bytes=6, max_items=4))


def verdict(check: Any, body: bytes) -> tuple[Any, ...]:
    try:
        check(body)
    except Exception as exc:
        return (type(exc), getattr(exc, "reason", None), str(exc))
    return ("ok",)


def encode(schema: Any, record: Any) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, record)
    return buf.getvalue()


def samples() -> dict[str, list[bytes]]:
    """Valid bodies of every schema, the seeds the mutations start from."""
    rng = random.Random(5)
    node: Any = None
    for v in range(4):
        node = {"v": v * 1000, "tags": {"t": None} if v % 2 else {}, "next": node}
    deep: Any = ["x", None, 1.5]
    for _ in range(12):
        deep = [deep, None]
    return {
        "nested": [
            encode(
                NESTED,
                {
                    "id": "abcdefgh",
                    "tags": ["x", "yy"],
                    "attrs": {"k": 1, "j": None},
                    "marks": [None, None],
                    "kids": [{"n": 3, "e": "B", "f": b"abc", "d": 2.5}],
                },
            )
        ],
        "claims": [encode(CLAIMS, claim_samples.claim_record(i, rng)) for i in range(6)],
        "list": [encode(LIST, node)],
        "empty": [
            encode(
                EMPTY,
                {
                    "e": {},
                    "es": [{}, {}],
                    "f": b"ab",
                    "fs": [None, b"cd", True],
                    "k": "C",
                    "ks": {"a": "A", "b": "B"},
                },
            )
        ],
        "deep": [encode(DEEP, {"a": deep})],
    }


SAMPLES = samples()


@pytest.mark.parametrize("name", SCHEMAS)
@pytest.mark.parametrize("limits", LIMITS, ids=["default", "tight"])
def test_every_truncation_and_extension_gets_the_same_verdict(name: str, limits: Limits) -> None:
    new, old = compile_bounds(SCHEMAS[name], limits), reference_bounds(SCHEMAS[name], limits)
    assert new is not None and old is not None
    for body in SAMPLES[name]:
        for cut in range(len(body) + 1):
            assert verdict(new, body[:cut]) == verdict(old, body[:cut])
        for tail in (b"\x00", b"\x02", b"\x80", b"\xff" * 11):
            assert verdict(new, body + tail) == verdict(old, body + tail)


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_single_byte_change_gets_the_same_verdict(name: str) -> None:
    new, old = compile_bounds(SCHEMAS[name], Limits()), reference_bounds(SCHEMAS[name], Limits())
    for body in SAMPLES[name][:2]:
        for i in range(len(body)):
            for b in (0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF, body[i] ^ 0x01):
                changed = body[:i] + bytes([b]) + body[i + 1 :]
                assert verdict(new, changed) == verdict(old, changed)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(SCHEMAS)),
    st.sampled_from(LIMITS),
    st.integers(0, 10**6),
    st.lists(st.tuples(st.integers(0, 400), st.binary(max_size=12)), max_size=4),
)
def test_random_splices_get_the_same_verdict(
    name: str, limits: Limits, pick: int, splices: list[tuple[int, bytes]]
) -> None:
    body = bytearray(SAMPLES[name][pick % len(SAMPLES[name])])
    for at, data in splices:
        at %= len(body) + 1
        body[at : at + len(data)] = data
    new, old = compile_bounds(SCHEMAS[name], limits), reference_bounds(SCHEMAS[name], limits)
    assert verdict(new, bytes(body)) == verdict(old, bytes(body))


@pytest.mark.parametrize(
    "body",
    [
        zigzag(10**9) + b"\x00",  # a billion empty records
        zigzag(-5000) + zigzag(10**12) + zigzag(0),  # negative count over the limit
        zigzag(5) + zigzag(-1),  # negative block byte size
        b"\xff" * 10 + b"\x01",  # an 11-byte varint
    ],
)
def test_hostile_headers_get_the_same_refusal(body: bytes) -> None:
    schema = parse_schema(
        {
            "type": "record",
            "name": "H",
            "fields": [
                {"name": "e", "type": {"type": "record", "name": "E0", "fields": []}},
                {"name": "a", "type": {"type": "array", "items": "E0"}},
            ],
        }
    )
    limits = Limits(max_items=1000)
    new, old = compile_bounds(schema, limits), reference_bounds(schema, limits)
    got = verdict(new, body)
    assert got == verdict(old, body)
    assert got != ("ok",)
