"""Behaviour of each transform, table-driven."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.errors import RevealError
from streamproc.keys import Keyring
from streamproc.transforms.encrypt import reveal
from tests.unit.engine_helpers import KEYRING, plan_for

DATE = {"type": "int", "logicalType": "date"}
TS = {"type": "long", "logicalType": "timestamp-millis"}
DEC = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}


def run(avro_type: Any, ann: dict[str, Any], value: Any, sid: str = "s1") -> Any:
    return plan_for(avro_type, ann).sanitize({"sid": sid, "v": value})["v"]


@pytest.mark.parametrize(
    ("ann", "value", "expected"),
    [
        ({"keep_first": 1}, "ann.lee@example.com", "a**.***@*******.***"),
        ({"keep_last": 4}, "4111-1111-1111-1234", "****-****-****-1234"),
        ({"keep_first": 2, "keep_last": 2, "char": "#"}, "abcdefgh", "ab####gh"),
        ({"keep_first": 3, "keep_last": 3}, "abcdef", "******"),  # would reveal all: mask all
        ({}, "Zoë 12", "*** **"),
        ({}, "", ""),
    ],
)
def test_mask(ann: dict[str, Any], value: str, expected: str) -> None:
    assert run("string", {"action": "mask", **ann}, value) == expected


@pytest.mark.parametrize(
    ("avro_type", "ann", "value", "expected"),
    [
        ("int", {"bucket": 10}, 37, 30),
        ("int", {"bucket": 10}, -1, -10),
        ("long", {"bucket": 1000}, 123456, 123000),
        ("double", {"bucket": 0.5}, 2.74, 2.5),
        (DEC, {"bucket": 10}, decimal.Decimal("123.45"), decimal.Decimal("120.00")),
        (DEC, {"bucket": 0.25}, decimal.Decimal("1.30"), decimal.Decimal("1.25")),
        ("string", {"prefix": 3}, "SW1A 1AA", "SW1"),
        ("string", {"prefix": 3, "char": "*"}, "SW1A 1AA", "SW1*****"),
        (DATE, {"to": "year"}, dt.date(1980, 5, 17), dt.date(1980, 1, 1)),
        (DATE, {"to": "month"}, dt.date(1980, 5, 17), dt.date(1980, 5, 1)),
        (
            TS,
            {"to": "day"},
            dt.datetime(2024, 3, 1, 12, 34, tzinfo=dt.UTC),
            dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
        ),
        (
            TS,
            {"to": "hour"},
            dt.datetime(2024, 3, 1, 12, 34, 5, tzinfo=dt.UTC),
            dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC),
        ),
    ],
)
def test_generalize(avro_type: Any, ann: dict[str, Any], value: Any, expected: Any) -> None:
    assert run(avro_type, {"action": "generalize", **ann}, value) == expected


def test_redact_variants() -> None:
    assert run("string", {"action": "redact"}, "x") == ""
    assert run(["null", "string"], {"action": "redact"}, "x") is None
    assert run("string", {"action": "redact", "with": "[gone]"}, "x") == "[gone]"
    assert run("long", {"action": "redact"}, 5) == 0
    assert run(DATE, {"action": "redact"}, dt.date(2000, 1, 1)) == dt.date(1970, 1, 1)


def test_pseudonym_format_stability_and_domains() -> None:
    a = run("string", {"action": "pseudonymize", "domain": "customer"}, "C-1")
    b = run("string", {"action": "pseudonymize", "domain": "customer"}, "C-1")
    c = run("string", {"action": "pseudonymize", "domain": "other"}, "C-1")
    d = run("string", {"action": "pseudonymize"}, "C-1")  # default domain: the field path
    e = run("string", {"action": "pseudonymize", "domain": "customer"}, "C-2")
    assert a == b
    assert len({a, c, d, e}) == 4
    assert a.startswith("ps1:") and len(a) == len("ps1:") + 22
    # int 1 and string "1" never share a pseudonym (type-tagged input)
    assert run("long", {"action": "pseudonymize", "domain": "x"}, 1) != run(
        "string", {"action": "pseudonymize", "domain": "x"}, "1"
    )


def test_pseudonyms_differ_between_keyrings() -> None:
    other = Keyring.generate()
    ann = {"action": "pseudonymize", "domain": "customer"}
    mine = plan_for("string", ann).sanitize({"sid": "", "v": "C-1"})["v"]
    theirs = plan_for("string", ann, keyring=other).sanitize({"sid": "", "v": "C-1"})["v"]
    assert mine != theirs


@pytest.mark.parametrize("mode", ["deterministic", "randomized"])
@pytest.mark.parametrize(
    ("avro_type", "value"),
    [
        ("string", "AB123456C"),
        ("long", -7),
        ("bytes", b"\x00\xff"),
        (DEC, decimal.Decimal("12.30")),
        (DATE, dt.date(1980, 5, 17)),
        (TS, dt.datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)),
    ],
)
def test_encrypt_reveal_roundtrip(mode: str, avro_type: Any, value: Any) -> None:
    token = run(avro_type, {"action": "encrypt", "mode": mode}, value)
    assert token.startswith(f"enc:{mode[0]}:default:1:")
    assert reveal(token, KEYRING) == value


def test_reveal_refuses_tampering_and_wrong_keys() -> None:
    token = run("string", {"action": "encrypt", "mode": "randomized"}, "AB123456C")
    head, body = token.rsplit(":", 1)
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    with pytest.raises(RevealError):
        reveal(f"{head}:{flipped}", KEYRING)
    with pytest.raises(RevealError):  # relabelled to another mode
        reveal(token.replace("enc:r:", "enc:d:"), KEYRING)
    with pytest.raises(RevealError):
        reveal(token, Keyring.generate())
    with pytest.raises(RevealError):
        reveal("not a token", KEYRING)
    # Messages never carry the plaintext
    try:
        reveal(token, Keyring.generate())
    except RevealError as exc:
        assert "AB123456C" not in str(exc)


def test_date_shift_is_consistent_per_subject_and_bounded() -> None:
    ann = {"action": "date_shift", "max_days": 10, "subject": "sid"}
    plan = plan_for(DATE, ann)
    base = dt.date(2020, 6, 15)
    offsets = {}
    for subject in (f"patient-{i}" for i in range(300)):
        d1 = plan.sanitize({"sid": subject, "v": base})["v"]
        d2 = plan.sanitize({"sid": subject, "v": base + dt.timedelta(days=3)})["v"]
        assert d2 - d1 == dt.timedelta(days=3)  # intervals within a subject survive
        off = (d1 - base).days
        assert 1 <= abs(off) <= 10
        offsets[subject] = off
    assert len(set(offsets.values())) == 20  # all of [-10..-1] u [1..10] are used


def test_date_shift_subject_in_enclosing_record() -> None:
    from streamproc.policy import compile_plan

    schema = {
        "type": "record",
        "name": "Outer",
        "fields": [
            {"name": "pid", "type": "string", "privacy": {"action": "drop"}},
            {
                "name": "visits",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Visit",
                        "fields": [
                            {
                                "name": "day",
                                "type": DATE,
                                "privacy": {
                                    "action": "date_shift",
                                    "max_days": 30,
                                    "subject": "pid",
                                },
                            }
                        ],
                    },
                },
            },
        ],
    }
    plan = compile_plan(schema, KEYRING)
    day = dt.date(2021, 1, 1)
    out = plan.sanitize({"pid": "p1", "visits": [{"day": day}, {"day": day}]})
    assert "pid" not in out
    shifted = [v["day"] for v in out["visits"]]
    assert shifted[0] == shifted[1] != day


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["*", "#", "x", "•"]))
def test_mask_fast_path_equals_the_regex(value: str, char: str) -> None:
    from streamproc.transforms.mask import _ALNUM, masker

    assert masker(char)(value) == _ALNUM.sub(char, value)
    ascii_value = value.encode("ascii", "ignore").decode()
    assert masker(char)(ascii_value) == _ALNUM.sub(char, ascii_value)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_b64url_is_urlsafe_base64(data: bytes) -> None:
    import base64

    from streamproc.transforms.codec import b64url

    assert b64url(data) == base64.urlsafe_b64encode(data)
