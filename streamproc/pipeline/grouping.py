"""Delay-bounded k-anonymity in the worker: one source partition's buffer, pins and commit point.

A record of a k-plan cannot be produced when it is read: its ladder fields wait for a group
(:class:`~streamproc.anonymity.StreamAnonymizer`). :class:`PartitionGroups` holds, for one
source partition, the anonymizer, the prepared records it buffers (sanitized, ladder fields
PENDING, in memory only) and the *pins* of records released but not yet committed past.

Why pins. The worker commits a partition at its oldest buffered offset (everything after it
is read again after a crash or a rebalance), so records released *after* that offset are read
again too. A pin is what a release chose (levels and cells, output values only); pins go to
the worker's state topic, keyed per partition, before or with the rows they describe:

- ``exactly_once``: pins, rows and source offsets commit in one transaction; a re-read record
  that has a pin was produced and committed, so it is skipped (never produced twice).
- ``at_least_once``: pins are acknowledged before their rows are produced; a re-read record
  with a pin is released again at the pinned cells (a duplicate row with identical values:
  nothing for a consumer to intersect). Without a pin its row was never produced.

Either way every released combination keeps >= k records with >= l sensitive values, and no
source offset is lost. Nothing here touches Kafka; the hot path does
(:mod:`streamproc.runtime.hotpath`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from streamproc.anonymity import Release, StreamAnonymizer
from streamproc.pipeline.outcome import Headers

#: The pin of a dead-lettered record (its outcome was produced at once, not grouped).
DEAD_PIN: dict[str, Any] = {"dead": True}
#: Pins per state message (a pin is ~100 bytes of JSON; Kafka's default limit is 1 MB).
PINS_PER_MESSAGE = 2000
#: Published combinations are written at most this often (losing them only costs reuse).
PUBLISHED_EVERY_S = 10.0
#: A published snapshot larger than this is not written (Kafka's default message limit).
PUBLISHED_MAX_BYTES = 900_000


@dataclass(slots=True)
class Prepared:
    """A record sanitized except for its ladder fields, waiting for its group (memory only).

    ``value`` and ``source_key`` are the raw source payload and key, kept so that a record
    whose generalized form fails to encode is dead-lettered sealed like any other; they
    never leave the process in clear. ``key`` is the pseudonymized key the row is sent with.
    """

    key: bytes | None
    value: bytes | None
    clean: dict[str, Any]
    headers: Headers
    fingerprint: int
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    qi: tuple[Any, ...]
    sensitive: tuple[Hashable, ...]
    source_key: bytes | None = None


def pin_key(partition: int, first: int) -> bytes:
    """The state-topic key of a batch of pins (unique per write, so replays never collide)."""
    return f"pin/{partition}/{first}/{time.time_ns()}".encode()


def published_key(partition: int) -> bytes:
    return f"pub/{partition}".encode()


@dataclass(frozen=True)
class PartitionState:
    """What the state topic holds for one partition: pins at or above the committed offset,
    the keys of the pin batches still live (with their highest offset) and the published
    combinations' snapshot."""

    pins: dict[int, dict[str, Any]]
    batches: dict[bytes, int]
    published: dict[str, Any] | None = None


def read_state(
    partition: int, messages: Iterable[tuple[bytes, bytes | None]], committed: int
) -> PartitionState:
    """Fold a partition's state messages (oldest first; None is a tombstone) into its state.

    Pins below ``committed`` are dropped (their records are never read again); a message
    that does not parse is ignored, which can only cost a re-grouping, never a guarantee:
    under exactly_once a pin's transaction committed its rows too, and an unreadable pin is
    treated as if its rows were not produced only by at_least_once (a duplicate)."""
    live: dict[bytes, bytes] = {}
    published: dict[str, Any] | None = None
    prefix = f"pin/{partition}/".encode()
    for key, value in messages:
        if key == published_key(partition):
            if value is not None:
                try:
                    published = json.loads(value)
                except ValueError:
                    published = None
            continue
        if not key.startswith(prefix):
            continue
        if value is None:
            live.pop(key, None)
        else:
            live[key] = value
    pins: dict[int, dict[str, Any]] = {}
    batches: dict[bytes, int] = {}
    for key, value in live.items():
        try:
            doc = json.loads(value)
            batch = {int(o): p for o, p in doc["pins"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        kept = {o: p for o, p in batch.items() if o >= committed}
        if batch:
            batches[key] = max(batch)
        pins.update(kept)
    return PartitionState(pins, batches, published)


class PartitionGroups:
    """One source partition's k-anonymity state in the worker (see the module docstring).

    ``skip_pinned``: True under exactly_once (a pinned re-read was committed: skip it),
    False under at_least_once (release it again at its pin).
    """

    def __init__(
        self,
        anonymizer: StreamAnonymizer,
        partition: int,
        *,
        skip_pinned: bool,
        state: PartitionState | None = None,
    ) -> None:
        self.anon = anonymizer
        self.partition = partition
        self.skip_pinned = skip_pinned
        state = state or PartitionState({}, {})
        self._pins = dict(state.pins)  # offset -> pin, read from the state topic
        self._batches = dict(state.batches)  # state key -> highest offset in it
        self._new_pins: dict[int, dict[str, Any]] = {}
        self._held: dict[int, Prepared] = {}  # offset order (records arrive in order)
        self._published_at = 0.0
        self._published_dirty = False
        if state.published is not None:
            anonymizer.restore(state.published)
        self.skipped = 0
        self.replayed = 0

    # --- records in and out --------------------------------------------------------------

    def offer(self, rec: Prepared, now_ms: int) -> Release | bool:
        """Take one prepared record: True if buffered, False if skipped (pinned and already
        committed), or a :class:`Release` to produce at once (a pinned at-least-once replay)."""
        pin = self._pins.pop(rec.offset, None)
        if pin is not None:
            if self.skip_pinned:
                self.skipped += 1
                return False
            rel = self.anon.replay(
                rec.offset, rec.qi, rec.sensitive, pin=pin, arrival_ms=now_ms, now_ms=now_ms
            )
            if rel is not None:
                self.replayed += 1
                return rel
        else:
            self.anon.add(rec.offset, rec.qi, rec.sensitive, arrival_ms=now_ms)
        self._held[rec.offset] = rec
        return True

    def dead(self, offset: int) -> bool:
        """A record of this partition became a dead letter: True to produce it (and pin it,
        so that a re-read above the commit is not dead-lettered twice), False to skip it
        (exactly_once: pinned, so its dead letter was committed)."""
        pin = self._pins.pop(offset, None)
        if pin is not None and self.skip_pinned:
            self.skipped += 1
            return False
        if pin is None:
            self._new_pins[offset] = DEAD_PIN
        return True

    def poll(self, now_ms: int) -> list[tuple[Prepared, Release]]:
        """The records whose groups are decided at ``now_ms``; their pins become pending."""
        out = []
        for rel in self.anon.poll(now_ms):
            offset = rel.item_id
            assert isinstance(offset, int)
            out.append((self._held.pop(offset), rel))
            self._new_pins[offset] = rel.pin()
            if not rel.reused and not rel.suppressed:
                self._published_dirty = True
        return out

    def next_deadline(self) -> int | None:
        return self.anon.next_deadline()

    @property
    def buffered(self) -> int:
        return len(self._held)

    @property
    def pinned(self) -> int:
        """Pins read from the state topic not yet met again (re-reads still to come)."""
        return len(self._pins)

    def commit_offset(self, next_offset: int) -> int:
        """Where this partition may be committed: its oldest buffered offset, else
        ``next_offset`` (one past the last record read)."""
        for offset in self._held:
            return min(offset, next_offset)
        return next_offset

    # --- state messages ------------------------------------------------------------------

    def has_new_pins(self) -> bool:
        return bool(self._new_pins)

    def pin_messages(self) -> list[tuple[bytes, bytes]]:
        """The pins released since the last call, as state messages of at most
        PINS_PER_MESSAGE pins each (a flush of a large buffer stays under Kafka's limit)."""
        if not self._new_pins:
            return []
        pins, self._new_pins = self._new_pins, {}
        offsets = sorted(pins)
        out = []
        for i in range(0, len(offsets), PINS_PER_MESSAGE):
            chunk = offsets[i : i + PINS_PER_MESSAGE]
            key = pin_key(self.partition, chunk[0])
            self._batches[key] = chunk[-1]
            body = {"pins": {str(o): pins[o] for o in chunk}}
            out.append((key, json.dumps(body, separators=(",", ":")).encode()))
        return out

    def state_messages(
        self, committed: int, *, now_s: float | None = None
    ) -> list[tuple[bytes, bytes | None]]:
        """At a commit at ``committed``: tombstones for pin batches wholly below it, and the
        published combinations when they changed (at most every PUBLISHED_EVERY_S)."""
        out: list[tuple[bytes, bytes | None]] = []
        for key, top in list(self._batches.items()):
            if top < committed:
                del self._batches[key]
                out.append((key, None))
        for offset in [o for o in self._pins if o < committed]:
            del self._pins[offset]
        now_s = time.monotonic() if now_s is None else now_s
        if self._published_dirty and now_s - self._published_at >= PUBLISHED_EVERY_S:
            body = json.dumps(self.anon.snapshot(), separators=(",", ":")).encode()
            self._published_at, self._published_dirty = now_s, False
            if len(body) <= PUBLISHED_MAX_BYTES:
                out.append((published_key(self.partition), body))
        return out
