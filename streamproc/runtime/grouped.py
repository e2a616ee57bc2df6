"""The k-anonymity side of a hot-path route: per-partition buffers and their state topic.

A route whose plan declares record-level k (``plan.anonymity``) does not produce a record
when it reads it. :class:`Grouping` prepares it (:meth:`SanitizeFlow.prepare`), buffers it
in its partition's :class:`~streamproc.pipeline.grouping.PartitionGroups` and hands the hot
path the rows whose groups are decided, with the *pins* that must reach the state topic
first (exactly_once: in the same transaction; at_least_once: acknowledged before the rows).

The state topic (``<app id>-<topology>-anonymity``, compacted, as many partitions as the
source) holds per source partition ``p``: ``pin/p/...`` batches of pins, ``pub/p`` the
published combinations, and under exactly_once ``cmt/p``, the offset each transaction
committed, which tells a new owner that it has read the state of the last transaction.
It holds output values (generalized cells) only, never a raw value.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from streamproc.anonymity import Release, StreamAnonymizer
from streamproc.pipeline import Outcome, SanitizeFlow
from streamproc.pipeline.grouping import PartitionGroups, Prepared
from streamproc.pipeline.grouping import read_state as partition_state
from streamproc.pipeline.outcome import DeadLetter
from streamproc.runtime.statetopic import StateTopic

log = logging.getLogger("streamproc.runtime.grouped")

Item = tuple[bytes | None, bytes | None, str, int, int, int | None]


def state_topic_name(app_id: str, topology: str) -> str:
    return f"{app_id}-{topology}-anonymity"


def commit_key(partition: int) -> bytes:
    return f"cmt/{partition}".encode()


class Grouping:
    """Buffers, releases and state of one k-plan route (all its assigned partitions)."""

    def __init__(
        self,
        flow: SanitizeFlow,
        state: StateTopic,
    ) -> None:
        spec = flow.anonymity
        assert spec is not None
        self.flow, self.spec, self.state = flow, spec, state
        self.topic = flow.topology.source.topic
        self.state_topic, self.n_state, self.eos = state.name, max(1, state.partitions), state.eos
        over = flow.topology.anonymity
        delay = spec.privacy.max_delay_ms
        if over.max_delay_ms is not None:
            delay = min(delay, over.max_delay_ms)
        self.max_delay_ms = delay
        self.max_buffered = over.max_buffered
        self.groups: dict[int, PartitionGroups] = {}
        self.next_offset: dict[int, int] = {}
        self.sent: dict[int, int] = {}  # the commit offset last handed to the hot path
        self.released = 0
        self.ncp_sum = [0.0] * len(spec.fields)

    def _anonymizer(self) -> StreamAnonymizer:
        s = self.spec
        return StreamAnonymizer(
            s.ladders, k=s.k, l=s.l, max_delay_ms=self.max_delay_ms, max_buffered=self.max_buffered
        )

    # --- ownership -------------------------------------------------------------------------

    def load(self, committed: dict[int, int]) -> None:
        """Adopt partitions at their committed offsets (a negative one: none committed yet),
        with the pins and published combinations the state topic holds for them."""
        if not committed:
            return
        messages = self._read_state(committed)
        for p, c in committed.items():
            state = partition_state(p, messages.get(p % self.n_state, []), max(c, 0))
            self.groups[p] = PartitionGroups(
                self._anonymizer(), p, skip_pinned=self.eos, state=state
            )
            self.next_offset.pop(p, None)
            self.sent[p] = c
        log.info(
            "topology %s: k-anonymity state loaded for partitions %s (%d pins)",
            self.flow.topology.name,
            ",".join(map(str, sorted(committed))),
            sum(self.groups[p].pinned for p in committed),
        )

    def drop(self, partitions: Sequence[int]) -> None:
        """Forget partitions (revoked, lost, or before a rewind reloads them)."""
        for p in partitions:
            self.groups.pop(p, None)
            self.next_offset.pop(p, None)
            self.sent.pop(p, None)

    def _read_state(self, committed: dict[int, int]) -> dict[int, list[tuple[bytes, Any]]]:
        """Every message of the state partitions the ``committed`` partitions map to, read
        until each partition's ``cmt`` marker shows its committed offset (exactly_once)."""
        return self.state.read(committed, b"cmt/", f"topology {self.flow.topology.name}")

    # --- the data path ---------------------------------------------------------------------

    def take(self, items: Sequence[Item], now_ms: int) -> list[tuple[Item, Outcome]]:
        """Prepare and buffer ``items``; what must be produced now (dead letters, and under
        at_least_once re-reads released again at their pins)."""
        ready: list[tuple[Item, Outcome]] = []
        prepare = self.flow.prepare
        for item in items:
            value, key, topic, p, o, ts = item
            self.next_offset[p] = o + 1
            out = prepare(value, key=key, topic=topic, partition=p, offset=o, timestamp_ms=ts)
            groups = self.groups.get(p)
            if groups is None:  # not assigned through on_assign (should not happen)
                groups = self.groups[p] = PartitionGroups(
                    self._anonymizer(), p, skip_pinned=self.eos
                )
            if isinstance(out, DeadLetter):
                if groups.dead(o):
                    ready.append((item, out))
                continue
            got = groups.offer(out, now_ms)
            if isinstance(got, Release):
                ready.append((item, self.flow.finish(out, got.values)))
        return ready

    def due(self, now_ms: int) -> bool:
        for g in self.groups.values():
            d = g.next_deadline()
            if d is not None and d <= now_ms:
                return True
        return False

    def release(
        self, now_ms: int
    ) -> tuple[list[tuple[Item, Outcome, Release]], list[tuple[int, bytes, bytes]]]:
        """The rows whose groups are decided at ``now_ms`` and the pin messages
        ``(state partition, key, value)`` that must be durable no later than those rows."""
        rows: list[tuple[Item, Outcome, Release]] = []
        pins: list[tuple[int, bytes, bytes]] = []
        finish = self.flow.finish
        for p, g in self.groups.items():
            pairs = g.poll(now_ms)
            for rec, rel in pairs:
                rows.append((_item(rec), finish(rec, rel.values), rel))
                self.ncp_sum = [a + b for a, b in zip(self.ncp_sum, rel.ncp, strict=True)]
            self.released += len(pairs)
            # Also the pins of dead letters produced since the last call.
            pins.extend((p % self.n_state, key, value) for key, value in g.pin_messages())
        return rows, pins

    def offsets(self, *, every: bool = False) -> dict[int, int]:
        """Partitions whose commit offset moved since it was last handed out (``every``: all
        read ones, so that a transaction with rows in it commits), and where to."""
        out = {}
        for p, g in self.groups.items():
            nxt = self.next_offset.get(p)
            if nxt is None:
                continue
            off = g.commit_offset(nxt)
            if every or off != self.sent.get(p):
                out[p] = self.sent[p] = off
        return out

    def at_commit(self, offsets: dict[int, int]) -> list[tuple[int, bytes, bytes | None]]:
        """State messages of a commit at ``offsets`` (source partition -> offset): pins that
        fell below it retire (tombstones), the published combinations, and under
        exactly_once the commit marker. Under at_least_once call it after the commit."""
        out: list[tuple[int, bytes, bytes | None]] = []
        for p, off in offsets.items():
            g = self.groups.get(p)
            if g is None:
                continue
            sp = p % self.n_state
            out.extend((sp, k, v) for k, v in g.state_messages(off))
            if self.eos:
                out.append((sp, commit_key(p), str(off).encode()))
        return out

    @property
    def buffered(self) -> int:
        return sum(g.buffered for g in self.groups.values())

    def information_loss(self) -> dict[str, float]:
        """Mean NCP per ladder field over the rows this process released (0 = exact)."""
        n = self.released or 1
        return {f: s / n for f, s in zip(self.spec.fields, self.ncp_sum, strict=True)}


def _item(rec: Prepared) -> Item:
    return (None, None, rec.topic, rec.partition, rec.offset, rec.timestamp_ms)
