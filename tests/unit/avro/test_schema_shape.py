"""Schema helpers of the engine: decoding shape comparison, fingerprints."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro

from streamproc.avro.framing import crc64_fingerprint
from streamproc.avro.schema import same_decoding

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def load(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def test_same_decoding_ignores_docs_and_annotations_but_not_types() -> None:
    doc = load("customer_profile.avsc")
    plain = json.loads(json.dumps(doc))
    for f in plain["fields"]:
        f.pop("privacy", None)
        f.pop("doc", None)
    assert same_decoding(fastavro.parse_schema(plain), fastavro.parse_schema(doc))
    assert not same_decoding(
        fastavro.parse_schema(load("customer_profile.v1.avsc")), fastavro.parse_schema(doc)
    )
    plain["fields"][12]["type"] = "long"  # timestamp-millis -> long decodes differently
    assert not same_decoding(fastavro.parse_schema(plain), fastavro.parse_schema(doc))


def test_crc64_fingerprint_ignores_annotations() -> None:
    doc = load("claims.avsc")
    bare = json.loads(json.dumps(doc).replace('"privacy"', '"x_privacy"'))

    def fp(d: dict) -> int:
        return crc64_fingerprint(fastavro.parse_schema(d))

    assert fp(doc) == fp(bare)
    assert fp(doc) != fp(load("customer_profile.avsc"))
