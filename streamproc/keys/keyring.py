"""Versioned keyring: named keys, each a list of versions of which the newest is current.

File format (JSON, mode 0600)::

    {"format": "streamproc-keyring/1",
     "keys": {"default": {"current": 2,
                          "versions": {"1": {"created": "...", "material": "<base64>"},
                                       "2": {...}}}}}

Every version holds 512 bits of random material; each use (HMAC pseudonyms, AES-GCM,
AES-SIV, date shifts, sealing) derives its own subkey with HKDF-SHA256, so one key name can
serve several transforms without two algorithms ever sharing key bytes. Key material never
appears in ``repr``, logs or error messages.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import struct
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streamproc.errors import KeyNotFoundError, KeyringError, RevealError

FORMAT = "streamproc-keyring/1"
MATERIAL_BYTES = 64
DEFAULT_NAMES: tuple[str, ...] = ("default", "quarantine")
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Subkey sizes per purpose (bytes).
SUBKEY_BYTES: Mapping[str, int] = {
    "pseudonymize": 32,
    "date_shift": 32,
    "budget": 32,
    "aes-gcm": 32,
    "aes-siv": 64,
    "seal": 32,
}

_SEAL_MAGIC = b"SPS1"


@dataclass(frozen=True, repr=False)
class _Version:
    created: str
    material: bytes

    def __repr__(self) -> str:
        return f"_Version(created={self.created!r}, material=<hidden>)"


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid key name, else raise :class:`KeyringError`."""
    if not isinstance(name, str) or not KEY_NAME_RE.match(name):
        raise KeyringError(f"invalid key name {name!r}: use 1-64 of [A-Za-z0-9_-]")
    return name


class Keyring:
    """Named, versioned secret keys. Construct with :meth:`generate` or :meth:`load`."""

    __slots__ = ("_current", "_keys", "_subkeys", "path")

    def __init__(
        self,
        keys: Mapping[str, Mapping[int, _Version]],
        current: Mapping[str, int],
        path: Path | None = None,
    ) -> None:
        self._keys: dict[str, dict[int, _Version]] = {n: dict(v) for n, v in keys.items()}
        self._current: dict[str, int] = dict(current)
        self._subkeys: dict[tuple[str, int, str], bytes] = {}
        self.path = path

    # --- construction --------------------------------------------------------------------

    @classmethod
    def generate(cls, names: Iterable[str] = DEFAULT_NAMES) -> Keyring:
        """A new keyring with version 1 of each named key (``default`` and ``quarantine``)."""
        wanted = list(dict.fromkeys([*DEFAULT_NAMES, *names]))
        keys = {check_key_name(n): {1: _new_version()} for n in wanted}
        return cls(keys, {n: 1 for n in keys})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keyring:
        """Read a keyring file; refuse it if missing, malformed, or group/world accessible."""
        p = Path(path)
        try:
            st = p.stat()
        except OSError as exc:
            raise KeyringError(f"keyring {p}: cannot be read ({exc.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise KeyringError(f"keyring {p}: not a regular file")
        if st.st_mode & 0o077:
            raise KeyringError(
                f"keyring {p}: mode {stat.S_IMODE(st.st_mode):04o} is too permissive; "
                f"run chmod 600 {p}"
            )
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # The parser's message could quote file content (key material): do not chain it.
            raise KeyringError(f"keyring {p}: not a readable keyring file") from None
        return cls._from_doc(doc, p)

    @classmethod
    def _from_doc(cls, doc: Any, path: Path) -> Keyring:
        where = f"keyring {path}"
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise KeyringError(f"{where}: unknown format (expected {FORMAT})")
        raw_keys = doc.get("keys")
        if not isinstance(raw_keys, dict) or not raw_keys:
            raise KeyringError(f"{where}: no keys")
        keys: dict[str, dict[int, _Version]] = {}
        current: dict[str, int] = {}
        for name, entry in raw_keys.items():
            check_key_name(name)
            try:
                versions = {
                    int(v): _Version(str(item["created"]), base64.b64decode(item["material"]))
                    for v, item in entry["versions"].items()
                }
                cur = int(entry["current"])
            except (KeyError, TypeError, ValueError, AttributeError):
                raise KeyringError(f"{where}: key {name!r} is malformed") from None
            if cur not in versions or any(
                len(ver.material) != MATERIAL_BYTES for ver in versions.values()
            ):
                raise KeyringError(f"{where}: key {name!r} is malformed")
            keys[name] = versions
            current[name] = cur
        return cls(keys, current, path)

    # --- persistence ---------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the keyring atomically with mode 0600; returns the path written."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise KeyringError("keyring has no path to save to")
        doc = {
            "format": FORMAT,
            "keys": {
                name: {
                    "current": self._current[name],
                    "versions": {
                        str(v): {
                            "created": ver.created,
                            "material": base64.b64encode(ver.material).decode("ascii"),
                        }
                        for v, ver in sorted(versions.items())
                    },
                }
                for name, versions in sorted(self._keys.items())
            },
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".keyring-", dir=target.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.path = target
        return target

    # --- versions ------------------------------------------------------------------------

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def versions(self, name: str) -> tuple[int, ...]:
        return tuple(sorted(self._versions(name)))

    def current_version(self, name: str) -> int:
        self._versions(name)
        return self._current[name]

    def created(self, name: str, version: int | None = None) -> datetime:
        """When a version of ``name`` (the current one by default) was created (UTC)."""
        versions = self._versions(name)
        v = self._current[name] if version is None else version
        if v not in versions:
            raise KeyNotFoundError(f"key {name!r} has no version {v}")
        when = datetime.fromisoformat(versions[v].created)
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    def rotate(self, name: str) -> int:
        """Add a new version of ``name`` (creating the key if new); it becomes current."""
        check_key_name(name)
        versions = self._keys.setdefault(name, {})
        new = max(versions, default=0) + 1
        versions[new] = _new_version()
        self._current[name] = new
        return new

    def subkey(self, name: str, purpose: str, version: int | None = None) -> tuple[int, bytes]:
        """``(version, subkey)`` for one use of a key; the current version by default."""
        versions = self._versions(name)
        v = self._current[name] if version is None else version
        if v not in versions:
            raise KeyNotFoundError(f"key {name!r} has no version {v}")
        if purpose not in SUBKEY_BYTES:
            raise KeyringError(f"unknown key purpose {purpose!r}")
        cache_key = (name, v, purpose)
        sub = self._subkeys.get(cache_key)
        if sub is None:
            sub = HKDF(
                algorithm=hashes.SHA256(),
                length=SUBKEY_BYTES[purpose],
                salt=None,
                info=f"streamproc/{purpose}/{name}/{v}".encode(),
            ).derive(versions[v].material)
            self._subkeys[cache_key] = sub
        return v, sub

    def _versions(self, name: str) -> dict[int, _Version]:
        try:
            return self._keys[name]
        except KeyError:
            raise KeyNotFoundError(f"key {name!r} is not in the keyring") from None

    # --- sealing (dead-letter payloads) --------------------------------------------------

    def seal(self, plaintext: bytes, aad: bytes, name: str = "quarantine") -> bytes:
        """Encrypt ``plaintext`` with AES-GCM under the current version of ``name``.

        The token carries the key name and version, so :meth:`open` works after rotations.
        ``aad`` is authenticated (e.g. topic/partition/offset) and must be given again to open.
        """
        version, key = self.subkey(name, "seal")
        raw_name = name.encode("ascii")
        header = _SEAL_MAGIC + bytes([len(raw_name)]) + raw_name + struct.pack(">I", version)
        nonce = os.urandom(12)
        return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header + aad)

    def open(self, token: bytes, aad: bytes) -> bytes:
        """Decrypt a token made by :meth:`seal`; :class:`RevealError` if it does not verify."""
        try:
            if token[:4] != _SEAL_MAGIC:
                raise ValueError
            n = token[4]
            name = token[5 : 5 + n].decode("ascii")
            (version,) = struct.unpack(">I", token[5 + n : 9 + n])
            header = token[: 9 + n]
            nonce = token[9 + n : 21 + n]
            body = token[21 + n :]
        except (IndexError, ValueError, struct.error, UnicodeDecodeError):
            raise RevealError("not a sealed token") from None
        try:
            _, key = self.subkey(name, "seal", version)
        except KeyringError as exc:
            raise RevealError(f"sealed token: {exc}") from None
        try:
            return AESGCM(key).decrypt(nonce, body, header + aad)
        except (InvalidTag, ValueError):
            raise RevealError(
                f"sealed token (key {name!r} v{version}) does not verify: "
                "tampered, or wrong associated data"
            ) from None

    # --- hygiene -------------------------------------------------------------------------

    def __repr__(self) -> str:
        keys = ", ".join(f"{n}@v{self._current[n]}" for n in sorted(self._keys))
        return f"Keyring({keys})"

    def __reduce__(self) -> Any:
        raise TypeError("a Keyring cannot be pickled")


def _new_version() -> _Version:
    return _Version(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        material=os.urandom(MATERIAL_BYTES),
    )
