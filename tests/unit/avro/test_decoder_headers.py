"""The decoder remembers resolved framing headers without changing any verdict."""

from __future__ import annotations

import pytest
from fastavro import parse_schema

from streamproc.avro.codec import Decoder, WriterSchemas
from streamproc.avro.framing import crc64_fingerprint, frame_confluent, frame_single_object
from streamproc.errors import DecodeError
from streamproc.testing.customers import encode

SCHEMA = parse_schema({"type": "record", "name": "R", "fields": [{"name": "s", "type": "string"}]})
BODY = encode(SCHEMA, {"s": "x"})
FP = crc64_fingerprint(SCHEMA)


@pytest.mark.parametrize("framing", ["auto", "single-object", "confluent"])
def test_a_remembered_header_decides_nothing_parse_frame_would_not(framing: str) -> None:
    decoder = Decoder(WriterSchemas(SCHEMA), framing)
    good = frame_single_object(FP, BODY)
    cases = [
        good,
        good,  # now from the remembered header
        good[:10],  # the header alone: no body
        good[:9],  # a truncated header
        frame_single_object(FP ^ 1, BODY),  # unknown fingerprint: never remembered
        frame_single_object(FP ^ 1, BODY),
        frame_confluent(7, BODY),  # no registry
        b"",
        good + b"\x00",
    ]
    verdicts = []
    for payload in cases:
        try:
            record, ws = decoder.decode(payload)
            verdicts.append(("ok", record["s"], ws.fingerprint))
        except DecodeError as exc:
            verdicts.append(("refused", exc.reason))
    fresh = []
    for payload in cases:  # a decoder per payload: nothing remembered
        try:
            record, ws = Decoder(WriterSchemas(SCHEMA), framing).decode(payload)
            fresh.append(("ok", record["s"], ws.fingerprint))
        except DecodeError as exc:
            fresh.append(("refused", exc.reason))
    assert verdicts == fresh
    assert set(decoder._known) <= {good[:10]}
