"""Verify an audit trail and say exactly what was changed, and where.

The verifier trusts nothing in the trail but the Ed25519 public keys it is given. Entry
hashes and ``prev`` links localise changes to single entries; signed checkpoints prove the
chain head and the Merkle root of each interval, so a chain re-hashed after tampering is still
caught (localised to a checkpoint interval). What it cannot see: entries appended after the
last signed checkpoint may be altered or cut off unnoticed (reported as an *unsigned tail*),
and whole checkpoint intervals cut from the end are only noticed with an anchor (the number
and hash of a checkpoint kept elsewhere).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from streamproc.audit.encoding import (
    GENESIS,
    Checkpoint,
    Entry,
    MalformedRecord,
    merkle_root,
    parse_record,
    signing_message,
)
from streamproc.audit.signing import TrustedKeys


class FindingKind(StrEnum):
    """Classification of one piece of tamper evidence."""

    MODIFIED = "modified"
    DELETED = "deleted"
    INSERTED = "inserted"
    DUPLICATED = "duplicated"
    REORDERED = "reordered"
    MALFORMED = "malformed"
    REWRITTEN = "rewritten"
    BAD_SIGNATURE = "bad_signature"
    UNTRUSTED_KEY = "untrusted_key"
    REPLAYED = "replayed"
    CHECKPOINT_MISSING = "checkpoint_missing"
    CHECKPOINT_CHAIN = "checkpoint_chain"
    TRUNCATED = "truncated"


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of evidence: what, which entry sequence numbers, which lines/offsets."""

    kind: FindingKind
    detail: str
    seqs: tuple[int, ...] = ()
    positions: tuple[int, ...] = ()
    checkpoint: int | None = None


@dataclass(frozen=True, slots=True)
class UnsignedTail:
    """Entries after the last valid checkpoint: chained, but not signed."""

    count: int
    first_seq: int
    last_seq: int
    first_position: int


@dataclass
class Report:
    """Outcome of a verification; ``ok`` means no tamper evidence at all."""

    source: str
    unit: str
    entries: int = 0
    checkpoints: int = 0
    head_seq: int | None = None
    head_hash: str | None = None
    last_checkpoint: Checkpoint | None = None
    last_checkpoint_position: int | None = None
    findings: list[Finding] = field(default_factory=list)
    unsigned: UnsignedTail | None = None
    anchored: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings

    def exit_code(self, *, allow_unsigned_tail: bool = False) -> int:
        """0 verified, 1 tamper evidence, 3 no evidence but an unsigned tail."""
        if self.findings:
            return 1
        if self.unsigned is not None and not allow_unsigned_tail:
            return 3
        return 0

    def render(self) -> str:
        lines = []
        state = "OK" if self.ok else f"TAMPERED ({len(self.findings)} finding(s))"
        lines.append(f"audit trail {self.source}: {state}")
        head = f"seq {self.head_seq} {self.head_hash}" if self.head_seq is not None else "(empty)"
        lines.append(f"  entries: {self.entries}; valid checkpoints: {self.checkpoints}")
        lines.append(f"  head: {head}")
        c = self.last_checkpoint
        if c is not None:
            lines.append(
                f"  last signed checkpoint: #{c.n} at {self.unit} {self.last_checkpoint_position}"
                f" covers seq 0..{c.seq} (head {c.head}, key {c.key_id[:16]}, {c.ts});"
                f" checkpoint hash {c.hash}"
            )
        for f in self.findings:
            lines.append(f"  {f.kind.value.upper()}: {f.detail}")
        if self.unsigned is not None:
            u = self.unsigned
            lines.append(
                f"  UNSIGNED TAIL: {u.count} entr{'y' if u.count == 1 else 'ies'} "
                f"(seq {u.first_seq}..{u.last_seq}, from {self.unit} {u.first_position}) follow "
                "the last signed checkpoint: they are hash-chained but not signed, so changes to "
                "them and truncation of them cannot be detected"
            )
        if not self.anchored:
            lines.append(
                "  note: without --anchor, checkpoint intervals cut from the end of the trail "
                "cannot be detected; the trail is proven only up to its last signed checkpoint"
            )
        return "\n".join(lines)


Parsed = Entry | Checkpoint | MalformedRecord


def parse_all(records: Iterable[tuple[int, bytes]]) -> list[tuple[int, Parsed]]:
    """Parse ``(position, bytes)`` records; malformed ones are kept as the exception."""
    out: list[tuple[int, Parsed]] = []
    for pos, raw in records:
        try:
            out.append((pos, parse_record(raw)))
        except MalformedRecord as exc:
            out.append((pos, exc))
    return out


def verify_records(
    records: Iterable[tuple[int, bytes]],
    trusted: TrustedKeys,
    *,
    source: str = "<records>",
    unit: str = "line",
    anchor: tuple[int, str] | None = None,
) -> Report:
    """Verify raw records (position, bytes) in trail order."""
    return analyse(parse_all(records), trusted, source=source, unit=unit, anchor=anchor)


@dataclass(slots=True)
class _Item:
    pos: int
    e: Entry
    after_malformed: bool


def analyse(
    parsed: Sequence[tuple[int, Parsed]],
    trusted: TrustedKeys,
    *,
    source: str = "<records>",
    unit: str = "line",
    anchor: tuple[int, str] | None = None,
) -> Report:
    """Verify already parsed records (see :func:`parse_all`)."""
    report = Report(source=source, unit=unit, anchored=anchor is not None)
    findings = report.findings
    items: list[_Item] = []
    ckpts: list[tuple[int, Checkpoint]] = []
    bad_ckpt_positions: list[int] = []  # malformed/untrusted/bad-signature, explain chain gaps
    malformed_positions: list[int] = []
    pending_malformed = False
    for pos, rec in parsed:
        if isinstance(rec, Entry):
            items.append(_Item(pos, rec, pending_malformed))
            pending_malformed = False
        elif isinstance(rec, Checkpoint):
            ckpts.append((pos, rec))
        else:
            findings.append(
                Finding(
                    FindingKind.MALFORMED,
                    f"{unit} {pos} is not an audit record ({rec})",
                    positions=(pos,),
                )
            )
            bad_ckpt_positions.append(pos)
            malformed_positions.append(pos)
            pending_malformed = True
    report.entries = len(items)

    ckpt_findings: list[Finding] = []
    valid = _checkpoints(ckpts, trusted, bad_ckpt_positions, unit, ckpt_findings)
    signed = {c.seq: c.head for _, c in valid}
    entry_findings: list[Finding] = []
    clean, modified = _entries(items, unit, entry_findings, signed)
    findings.extend(entry_findings)
    findings.extend(ckpt_findings)
    if clean:
        tip = max(clean, key=lambda it: it.e.seq)
        report.head_seq, report.head_hash = tip.e.seq, tip.e.hash

    by_seq: dict[int, str] = {}
    pos_by_seq: dict[int, int] = {}
    for it in clean:
        if it.e.hash not in modified and it.e.seq not in by_seq:
            by_seq[it.e.seq] = it.e.hash
            pos_by_seq[it.e.seq] = it.pos
    report.checkpoints = len(valid)
    flagged = sorted(s for f in entry_findings for s in f.seqs)
    prev_pos = 0
    for pos, c in valid:
        unreadable = any(prev_pos < p < pos for p in malformed_positions)
        if not unreadable:
            _cover(c, pos, by_seq, pos_by_seq, flagged, unit, findings)
        prev_pos = pos
    if valid:
        report.last_checkpoint_position, report.last_checkpoint = valid[-1]
    signed_upto = valid[-1][1].seq if valid else -1
    tail = [it for it in clean if it.e.seq > signed_upto]
    if tail:
        report.unsigned = UnsignedTail(
            count=len(tail),
            first_seq=min(it.e.seq for it in tail),
            last_seq=max(it.e.seq for it in tail),
            first_position=tail[0].pos,
        )
    if anchor is not None:
        _check_anchor(anchor, valid, unit, findings)
    return report


def _entries(
    items: list[_Item], unit: str, out: list[Finding], signed: dict[int, str]
) -> tuple[list[_Item], set[str]]:
    """Classify entry-level evidence; ``signed`` maps seq -> head hash of valid checkpoints.

    Returns the entries that belong to the chain (in trail order) and the hashes of those
    among them that were modified.
    """
    if not items:
        return [], set()
    if _intact(items):  # fast path: every entry links to its file predecessor
        return items, set()
    chain = _ChainAnalysis(_drop_copies(items, unit, out), unit, out, signed)
    chain.altered_prevs()
    chain.unreferenced()
    chain.dangling_links()
    return chain.report()


def _intact(items: list[_Item]) -> bool:
    if items[0].e.prev != GENESIS or items[0].e.seq != 0:
        return False
    for i in range(1, len(items)):
        a, b = items[i - 1].e, items[i].e
        if b.prev != a.hash or b.seq != a.seq + 1:
            return False
    return True


def _drop_copies(items: list[_Item], unit: str, out: list[Finding]) -> list[_Item]:
    """Exact copies: keep the copy that sits where the chain says it belongs."""
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(it.e.hash, []).append(i)
    drop: set[int] = set()
    for idxs in groups.values():
        if len(idxs) < 2:
            continue
        keep = next((i for i in idxs if _links(items, i)), idxs[0])
        for i in idxs:
            if i != keep:
                drop.add(i)
                out.append(
                    Finding(
                        FindingKind.DUPLICATED,
                        f"entry seq {items[i].e.seq} at {unit} {items[i].pos} is a copy of the "
                        f"one at {unit} {items[keep].pos}",
                        seqs=(items[i].e.seq,),
                        positions=(items[i].pos, items[keep].pos),
                    )
                )
    return [it for i, it in enumerate(items) if i not in drop]


class _ChainAnalysis:
    """The evidence of a broken chain, explained step by step (each step marks what it
    explains so that a later one does not report it again)."""

    def __init__(
        self, L: list[_Item], unit: str, out: list[Finding], signed: dict[int, str]
    ) -> None:
        self.L, self.unit, self.out, self.signed = L, unit, out, signed
        n = self.n = len(L)
        present = {it.e.hash for it in L}
        referenced = {it.e.prev for it in L}
        unreferenced = [i for i in range(n) if L[i].e.hash not in referenced]
        self.tip = _tip(L, unreferenced, signed)
        self.dangling = [it.e.prev not in present and it.e.prev != GENESIS for it in L]
        self.unref = [False] * n
        for i in unreferenced:
            self.unref[i] = i != self.tip
        self.modified: dict[int, tuple[str, int | None]] = {}  # index -> (why, seq of slot)
        self.inserted: set[int] = set()
        self.explained: set[int] = set()  # dangling prev or missing reference accounted for

    def altered_prevs(self) -> None:
        """An entry whose own prev was altered: dangling in, unreferenced, successor dangling."""
        L, dangling = self.L, self.dangling
        for i in range(self.n):
            if (
                dangling[i]
                and self.unref[i]
                and i + 1 < self.n
                and dangling[i + 1]
                and not L[i].after_malformed
                and L[i + 1].e.seq == L[i].e.seq + 1
            ):
                self.modified[i] = ("its prev link was altered", L[i].e.seq)
                self.explained.update({i, i + 1})
                if i > 0:
                    self.explained.add(i - 1)

    def unreferenced(self) -> None:
        """Unreferenced entries whose successor does not miss its predecessor are not chain
        members (inserted)."""
        for i in range(self.n):
            if not self.unref[i] or i in self.modified or i in self.explained:
                continue
            if i + 1 < self.n and self.L[i + 1].after_malformed:
                self.explained.add(i)  # its successor is the unreadable record
            elif i + 1 >= self.n or not self.dangling[i + 1]:
                self.inserted.add(i)
                self.explained.add(i)

    def dangling_links(self) -> None:
        """Every remaining dangling link: a deletion, a modified predecessor or a break."""
        for i in range(self.n):
            if not self.dangling[i] or i in self.explained or self.L[i].after_malformed:
                continue
            a_idx = i - 1
            while a_idx >= 0 and a_idx in self.inserted:
                a_idx -= 1
            if a_idx < 0:
                b = self.L[i].e
                self.out.append(
                    Finding(
                        FindingKind.DELETED,
                        f"entries seq 0..{b.seq - 1} before {self.unit} {self.L[i].pos} are "
                        "missing from the start of the trail (deleted, or removed by topic "
                        "retention)",
                        seqs=_span(0, b.seq - 1),
                        positions=(self.L[i].pos,),
                    )
                )
            else:
                self._dangling_after(a_idx, i)

    def _dangling_after(self, a_idx: int, i: int) -> None:
        L, unit = self.L, self.unit
        a, b = L[a_idx].e, L[i].e
        slot = _slot(L, a_idx)
        if a.seq + 1 == b.seq and self.signed.get(b.seq, b.hash) != b.hash:
            # b is the slot a checkpoint signed, with another hash: b's own prev was altered.
            self.modified[i] = ("its prev link was altered", b.seq)
            self.explained.add(a_idx)
        elif a.seq + 1 == b.seq:
            why = f"its content changed: entry seq {b.seq} names another hash"
            self.modified[a_idx] = (why, a.seq)
            self.explained.add(a_idx)
        elif slot is not None and slot + 1 == b.seq:
            self.modified[a_idx] = (f"its sequence number changed (belongs at seq {slot})", slot)
            self.explained.add(a_idx)
        elif a.seq + 1 < b.seq:
            lo, hi = a.seq + 1, b.seq - 1
            span = f"seq {lo}" if lo == hi else f"seqs {lo}..{hi}"
            self.out.append(
                Finding(
                    FindingKind.DELETED,
                    f"entr{'y' if lo == hi else 'ies'} {span} missing between {unit} "
                    f"{L[a_idx].pos} and {unit} {L[i].pos}",
                    seqs=_span(lo, hi),
                    positions=(L[a_idx].pos, L[i].pos),
                )
            )
            self.explained.add(a_idx)
        else:
            self.out.append(
                Finding(
                    FindingKind.MODIFIED,
                    f"chain broken at {unit} {L[i].pos}: entry seq {b.seq} names a predecessor "
                    "that is not in the trail (entries changed or removed before it)",
                    seqs=(b.seq,),
                    positions=(L[i].pos,),
                )
            )

    def report(self) -> tuple[list[_Item], set[str]]:
        """Findings for modified, inserted and reordered entries; the chain members."""
        L, unit, tip = self.L, self.unit, self.tip
        if tip >= 0 and tip not in self.modified:
            slot = _slot(L, tip)
            if slot is not None and slot != L[tip].e.seq:
                self.modified[tip] = (f"its sequence number changed (belongs at seq {slot})", slot)
        for i, (why, slot) in sorted(self.modified.items()):
            seqs = (L[i].e.seq,) if slot in (None, L[i].e.seq) else (L[i].e.seq, slot)
            self.out.append(
                Finding(
                    FindingKind.MODIFIED,
                    f"entry at {unit} {L[i].pos} (claims seq {L[i].e.seq}) was modified: {why}",
                    seqs=seqs,
                    positions=(L[i].pos,),
                )
            )
        for i in sorted(self.inserted):
            self.out.append(
                Finding(
                    FindingKind.INSERTED,
                    f"entry at {unit} {L[i].pos} (claims seq {L[i].e.seq}) is not part of the "
                    "chain: no entry names it as predecessor",
                    seqs=(L[i].e.seq,),
                    positions=(L[i].pos,),
                )
            )
        chain = [it for i, it in enumerate(L) if i not in self.inserted]
        # Order: sequence numbers of unmodified entries must increase along the trail.
        mod_hashes = {L[i].e.hash for i in self.modified}
        order = [it for it in chain if it.e.hash not in mod_hashes]
        for it in _out_of_order(order):
            self.out.append(
                Finding(
                    FindingKind.REORDERED,
                    f"entry seq {it.e.seq} at {unit} {it.pos} is out of order",
                    seqs=(it.e.seq,),
                    positions=(it.pos,),
                )
            )
        return chain, mod_hashes


def _tip(L: list[_Item], unreferenced: list[int], signed: dict[int, str]) -> int:
    """Index of the chain's last entry (-1 if none): entries after it are not chain members.

    The head of the last valid checkpoint decides when it is present and nothing chains on
    from it; otherwise the last unreferenced entry in the trail, unless it fails to link to
    an unreferenced, linking predecessor whose successor it cannot be (then it was appended).
    """
    if not unreferenced:
        return -1
    if signed:
        head = signed[max(signed)]
        unref_by_hash = {L[i].e.hash: i for i in unreferenced}
        if head in unref_by_hash:
            return unref_by_hash[head]
    last = unreferenced[-1]
    if (
        not _links(L, last)
        and len(unreferenced) > 1
        and unreferenced[-2] == last - 1
        and _links(L, last - 1)
        and L[last].e.seq != L[last - 1].e.seq + 1
    ):
        return last - 1
    return last


def _links(L: Sequence[_Item], i: int) -> bool:
    """Entry ``i`` names its file predecessor (or is a first entry naming GENESIS)."""
    if i == 0:
        return L[0].e.prev == GENESIS
    return L[i - 1].e.hash == L[i].e.prev


def _span(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1)) if hi - lo < 16 else (lo, hi)


def _slot(L: list[_Item], i: int) -> int | None:
    """The sequence number entry ``i`` must have, judged from its link to its predecessor."""
    e = L[i].e
    if e.prev == GENESIS:
        return 0 if i == 0 else None
    if i > 0 and L[i - 1].e.hash == e.prev:
        return L[i - 1].e.seq + 1
    return None


def _out_of_order(items: list[_Item]) -> list[_Item]:
    """Entries outside a longest strictly increasing run of sequence numbers."""
    seqs = [it.e.seq for it in items]
    if all(seqs[i] < seqs[i + 1] for i in range(len(seqs) - 1)):
        return []
    tails: list[int] = []  # smallest tail seq of an increasing run of each length
    tail_idx: list[int] = []
    parent = [-1] * len(seqs)
    for i, s in enumerate(seqs):
        k = bisect.bisect_left(tails, s)
        if k == len(tails):
            tails.append(s)
            tail_idx.append(i)
        else:
            tails[k] = s
            tail_idx[k] = i
        parent[i] = tail_idx[k - 1] if k > 0 else -1
    keep: set[int] = set()
    j = tail_idx[-1]
    while j >= 0:
        keep.add(j)
        j = parent[j]
    return [it for i, it in enumerate(items) if i not in keep]


def _checkpoints(
    ckpts: list[tuple[int, Checkpoint]],
    trusted: TrustedKeys,
    bad_positions: list[int],
    unit: str,
    out: list[Finding],
) -> list[tuple[int, Checkpoint]]:
    """Signature, numbering and CloudTrail-style chaining; returns valid checkpoints."""
    valid: list[tuple[int, Checkpoint]] = []
    seen: dict[int, int] = {}
    last: Checkpoint | None = None
    last_pos = -1
    for pos, c in ckpts:
        problem = _signature_problem(c, trusted, pos, unit)
        if problem is not None:
            out.append(problem)
            bad_positions.append(pos)
            continue
        if c.n in seen or (last is not None and c.n < last.n):
            orig = seen.get(c.n)
            where = f" (first seen at {unit} {orig})" if orig is not None else ""
            out.append(
                Finding(
                    FindingKind.REPLAYED,
                    f"checkpoint #{c.n} at {unit} {pos} is an old checkpoint replayed{where}",
                    positions=(pos,),
                    checkpoint=c.n,
                )
            )
            continue
        expected = last.n + 1 if last is not None else 0
        explained = any(last_pos < p < pos for p in bad_positions)
        if c.n > expected and not explained:
            span = f"#{expected}" if c.n == expected + 1 else f"#{expected}..#{c.n - 1}"
            out.append(
                Finding(
                    FindingKind.CHECKPOINT_MISSING,
                    f"checkpoint(s) {span} missing between {unit} {max(last_pos, 1)} and "
                    f"{unit} {pos}",
                    positions=(max(last_pos, 1), pos),
                    checkpoint=expected,
                )
            )
        elif c.n == expected and not explained:
            prev_hash = last.hash if last is not None else GENESIS
            prev_sig = last.sig if last is not None else ""
            first = last.seq + 1 if last is not None else 0
            if (c.prev_ckpt, c.prev_sig, c.first) != (prev_hash, prev_sig, first):
                out.append(
                    Finding(
                        FindingKind.CHECKPOINT_CHAIN,
                        f"checkpoint #{c.n} at {unit} {pos} does not chain to checkpoint "
                        f"#{c.n - 1}",
                        positions=(pos,),
                        checkpoint=c.n,
                    )
                )
        seen[c.n] = pos
        valid.append((pos, c))
        last, last_pos = c, pos
    return valid


def _signature_problem(c: Checkpoint, trusted: TrustedKeys, pos: int, unit: str) -> Finding | None:
    """Why checkpoint ``c`` cannot be trusted (unknown key, bad signature), or None."""
    if c.key_id not in trusted.keys:
        return Finding(
            FindingKind.UNTRUSTED_KEY,
            f"checkpoint #{c.n} at {unit} {pos} is signed by key {c.key_id[:16]}..., "
            "which is not trusted (forged, or a public key is missing)",
            positions=(pos,),
            checkpoint=c.n,
        )
    try:
        sig = bytes.fromhex(c.sig)
    except ValueError:
        sig = b""
    if not trusted.verify(c.key_id, sig, signing_message(c.body)):
        return Finding(
            FindingKind.BAD_SIGNATURE,
            f"checkpoint #{c.n} at {unit} {pos} does not verify with key "
            f"{c.key_id[:16]}...: it was modified or its signature forged",
            positions=(pos,),
            checkpoint=c.n,
        )
    return None


def _cover(
    c: Checkpoint,
    pos: int,
    by_seq: dict[int, str],
    pos_by_seq: dict[int, int],
    flagged: list[int],
    unit: str,
    out: list[Finding],
) -> None:
    """Check a valid checkpoint's head and Merkle root against the entries it covers."""
    leaves = [by_seq.get(s) for s in range(c.first, c.seq + 1)]
    head_ok = by_seq.get(c.seq) == c.head
    root_ok = (
        None not in leaves
        and merkle_root([bytes.fromhex(h) for h in leaves if h is not None]).hex() == c.root
    )
    if head_ok and root_ok:
        return
    k = bisect.bisect_left(flagged, c.first)
    if k < len(flagged) and flagged[k] <= c.seq:
        return  # already explained by entry-level evidence inside this interval
    if c.seq not in by_seq:
        have = [s for s in range(c.first, c.seq + 1) if s in by_seq]
        lo = (have[-1] + 1) if have else c.first
        out.append(
            Finding(
                FindingKind.DELETED,
                f"entries seq {lo}..{c.seq}, signed by checkpoint #{c.n} at {unit} {pos}, are "
                "missing",
                seqs=_span(lo, c.seq),
                positions=(pos,),
                checkpoint=c.n,
            )
        )
    elif not head_ok and root_ok is False and _only_head_differs(c, by_seq):
        out.append(
            Finding(
                FindingKind.MODIFIED,
                f"entry seq {c.seq} at {unit} {pos_by_seq[c.seq]} was modified: it differs "
                f"from the head signed by checkpoint #{c.n} at {unit} {pos}",
                seqs=(c.seq,),
                positions=(pos_by_seq[c.seq], pos),
                checkpoint=c.n,
            )
        )
    else:
        out.append(
            Finding(
                FindingKind.REWRITTEN,
                f"entries seq {c.first}..{c.seq} do not match the signed "
                f"{'head' if not head_ok else 'Merkle root'} of checkpoint #{c.n} at {unit} "
                f"{pos}: entries in this interval were changed and the chain re-hashed",
                seqs=(c.first, c.seq),
                positions=(pos,),
                checkpoint=c.n,
            )
        )


def _only_head_differs(c: Checkpoint, by_seq: dict[int, str]) -> bool:
    """True when substituting the signed head for the last entry makes the root match."""
    leaves = [by_seq.get(s) for s in range(c.first, c.seq)] + [c.head]
    if None in leaves:
        return False
    return merkle_root([bytes.fromhex(h) for h in leaves if h is not None]).hex() == c.root


def _check_anchor(
    anchor: tuple[int, str],
    valid: list[tuple[int, Checkpoint]],
    unit: str,
    out: list[Finding],
) -> None:
    n, digest = anchor
    for pos, c in valid:
        if c.n == n:
            if c.hash != digest:
                out.append(
                    Finding(
                        FindingKind.CHECKPOINT_CHAIN,
                        f"checkpoint #{n} at {unit} {pos} differs from the anchor",
                        positions=(pos,),
                        checkpoint=n,
                    )
                )
            return
    last = valid[-1][1] if valid else None
    ends = f"checkpoint #{last.n} (seq {last.seq})" if last else "no valid checkpoint"
    out.append(
        Finding(
            FindingKind.TRUNCATED,
            f"the anchor names checkpoint #{n} but the trail ends at {ends}: truncated",
            checkpoint=n,
        )
    )
