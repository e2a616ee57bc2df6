"""Wire format of the audit trail: canonical JSON records and RFC 6962 hashing.

A trail is a sequence of records, one per line (file) or per message (topic). Each record is
the canonical JSON encoding of an object (sorted keys, no whitespace, UTF-8, no NaN):

* an **entry** ``{"v":1,"type":"entry","seq":N,"ts":...,"kind":...,"fields":{...},"prev":H}``
  where ``prev`` is the hash of entry ``N-1`` (:data:`GENESIS` for entry 0);
* a **checkpoint** ``{"v":1,"type":"checkpoint","n":K,"first":A,"seq":B,"size":B+1,
  "head":H,"root":R,"ts":...,"key_id":...,"prev_ckpt":C,"prev_sig":S,"sig":SIG}`` signed
  with Ed25519 over everything but ``sig``.

Hashes follow RFC 6962: an entry's hash is its leaf hash ``SHA-256(0x00 || record bytes)``;
``root`` is the Merkle tree head over the leaf hashes of entries ``first..seq`` with interior
nodes ``SHA-256(0x01 || left || right)``. The hash of a checkpoint (what the next checkpoint
names in ``prev_ckpt``) is ``SHA-256(record bytes)``; it is never a Merkle leaf.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FORMAT_VERSION = 1
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
GENESIS = "0" * 64
"""``prev`` of entry 0 and ``prev_ckpt`` / ``prev_sig`` of checkpoint 0."""
SIGNING_CONTEXT = b"streamproc-audit-checkpoint-v1\x00"
"""Prefix of every signed message, so a checkpoint signature means nothing anywhere else."""


def canonical(obj: dict[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, finite numbers only."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree head over already hashed leaves (``SHA-256('')`` when empty).

    Pairing bottom-up and carrying an odd last node up unchanged builds the same tree as the
    RFC's recursive split at the largest power of two below ``n``.
    """
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def checkpoint_hash(record: bytes) -> str:
    """Hash of a checkpoint record as named by the next checkpoint's ``prev_ckpt``."""
    return hashlib.sha256(record).hexdigest()


def signing_message(body: dict[str, Any]) -> bytes:
    """The bytes a checkpoint signature covers: context + canonical body without ``sig``."""
    return SIGNING_CONTEXT + canonical({k: v for k, v in body.items() if k != "sig"})


@dataclass(frozen=True, slots=True)
class Entry:
    """A parsed entry record and its leaf hash (hex)."""

    seq: int
    ts: str
    kind: str
    fields: dict[str, Any]
    prev: str
    hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A parsed checkpoint record; ``hash`` is :func:`checkpoint_hash` of its bytes."""

    n: int
    first: int
    seq: int
    size: int
    head: str
    root: str
    ts: str
    key_id: str
    prev_ckpt: str
    prev_sig: str
    sig: str
    body: dict[str, Any]
    hash: str


class MalformedRecord(ValueError):
    """A record that is not a well-formed entry or checkpoint (message says why, no value)."""


_HEX64 = re.compile(r"[0-9a-f]{64}").fullmatch
_decode = json.JSONDecoder().decode


def _hex(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or _HEX64(value) is None:
        raise MalformedRecord(f"{name!r} is not 64 lower-case hex digits")
    return value


def _int(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedRecord(f"{name!r} is not a non-negative integer")
    return value


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise MalformedRecord(f"{name!r} is not a string")
    return value


_ENTRY_KEYS = frozenset({"v", "type", "seq", "ts", "kind", "fields", "prev"})
_CHECKPOINT_KEYS = frozenset(
    {"v", "type", "n", "first", "seq", "size", "head", "root", "ts", "key_id"}
    | {"prev_ckpt", "prev_sig", "sig"}
)


def parse_record(raw: bytes) -> Entry | Checkpoint:
    """Parse one record; raises :class:`MalformedRecord` when it is neither kind."""
    try:
        obj = _decode(raw.decode("utf-8"))
    except ValueError:  # includes UnicodeDecodeError
        raise MalformedRecord("not JSON") from None
    if not isinstance(obj, dict) or obj.get("v") != FORMAT_VERSION:
        raise MalformedRecord(f"not a version {FORMAT_VERSION} audit record")
    kind = obj.get("type")
    if kind == "entry":
        if obj.keys() != _ENTRY_KEYS:
            raise MalformedRecord("entry keys differ from the format")
        fields = obj["fields"]
        if not isinstance(fields, dict):
            raise MalformedRecord("'fields' is not an object")
        return Entry(
            seq=_int(obj, "seq"),
            ts=_str(obj, "ts"),
            kind=_str(obj, "kind"),
            fields=fields,
            prev=_hex(obj, "prev"),
            hash=leaf_hash(raw).hex(),
        )
    if kind == "checkpoint":
        if obj.keys() != _CHECKPOINT_KEYS:
            raise MalformedRecord("checkpoint keys differ from the format")
        return Checkpoint(
            n=_int(obj, "n"),
            first=_int(obj, "first"),
            seq=_int(obj, "seq"),
            size=_int(obj, "size"),
            head=_hex(obj, "head"),
            root=_hex(obj, "root"),
            ts=_str(obj, "ts"),
            key_id=_hex(obj, "key_id"),
            prev_ckpt=_hex(obj, "prev_ckpt"),
            prev_sig=_str(obj, "prev_sig"),
            sig=_str(obj, "sig"),
            body=obj,
            hash=checkpoint_hash(raw),
        )
    raise MalformedRecord("'type' is neither 'entry' nor 'checkpoint'")
