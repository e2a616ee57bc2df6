"""The peer of ``bench_peer.py``: a Quix Streams app doing streamproc's sanitize work in plain
Python, as a Quix user would write it (decode with fastavro, keyed HMAC pseudonyms, masks,
generalization, date shifts, AES encryption, Laplace/Gaussian noise, encode).

Runs in its own venv (``.cache/venv-quix``: quixstreams pins its own confluent-kafka), so it
imports nothing from streamproc. The output schemas are streamproc's derived schemas, written
to files by the benchmark, so both sides produce the same records.

Usage (the benchmark runs it): python peer_quix_app.py --kind claims --source T --sink T
    --group G --source-schema S.avsc --sink-schema D.avsc --key-hex K [--count N]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import io
import json
import math
import os
import random
import sys
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from quixstreams import Application

MAGIC = b"\xc3\x01"


def crc64(parsed: Any) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


class Transforms:
    """The privacy operations, keyed once at start-up."""

    def __init__(self, key: bytes) -> None:
        self.pseudo = hmac.new(key, b"pseudonymize", hashlib.sha256).digest()
        self.shift = hmac.new(key, b"date_shift", hashlib.sha256).digest()
        self.siv = AESSIV(hmac.new(key, b"siv", hashlib.sha512).digest())
        self.gcm = AESGCM(hmac.new(key, b"gcm", hashlib.sha256).digest())
        self.rng = random.Random(int.from_bytes(os.urandom(8), "big"))

    def pseudonym(self, domain: str, value: str | None) -> str | None:
        if value is None:
            return None
        mac = hmac.digest(self.pseudo, domain.encode() + b"\x00" + value.encode(), "sha256")
        return "ps1:" + base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")

    def mask(self, value: str, keep_first: int = 0, keep_last: int = 0) -> str:
        out = []
        n = len(value)
        for i, c in enumerate(value):
            keep = i < keep_first or i >= n - keep_last or not c.isalnum()
            out.append(c if keep else "*")
        return "".join(out)

    def prefix(self, value: str, n: int, char: str | None = None) -> str:
        return value[:n] + (char * (len(value) - n) if char else "")

    def shift_days(self, subject: str) -> int:
        mac = hmac.digest(self.shift, subject.encode(), "sha256")
        return int.from_bytes(mac[:4], "big") % 61 - 30

    def encrypt_det(self, value: str) -> str:
        return "enc:d:" + base64.urlsafe_b64encode(self.siv.encrypt(value.encode(), None)).decode()

    def encrypt_rand(self, value: str) -> str:
        nonce = os.urandom(12)
        blob = nonce + self.gcm.encrypt(nonce, value.encode(), None)
        return "enc:r:" + base64.urlsafe_b64encode(blob).decode()

    def laplace(self, value: float, scale: float, lo: float, hi: float) -> float:
        u = self.rng.random() - 0.5
        noisy = value - scale * math.copysign(1.0, u) * math.log(1 - 2 * abs(u))
        return min(hi, max(lo, noisy))

    def gaussian(self, value: float, sigma: float, lo: float, hi: float) -> float:
        return min(hi, max(lo, value + self.rng.gauss(0.0, sigma)))

    @staticmethod
    def bucket(value: Decimal, size: int) -> Decimal:
        return (value // size * size).quantize(Decimal("0.01"))


def customer(t: Transforms, r: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer_id": t.pseudonym("customer", r["customer_id"]),
        "email": t.mask(r["email"], keep_first=1),
        "national_id": t.encrypt_det(r["national_id"]),
        "birth_date": r["birth_date"].replace(month=1, day=1),
        "postcode": t.prefix(r["postcode"], 3),
        "city": r["city"],
        "country": r["country"],
        "gender": r["gender"],
        "annual_income": t.laplace(r["annual_income"], 1000.0, 0.0, 1_000_000.0),
        "signup_ts": r["signup_ts"],
        "marketing_opt_in": r.get("marketing_opt_in", False),
        "segment": r.get("segment"),
    }


def _address(t: Transforms, a: dict[str, Any] | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"city": a["city"], "postcode": t.prefix(a["postcode"], 3, "*")}


def claim(t: Transforms, r: dict[str, Any]) -> dict[str, Any]:
    days = dt.timedelta(days=t.shift_days(r["patient_id"]))
    p = r["patient"]
    risk = r.get("risk_score")
    return {
        "claim_id": r["claim_id"],
        "patient_id": t.pseudonym("customer", r["patient_id"]),
        "member_email": t.pseudonym("member-contact", r["member_email"]),
        "patient": {
            "date_of_birth": p["date_of_birth"].replace(month=1, day=1),
            "address": _address(t, p["address"]),
            "phone_numbers": [t.mask(n, keep_last=2) for n in p["phone_numbers"]],
        },
        "provider": {
            "npi": t.pseudonym("provider", r["provider"]["npi"]),
            "name": r["provider"]["name"],
            "specialty": r["provider"]["specialty"],
        },
        "billing_address": _address(t, r["billing_address"]),
        "submitted_at": r["submitted_at"] + days,
        "lines": [
            {
                "line_no": line["line_no"],
                "procedure_code": line["procedure_code"],
                "diagnosis_codes": [c[:3] for c in line["diagnosis_codes"]],
                "service_date": line["service_date"] + days,
                "amount": t.bucket(line["amount"], 10),
                "notes": None,
            }
            for line in r["lines"]
        ],
        "total_amount": t.bucket(r["total_amount"], 100),
        "status": r["status"],
        "adjuster_notes": {k: t.encrypt_rand(v) for k, v in r["adjuster_notes"].items()},
        "risk_score": None if risk is None else t.gaussian(risk, 4.8, 0.0, 1.0),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    for name in ("kind", "source", "sink", "group", "source-schema", "sink-schema", "key-hex"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--broker", default="127.0.0.1:9092")
    ap.add_argument("--count", type=int, default=0, help="stop after N outputs (0 = run)")
    ap.add_argument("--guarantee", default="at-least-once")
    args = ap.parse_args()

    with open(args.source_schema) as fh:
        src = parse_schema(json.load(fh))
    with open(args.sink_schema) as fh:
        dst = parse_schema(json.load(fh))
    header = MAGIC + crc64(dst)
    transform = {"customers": customer, "claims": claim}[args.kind]
    t = Transforms(bytes.fromhex(args.key_hex))

    def sanitize(value: bytes) -> bytes:
        if value[:2] != MAGIC:
            raise ValueError("not a single-object Avro record")
        record = schemaless_reader(io.BytesIO(value[10:]), src, None)
        out = io.BytesIO()
        out.write(header)
        schemaless_writer(out, dst, transform(t, record))
        return out.getvalue()

    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee=args.guarantee,
        loglevel="WARNING",
    )
    source = app.topic(args.source, key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(args.sink, key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(source)
    sdf = sdf.apply(sanitize)
    sdf.to_topic(sink)
    print("peer-quix ready", flush=True)
    app.run(count=args.count, timeout=120.0 if args.count else 0.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
