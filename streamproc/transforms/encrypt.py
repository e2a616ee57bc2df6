"""``encrypt``: authenticated encryption into a self-describing string token.

Token: ``enc:<d|r>:<key name>:<version>:<base64url ciphertext>``. ``d`` is deterministic
AES-SIV (equal values give equal tokens, so the column stays joinable), ``r`` randomized
AES-GCM with a fresh 96-bit nonce. The token header is authenticated as associated data, so
a token cannot be re-labelled to another key or mode. :func:`reveal` decrypts.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV

from streamproc.errors import KeyringError, RevealError
from streamproc.keys import Keyring
from streamproc.transforms import base
from streamproc.transforms.base import (
    FieldContext,
    Params,
    Resources,
    Transform,
    ValueFn,
    ValueType,
)
from streamproc.transforms.codec import b64url, canonical, decode
from streamproc.transforms.registry import register

PREFIX = "enc:"
_MODES = {"deterministic": "d", "randomized": "r"}


@register
@dataclass(frozen=True)
class Encrypt(Transform):
    name: ClassVar[str] = "encrypt"
    kinds: ClassVar[frozenset[str]] = base.ALL_KINDS - {base.BOOLEAN}
    mode: str = "randomized"
    key: str = "default"

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> Encrypt:
        base.check_kind(cls, vtype, ctx)
        mode = params.get_str("mode", choices=tuple(_MODES))
        key = params.get_str("key", "default")
        params.done()
        return cls(mode=mode, key=key)

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return self.mode == "deterministic"

    @property
    def key_name(self) -> str | None:
        return self.key

    def output_type(self, vtype: ValueType) -> Any:
        return "string"

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        keyring = base.require_key(res, self.key, ctx)
        m = _MODES[self.mode]
        b64 = b64url
        if m == "d":
            version, k = keyring.subkey(self.key, "aes-siv")
            head = f"{PREFIX}d:{self.key}:{version}:"
            aad = [head.encode("ascii")]
            siv = AESSIV(k).encrypt

            def encrypt_det(value: Any) -> str:
                sealed = siv(canonical(value), aad)
                return head + b64(sealed).decode("ascii")

            return encrypt_det

        version, k = keyring.subkey(self.key, "aes-gcm")
        head = f"{PREFIX}r:{self.key}:{version}:"
        aad_b = head.encode("ascii")
        gcm = AESGCM(k).encrypt
        urandom = os.urandom

        def encrypt_rand(value: Any) -> str:
            nonce = urandom(12)
            sealed = nonce + gcm(nonce, canonical(value), aad_b)
            return head + b64(sealed).decode("ascii")

        return encrypt_rand


def is_token(value: object) -> bool:
    """True for a string that looks like an ``encrypt`` token."""
    return isinstance(value, str) and value.startswith(PREFIX)


def reveal(token: str, keyring: Keyring) -> Any:
    """Decrypt an ``encrypt`` token to its original value; :class:`RevealError` on failure."""
    try:
        _, m, name, version_s, body = token.split(":", 4)
        version = int(version_s)
        data = base64.urlsafe_b64decode(body.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise RevealError("not an encrypt token") from None
    if m not in ("d", "r"):
        raise RevealError("not an encrypt token")
    aad = f"{PREFIX}{m}:{name}:{version}:".encode()
    try:
        _, key = keyring.subkey(name, "aes-siv" if m == "d" else "aes-gcm", version)
    except KeyringError as exc:
        raise RevealError(f"token needs {exc}") from None
    try:
        if m == "d":
            plain = AESSIV(key).decrypt(data, [aad])
        else:
            plain = AESGCM(key).decrypt(data[:12], data[12:], aad)
    except (InvalidTag, ValueError):
        raise RevealError(
            f"token (key {name!r} v{version}) does not verify: tampered or wrong key"
        ) from None
    return decode(plain)
