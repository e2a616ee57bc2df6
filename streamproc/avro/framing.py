"""Wire framings of Avro values on Kafka.

- Confluent wire format: magic byte ``0x00`` + 4-byte big-endian schema id + Avro binary.
- Avro single-object encoding: ``0xC3 0x01`` + 8-byte little-endian CRC-64-AVRO fingerprint
  of the writer schema's parsing canonical form + Avro binary (registry-free).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Literal

from fastavro.schema import fingerprint, to_parsing_canonical_form

from streamproc.errors import FramingError

CONFLUENT_MAGIC = 0x00
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_CONFLUENT_HEADER = struct.Struct(">bI")
_FINGERPRINT = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class Frame:
    """Where a payload says its writer schema is, and where the Avro body starts."""

    kind: Literal["confluent", "single-object"]
    schema_ref: int  # registry id, or the 64-bit fingerprint
    body_offset: int


def crc64_fingerprint(parsed_schema: Any) -> int:
    """CRC-64-AVRO (Rabin) fingerprint of a schema's parsing canonical form."""
    canonical = to_parsing_canonical_form(parsed_schema)
    # fastavro renders the fingerprint as its little-endian bytes, i.e. the header bytes.
    return int.from_bytes(bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")), "little")


def parse_frame(payload: bytes, allowed: str = "auto") -> Frame:
    """Read the framing header of ``payload``; ``allowed`` is confluent, single-object or auto."""
    if payload is None or len(payload) == 0:
        raise FramingError("empty payload", reason="empty_payload")
    if payload[:2] == SINGLE_OBJECT_MAGIC and allowed in ("auto", "single-object"):
        if len(payload) < 10:
            raise FramingError("truncated single-object header", reason="truncated")
        (fp,) = _FINGERPRINT.unpack_from(payload, 2)
        return Frame("single-object", fp, 10)
    if payload[0] == CONFLUENT_MAGIC and allowed in ("auto", "confluent"):
        if len(payload) < 5:
            raise FramingError("truncated Confluent header", reason="truncated")
        _, schema_id = _CONFLUENT_HEADER.unpack_from(payload, 0)
        return Frame("confluent", schema_id, 5)
    raise FramingError(f"payload does not start with a {allowed} framing magic", reason="bad_magic")


def frame_single_object(fingerprint_value: int, body: bytes) -> bytes:
    return SINGLE_OBJECT_MAGIC + _FINGERPRINT.pack(fingerprint_value) + body


def frame_confluent(schema_id: int, body: bytes) -> bytes:
    return _CONFLUENT_HEADER.pack(CONFLUENT_MAGIC, schema_id) + body
