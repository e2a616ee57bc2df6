"""An adversary for the audit trail: each mutation edits a trail and says what must be found.

Used by the mutation-corpus tests and ``load/bench_audit.py``. Every mutation takes the records
of an intact, closed trail (one final checkpoint last) and a seeded generator, and returns the
edited records with an :class:`Expect`: the finding kind a correct verifier reports, where
(1-based record positions and/or entry sequence numbers), and the other kinds that may
legitimately accompany it (for instance a rewritten chain fails several checkpoints).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamproc.audit.encoding import (
    GENESIS,
    canonical,
    checkpoint_hash,
    leaf_hash,
    merkle_root,
    signing_message,
)
from streamproc.audit.signing import CheckpointSigner
from streamproc.audit.verify import FindingKind, Report

Records = list[bytes]


@dataclass(frozen=True)
class Expect:
    """What a verifier must report for one mutation."""

    kind: FindingKind
    positions: frozenset[int] = frozenset()
    seq_range: tuple[int, int] | None = None
    allowed: frozenset[FindingKind] = frozenset()
    anchor: tuple[int, str] | None = None
    span: bool = False  # positions of a finding mark a span (first..last), not single records

    def judge(self, report: Report) -> str | None:
        """None when the report detects and classifies the mutation; else what went wrong."""
        hits = [f for f in report.findings if f.kind is self.kind]
        if not hits:
            return f"no {self.kind.value} finding; got {[f.kind.value for f in report.findings]}"
        if self.positions and not any(self._at(f.positions) for f in hits):
            return f"{self.kind.value} not at {sorted(self.positions)}: {hits[0].detail}"
        if self.seq_range is not None:
            lo, hi = self.seq_range
            if not any(f.seqs and min(f.seqs) <= hi and max(f.seqs) >= lo for f in hits):
                return f"{self.kind.value} not within seq {lo}..{hi}: {hits[0].detail}"
        extra = {f.kind for f in report.findings} - {self.kind} - self.allowed
        if extra:
            return f"unexpected extra findings {sorted(k.value for k in extra)}"
        return None

    def _at(self, positions: tuple[int, ...]) -> bool:
        if self.span and positions:
            return any(min(positions) <= p <= max(positions) for p in self.positions)
        return bool(set(positions) & self.positions)


@dataclass
class Trail:
    """An intact trail's records with indexes of its entries and checkpoints."""

    records: Records
    entries: list[int] = field(init=False)
    checkpoints: list[int] = field(init=False)
    entry_set: set[int] = field(init=False)
    checkpoint_set: set[int] = field(init=False)

    def __post_init__(self) -> None:
        self.entries = [i for i, r in enumerate(self.records) if b'"type":"entry"' in r]
        self.checkpoints = [i for i, r in enumerate(self.records) if b'"type":"checkpoint"' in r]
        self.entry_set, self.checkpoint_set = set(self.entries), set(self.checkpoints)

    def obj(self, i: int) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(self.records[i])
        return obj

    def seq(self, i: int) -> int:
        return int(self.obj(i)["seq"])

    def entry_hash(self, i: int) -> str:
        return leaf_hash(self.records[i]).hex()


Mutation = Callable[[Trail, random.Random], tuple[Records, Expect]]
K = FindingKind


def _pick_entry(t: Trail, rng: random.Random) -> int:
    return t.entries[rng.randrange(len(t.entries))]


def _tweak(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, list):
        return [*value, value[0] if value else 1]
    return f"{value}x"


def modify_entry(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Change one thing in one entry: a field value, the kind, the time, seq or prev."""
    i = _pick_entry(t, rng)
    obj = t.obj(i)
    what = rng.choice(["field", "field", "kind", "ts", "seq", "prev"])
    if what == "field":
        name = rng.choice(sorted(obj["fields"]))
        obj["fields"][name] = _tweak(obj["fields"][name])
    elif what == "kind":
        obj["kind"] = "reveal" if obj["kind"] != "reveal" else "dlq.record"
    elif what == "ts":
        obj["ts"] = obj["ts"][:-2] + ("1Z" if obj["ts"][-2] != "1" else "2Z")
    elif what == "seq":
        obj["seq"] = obj["seq"] + rng.choice([-1, 1, 2, rng.randint(3, 10**6)])
        obj["seq"] = abs(obj["seq"])
    else:
        p = obj["prev"]
        k = rng.randrange(64)
        obj["prev"] = p[:k] + ("1" if p[k] == "0" else "0") + p[k + 1 :]
    out = list(t.records)
    out[i] = canonical(obj)
    return out, Expect(K.MODIFIED, positions=frozenset({i + 1}))


def delete_entries(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Remove 1..5 consecutive entries (no checkpoint between them)."""
    k = rng.choice([1, 1, 1, 2, 3, 5])
    j = rng.randrange(len(t.entries) - k + 1)
    idx = t.entries[j : j + k]
    if idx[-1] - idx[0] != k - 1:  # a checkpoint lies between: delete just the first
        idx = idx[:1]
    gone = set(idx)
    out = [r for n, r in enumerate(t.records) if n not in gone]
    return out, Expect(K.DELETED, seq_range=(t.seq(idx[0]), t.seq(idx[-1])))


def insert_forged(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Insert a well-formed entry that claims a slot and links to the real predecessor."""
    j = rng.randrange(len(t.entries))
    i = t.entries[j]
    obj = t.obj(i)
    obj["kind"] = "reveal"
    obj["fields"] = {"who": "User:mallory", "why": "nothing to see", "offset": rng.randrange(9)}
    obj["prev"] = t.entry_hash(t.entries[j - 1]) if j > 0 else GENESIS
    out = list(t.records)
    at = i if rng.random() < 0.5 else i + 1
    out.insert(at, canonical(obj))
    return out, Expect(K.INSERTED, positions=frozenset({at + 1}))


def insert_naive(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Insert an entry with an arbitrary sequence number and predecessor hash."""
    obj = t.obj(_pick_entry(t, rng))
    obj["seq"] = rng.randrange(2 * len(t.entries))
    obj["prev"] = rng.randbytes(32).hex()
    at = rng.randrange(len(t.records))  # before the final checkpoint at the latest
    out = list(t.records)
    out.insert(at, canonical(obj))
    return out, Expect(K.INSERTED, positions=frozenset({at + 1}))


def duplicate_entry(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Copy an entry byte for byte to another place (right after it, or anywhere later)."""
    i = _pick_entry(t, rng)
    at = i + 1 if rng.random() < 0.5 else rng.randrange(i + 1, len(t.records))
    out = list(t.records)
    out.insert(at, t.records[i])
    return out, Expect(K.DUPLICATED, positions=frozenset({i + 1, at + 1}))


def swap_entries(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Swap two entries, adjacent or up to 50 entries apart."""
    j = rng.randrange(len(t.entries) - 1)
    d = 1 if rng.random() < 0.5 else rng.randint(2, 50)
    k = min(j + d, len(t.entries) - 1)
    a, b = t.entries[j], t.entries[k]
    out = list(t.records)
    out[a], out[b] = out[b], out[a]
    return out, Expect(K.REORDERED, seq_range=(t.seq(a), t.seq(b)))


def move_entry(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Move one entry far away (up to 1000 entries), in either direction."""
    j = rng.randrange(len(t.entries))
    k = max(0, min(len(t.entries) - 1, j + rng.choice([-1, 1]) * rng.randint(2, 1000)))
    if k == j:
        k = j - 1 if j > 0 else j + 1
    src, dst = t.entries[j], t.entries[k]
    out = list(t.records)
    rec = out.pop(src)
    out.insert(dst, rec)
    lo, hi = sorted((t.seq(src), t.seq(dst)))
    return out, Expect(K.REORDERED, seq_range=(lo, hi))


def truncate(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Cut the end off; the verifier holds the final checkpoint as its anchor."""
    last = t.records[-1]
    final = json.loads(last)
    k = rng.randint(1, max(1, len(t.records) // 2))
    return t.records[:-k], Expect(K.TRUNCATED, anchor=(int(final["n"]), checkpoint_hash(last)))


def modify_checkpoint(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Change one signed field of a checkpoint (or its signature)."""
    i = rng.choice(t.checkpoints)
    obj = t.obj(i)
    name = rng.choice(["seq", "first", "size", "n", "head", "root", "ts", "prev_ckpt", "sig"])
    v = obj[name]
    if isinstance(v, int):
        obj[name] = v + 1
    elif name == "ts":
        obj[name] = v.replace("Z", "1Z")
    else:
        obj[name] = ("1" if v[0] == "0" else "0") + v[1:] if v else "00"
    out = list(t.records)
    out[i] = canonical(obj)
    return out, Expect(K.BAD_SIGNATURE, positions=frozenset({i + 1}))


def _resign(obj: dict[str, Any], key: CheckpointSigner, claim_key_id: str | None = None) -> bytes:
    obj["key_id"] = claim_key_id or key.key_id
    obj.pop("sig", None)
    obj["sig"] = key.sign(signing_message(obj)).hex()
    return canonical(obj)


def forge_other_key(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Re-sign a checkpoint with the attacker's own key (its own key id)."""
    i = rng.choice(t.checkpoints)
    out = list(t.records)
    out[i] = _resign(t.obj(i), CheckpointSigner.generate())
    return out, Expect(K.UNTRUSTED_KEY, positions=frozenset({i + 1}))


def forge_claimed_key(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Re-sign a checkpoint with another key while claiming the trusted key id."""
    i = rng.choice(t.checkpoints)
    obj = t.obj(i)
    out = list(t.records)
    out[i] = _resign(obj, CheckpointSigner.generate(), claim_key_id=obj["key_id"])
    return out, Expect(K.BAD_SIGNATURE, positions=frozenset({i + 1}))


def _rehash_from(
    t: Trail, i: int, edited: dict[str, Any], resign: CheckpointSigner | None
) -> Records:
    """Replace entry ``i`` and recompute every later link (and, with a key, checkpoint)."""
    out = list(t.records)
    out[i] = canonical(edited)
    head = leaf_hash(out[i]).hex()
    # leaves of the open interval, for re-signed checkpoints
    before = max((c for c in t.checkpoints if c < i), default=-1)
    pending = [leaf_hash(out[n]) for n in range(before + 1, i + 1) if n in t.entry_set]
    prev_ckpt: dict[str, Any] | None = t.obj(before) if before >= 0 else None
    prev_hash = checkpoint_hash(out[before]) if before >= 0 else GENESIS
    for n in range(i + 1, len(out)):
        obj = json.loads(out[n])
        if obj["type"] == "entry":
            obj["prev"] = head
            out[n] = canonical(obj)
            h = leaf_hash(out[n])
            head = h.hex()
            pending.append(h)
        elif resign is not None:
            obj["head"] = head
            obj["root"] = merkle_root(pending).hex()
            obj["prev_ckpt"] = prev_hash
            obj["prev_sig"] = prev_ckpt["sig"] if prev_ckpt is not None else ""
            out[n] = _resign(obj, resign)
            prev_ckpt, prev_hash, pending = json.loads(out[n]), checkpoint_hash(out[n]), []
        else:
            pending = []
    return out


def rewrite_chain(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Change an entry and re-hash every later link; checkpoints left as signed."""
    i = _pick_entry(t, rng)
    obj = t.obj(i)
    name = sorted(obj["fields"])[0]
    obj["fields"][name] = _tweak(obj["fields"][name])
    s = int(obj["seq"])
    out = _rehash_from(t, i, obj, None)
    if i + 1 in t.checkpoint_set:
        # The entry is a signed head: the checkpoint names exactly this entry as changed.
        return out, Expect(K.MODIFIED, seq_range=(s, s), allowed=frozenset({K.REWRITTEN}))
    end = next(t.seq(e) for e in t.entries if e >= i and e + 1 in t.checkpoint_set)
    return out, Expect(K.REWRITTEN, seq_range=(s, end), allowed=frozenset({K.MODIFIED}))


def rewrite_and_forge(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Change an entry, re-hash the chain and re-sign every later checkpoint with a new key."""
    i = _pick_entry(t, rng)
    obj = t.obj(i)
    obj["fields"] = {k: _tweak(v) for k, v in obj["fields"].items()}
    out = _rehash_from(t, i, obj, CheckpointSigner.generate())
    first = min(c for c in t.checkpoints if c > i)
    return out, Expect(K.UNTRUSTED_KEY, positions=frozenset({first + 1}))


def replay_checkpoint(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Copy an old checkpoint after a later one (or replace the final one with it)."""
    a = rng.randrange(len(t.checkpoints) - 1)
    out = list(t.records)
    if rng.random() < 0.3:  # roll back: the final checkpoint replaced by an older one
        out[-1] = t.records[t.checkpoints[a]]
        return out, Expect(K.REPLAYED, positions=frozenset({len(out)}))
    b = rng.randrange(a + 1, len(t.checkpoints))
    at = t.checkpoints[b] + 1
    out.insert(at, t.records[t.checkpoints[a]])
    return out, Expect(K.REPLAYED, positions=frozenset({at + 1}))


def delete_checkpoint(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Remove a checkpoint other than the final one."""
    i = rng.choice(t.checkpoints[:-1])
    out = t.records[:i] + t.records[i + 1 :]
    return out, Expect(K.CHECKPOINT_MISSING, positions=frozenset({i + 1}), span=True)


def garble(t: Trail, rng: random.Random) -> tuple[Records, Expect]:
    """Overwrite a record (entry or checkpoint) with bytes that are not a record."""
    i = rng.randrange(len(t.records))
    out = list(t.records)
    out[i] = rng.choice([b"", b"{}", t.records[i][: rng.randrange(1, 40)], rng.randbytes(50)])
    return out, Expect(K.MALFORMED, positions=frozenset({i + 1}))


MUTATIONS: dict[str, Mutation] = {
    "modify_entry": modify_entry,
    "delete_entries": delete_entries,
    "insert_forged": insert_forged,
    "insert_naive": insert_naive,
    "duplicate_entry": duplicate_entry,
    "swap_entries": swap_entries,
    "move_entry": move_entry,
    "truncate": truncate,
    "modify_checkpoint": modify_checkpoint,
    "forge_other_key": forge_other_key,
    "forge_claimed_key": forge_claimed_key,
    "rewrite_chain": rewrite_chain,
    "rewrite_and_forge": rewrite_and_forge,
    "replay_checkpoint": replay_checkpoint,
    "delete_checkpoint": delete_checkpoint,
    "garble": garble,
}
