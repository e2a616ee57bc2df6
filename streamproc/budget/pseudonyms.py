"""Keyed pseudonyms of subject values: what the budget ledger is keyed by.

HMAC-SHA256 under the keyring's ``budget`` sub-key of a named key, over the subject field's
name and the value's canonical bytes, truncated to 16 bytes. Without the key, a pseudonym
says nothing about the subject value; with it, the same value always maps to the same one.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

_PREFIX = b"streamproc/budget\x00"
_CACHE_LIMIT = 65536


class SubjectPseudonyms:
    """``of(value) -> bytes``: the pseudonym of one subject field's values, memoised.

    ``encode`` gives a value's canonical bytes (the transforms' codec; injected so that this
    package stays below the transforms that use it).
    """

    def __init__(self, secret: bytes, subject_field: str, encode: Callable[[Any], bytes]) -> None:
        self._secret = secret
        self._encode = encode
        self._prefix = _PREFIX + subject_field.encode() + b"\x00"
        self._cache: dict[bytes, bytes] = {}

    def of(self, value: Any) -> bytes:
        c = self._encode(value)
        p = self._cache.get(c)
        if p is None:
            p = hmac.digest(self._secret, self._prefix + c, "sha256")[:16]
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[c] = p
        return p
