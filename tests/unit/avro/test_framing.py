from __future__ import annotations

import pytest
from fastavro import parse_schema

from streamproc.avro.framing import (
    crc64_fingerprint,
    frame_confluent,
    frame_single_object,
    parse_frame,
)
from streamproc.errors import FramingError


def test_fingerprint_matches_avro_spec_vector() -> None:
    # SchemaNormalization.parsingFingerprint64 of "null" in the Avro reference implementation.
    assert crc64_fingerprint(parse_schema("null")) == 7195948357588979594


def test_single_object_header_roundtrip() -> None:
    fp = crc64_fingerprint(parse_schema({"type": "record", "name": "R", "fields": []}))
    payload = frame_single_object(fp, b"body")
    assert payload[:2] == b"\xc3\x01"
    frame = parse_frame(payload)
    assert (frame.kind, frame.schema_ref, payload[frame.body_offset :]) == (
        "single-object",
        fp,
        b"body",
    )


def test_confluent_header_roundtrip() -> None:
    frame = parse_frame(frame_confluent(4242, b"x"))
    assert (frame.kind, frame.schema_ref, frame.body_offset) == ("confluent", 4242, 5)


@pytest.mark.parametrize(
    ("payload", "allowed", "reason"),
    [
        (b"", "auto", "empty_payload"),
        (b"\x07abc", "auto", "bad_magic"),
        (b"\xc3\x01\x00", "auto", "truncated"),
        (b"\x00\x00", "auto", "truncated"),
        (frame_confluent(1, b""), "single-object", "bad_magic"),
        (frame_single_object(1, b""), "confluent", "bad_magic"),
    ],
)
def test_bad_frames_are_rejected_with_a_reason(payload: bytes, allowed: str, reason: str) -> None:
    with pytest.raises(FramingError) as err:
        parse_frame(payload, allowed)
    assert err.value.reason == reason
