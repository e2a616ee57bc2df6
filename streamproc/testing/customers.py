"""Customer-profile records (``schemas/customer_profile.avsc``) and a corpus of bad payloads.

With ``canary=True`` every sensitive string field carries a unique marker
(``CANARY-<field>-<n>-<hex>``) so a test can prove that no raw value reaches an output.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Iterator
from typing import Any

from fastavro import schemaless_writer

from streamproc.avro.framing import crc64_fingerprint, frame_confluent, frame_single_object

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
CITIES = [
    ("Berlin", "DE", "10"),
    ("Paris", "FR", "75"),
    ("Madrid", "ES", "28"),
    ("Rome", "IT", "00"),
    ("Lisbon", "PT", "11"),
    ("Vienna", "AT", "10"),
]
GENDERS = ["FEMALE", "MALE", "OTHER", "UNKNOWN"]
SEGMENTS = [None, "BASIC", "SILVER", "GOLD", "PLATINUM"]

# Fields whose raw values must never leave (strings checked by canary tests).
SENSITIVE_STRING_FIELDS = ("customer_id", "full_name", "email", "phone", "national_id", "postcode")


def customer_record(
    i: int, rng: random.Random, *, canary: bool = False, v1: bool = False
) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, country, prefix = rng.choice(CITIES)
    tag = f"{rng.getrandbits(48):012x}"

    def mark(field: str, normal: str) -> str:
        return f"CANARY-{field}-{i}-{tag}" if canary else normal

    birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 55))
    rec: dict[str, Any] = {
        "customer_id": mark("customer_id", f"C{i:09d}"),
        "full_name": mark("full_name", f"{first} {last}"),
        "email": mark("email", f"{first.lower()}.{last.lower()}{i}@example.com"),
        "phone": mark("phone", f"+49 30 {rng.randrange(10**6, 10**7)}") if i % 3 else None,
        "national_id": mark("national_id", f"{rng.randrange(10**8, 10**9)}-{i % 97:02d}"),
        "birth_date": birth,
        "postcode": mark("postcode", f"{prefix}{rng.randrange(100, 999)}"),
        "city": city,
        "country": country,
        "gender": rng.choice(GENDERS),
        "annual_income": round(rng.lognormvariate(10.5, 0.5), 2),
        "credit_score": rng.randrange(300, 850),
        "signup_ts": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        + dt.timedelta(seconds=rng.randrange(0, 5 * 365 * 86400)),
    }
    if not v1:
        rec["marketing_opt_in"] = rng.random() < 0.4
        rec["segment"] = rng.choice(SEGMENTS)
    return rec


def policy_without_k(schema_json: dict[str, Any]) -> dict[str, Any]:
    """The customer policy as it was before record-level k (fixed generalizations, city and
    gender kept): for tests of what k-anonymity does not touch (parallel batch, risk of a
    policy that is *not* k-anonymous)."""
    fixed = {
        "birth_date": {"class": "quasi", "action": "generalize", "to": "year"},
        "postcode": {"class": "quasi", "action": "generalize", "prefix": 3},
        "city": {"class": "quasi", "action": "keep"},
        "gender": {"class": "quasi", "action": "keep"},
    }
    doc = {k: v for k, v in schema_json.items() if k != "privacy"}
    doc["fields"] = [
        {**f, "privacy": fixed[f["name"]]} if f["name"] in fixed else f
        for f in schema_json["fields"]
    ]
    return doc


def customer_records(
    n: int, seed: int = 7, *, canary: bool = False, v1_every: int = 0
) -> Iterator[tuple[dict[str, Any], bool]]:
    """``n`` records; every ``v1_every``-th one is of the older v1 schema (flag True)."""
    rng = random.Random(seed)
    for i in range(n):
        v1 = bool(v1_every) and i % v1_every == v1_every - 1
        yield customer_record(i, rng, canary=canary, v1=v1), v1


def encode(schema: Any, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, record)
    return buf.getvalue()


def single_object(schema: Any, record: dict[str, Any]) -> bytes:
    return frame_single_object(crc64_fingerprint(schema), encode(schema, record))


def zigzag(n: int) -> bytes:
    """Avro's zig-zag varint encoding of a long (to hand-craft hostile payloads)."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def bad_payloads(
    schema: Any,
    good: dict[str, Any],
    *,
    max_record_bytes: int = 1024 * 1024,
    trap_schema: Any | None = None,
) -> list[tuple[str, bytes]]:
    """(expected reason, payload) pairs, one per kind of bad input the DLQ must take."""
    ok = single_object(schema, good)
    fp = crc64_fingerprint(schema)
    body = ok[10:]
    cases = [
        ("truncated", ok[: len(ok) // 2]),
        ("bad_magic", b"\x07" + ok[1:]),
        ("unknown_schema", frame_single_object(fp ^ 0xFFFF, body)),
        ("unknown_schema", frame_confluent(999_999, body)),
        ("decode_error", frame_single_object(fp, b"\x04\xff\xfe" + body[1:])),  # bad UTF-8
        ("oversize_record", frame_single_object(fp, b"\x00" * (max_record_bytes + 1))),
        ("trailing_bytes", ok + b"\x00\x01"),
        ("empty_payload", b""),
    ]
    if trap_schema is not None:
        cases.append(
            (
                "oversize_items",
                frame_single_object(crc64_fingerprint(trap_schema), zigzag(10**9) + b"\x00"),
            )
        )
    return cases
