"""Ed25519 checkpoint keys: generate, load, sign, verify.

The key id of a public key is the SHA-256 of its raw 32 bytes, in hex; checkpoints carry it
so a verifier knows which trusted key to use and a rotated key can be told apart. Private key
files are PKCS#8 PEM and refused when group or world can read them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from streamproc.errors import AuditError


def key_id(public_key: Ed25519PublicKey) -> str:
    """Fingerprint of a public key: hex SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


class CheckpointSigner:
    """Signs checkpoint messages with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> CheckpointSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: Path) -> CheckpointSigner:
        """Load a PKCS#8 PEM private key; refused if group/world may read it."""
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise AuditError(f"audit signing key {path}: cannot stat ({exc.strerror})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise AuditError(
                f"audit signing key {path} is accessible by group/others "
                f"(mode {stat.S_IMODE(mode):o}); chmod 600 it"
            )
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError):
            raise AuditError(f"audit signing key {path} is not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditError(f"audit signing key {path} is not an Ed25519 key")
        return cls(key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def secret_bytes(self) -> bytes:
        """Raw private key bytes, only so the audit log can refuse entries that contain them."""
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id[:16]}...)"


@dataclass(frozen=True)
class TrustedKeys:
    """Public keys a verifier accepts, by key id."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def of(cls, public_keys: Iterable[Ed25519PublicKey]) -> TrustedKeys:
        return cls({key_id(k): k for k in public_keys})

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> TrustedKeys:
        return cls.of(load_public_key(p) for p in paths)

    def verify(self, kid: str, signature: bytes, message: bytes) -> bool:
        """True when ``kid`` is trusted and ``signature`` is its signature of ``message``."""
        key = self.keys.get(kid)
        if key is None:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load a PEM (SubjectPublicKeyInfo) Ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise AuditError(f"audit public key {path}: cannot read ({exc.strerror})") from None
    except (ValueError, TypeError):
        raise AuditError(f"audit public key {path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"audit public key {path} is not an Ed25519 key")
    return key


def write_keypair(private_path: Path, public_path: Path, *, overwrite: bool = False) -> str:
    """Generate a key pair; private key mode 0600 (created so, never wider). Returns key id."""
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise AuditError(f"{p} exists; refusing to overwrite it")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if overwrite else os.O_EXCL)
    fd = os.open(private_path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)
    pub = key.public_key()
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(
        pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_id(pub)
