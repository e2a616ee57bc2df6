"""Canonical byte encodings of Avro values, for keyed hashing and for encryption.

Each encoding starts with a one-byte type tag so values of different types never collide
(``"1"`` and ``1`` hash apart) and a revealed plaintext comes back with its original type.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from binascii import b2a_base64
from typing import Any

from streamproc.errors import RevealError

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url(data: bytes) -> bytes:
    """``base64.urlsafe_b64encode`` in one call (it runs per record in three transforms)."""
    return b2a_base64(data, newline=False).translate(_URLSAFE)


def canonical(value: Any) -> bytes:
    """Tagged, unambiguous bytes of a value (str, bytes, int, float, bool, Decimal, dates...)."""
    if isinstance(value, str):
        return b"s" + value.encode("utf-8")
    if isinstance(value, bool):  # before int: bool is an int subclass
        return b"?1" if value else b"?0"
    if isinstance(value, int):
        return b"i" + str(value).encode("ascii")
    if isinstance(value, bytes | bytearray):
        return b"b" + bytes(value)
    if isinstance(value, float):
        return b"f" + repr(value).encode("ascii")
    if isinstance(value, decimal.Decimal):
        return b"D" + str(value).encode("ascii")
    if isinstance(value, uuid.UUID):
        # A uuid is a string on the wire: hash it as its canonical string form.
        return b"s" + str(value).encode("ascii")
    if isinstance(value, dt.datetime):
        return b"t" + value.isoformat().encode("ascii")
    if isinstance(value, dt.date):
        return b"d" + value.isoformat().encode("ascii")
    if isinstance(value, dt.time):
        return b"T" + value.isoformat().encode("ascii")
    if value is None:
        return b"n"
    raise TypeError(f"no canonical encoding for {type(value).__name__}")


def decode(data: bytes) -> Any:
    """Inverse of :func:`canonical` (uuids come back as strings)."""
    if not data:
        raise RevealError("empty plaintext")
    tag, body = data[:1], data[1:]
    try:
        if tag == b"s":
            return body.decode("utf-8")
        if tag == b"b":
            return body
        if tag == b"i":
            return int(body)
        if tag == b"f":
            return float(body)
        if tag == b"?":
            return body == b"1"
        if tag == b"D":
            return decimal.Decimal(body.decode("ascii"))
        if tag == b"t":
            return dt.datetime.fromisoformat(body.decode("ascii"))
        if tag == b"d":
            return dt.date.fromisoformat(body.decode("ascii"))
        if tag == b"T":
            return dt.time.fromisoformat(body.decode("ascii"))
        if tag == b"n":
            return None
    except (ValueError, decimal.InvalidOperation):
        raise RevealError("plaintext does not decode") from None
    raise RevealError("plaintext has an unknown type tag")
