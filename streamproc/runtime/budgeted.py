"""The DP budget side of a hot-path route: the ledger's state in a compacted topic.

A route whose plan budgets noise per subject (``plan.budget``) charges its ledger in the
hot path's process (a budgeted route is never offloaded: one ledger per worker). The ledger
is *keyed*: a record is charged within its source partition and only if its Kafka key is
its subject, so every subject's state belongs to one partition and moves with it.

The state topic ``<app id>-<topology>-budget`` (compacted, as many partitions as the
source) holds, per source partition ``p``, one message per subject, ``bud/<p>/<pseudonym
hex>`` -> the ledger's snapshot of it (account names, event times, nano-epsilons and the
last noisy value: pseudonymous, never a raw value), ``bwm/<p>`` the partition's event-time
watermark, and under exactly_once ``bcmt/<p>``, the offset each transaction committed.
Subjects idle for two windows of the partition's event time are tombstoned (once a minute),
so the state holds the subjects that can still matter, not every subject ever seen.

The rule that keeps the budget: a noisy value is never visible before the charge behind it
is durable. exactly_once: snapshots, rows and offsets commit in one transaction.
at_least_once: the snapshots of a batch are acknowledged before its rows are sent, so a
record read again after a crash is charged again (the ledger over-counts, never
under-counts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from streamproc.budget import BudgetError
from streamproc.budget.ledger import FUTURE_TOLERANCE_MS
from streamproc.pipeline import SanitizeFlow
from streamproc.runtime.statetopic import StateTopic, StateTopicError

log = logging.getLogger("streamproc.runtime.budgeted")

MARKER = b"bcmt/"
SWEEP_S = 60.0  # how often idle subjects are looked for


def budget_topic_name(app_id: str, topology: str) -> str:
    return f"{app_id}-{topology}-budget"


def watermark_key(partition: int) -> bytes:
    return b"bwm/%d" % partition


def subject_state_key(partition: int, pseudonym: bytes) -> bytes:
    return b"bud/%d/%s" % (partition, pseudonym.hex().encode())


class BudgetState:
    """The keyed ledger of one budgeted route and its state topic."""

    def __init__(
        self,
        flow: SanitizeFlow,
        state: StateTopic,
    ) -> None:
        ledger = flow.budget
        assert ledger is not None
        ledger.keyed()
        self.flow, self.ledger, self.state = flow, ledger, state
        self.topic = flow.topology.source.topic
        self.state_topic, self.n_state, self.eos = state.name, max(1, state.partitions), state.eos
        self.owned: set[int] = set()
        self._wm_sent: dict[int, int] = {}
        self._swept = time.monotonic()
        self._future_seen = 0

    def load(self, committed: dict[int, int]) -> None:
        """Adopt partitions at their committed offsets with their subjects' state (replacing
        whatever this process held for them)."""
        if not committed:
            return
        self.drop(list(committed))
        what = f"topology {self.flow.topology.name}"
        messages = self.state.read(committed, MARKER, what)
        n = 0
        for p in committed:
            prefix = b"bud/%d/" % p
            wm_key = watermark_key(p)
            latest: dict[bytes, bytes | None] = {}
            for key, value in messages.get(p % self.n_state, []):
                if key.startswith(prefix):
                    latest[key] = value  # compaction keeps the last; so does this
                elif key == wm_key and value is not None:
                    self.ledger.restore_watermark(p, int(value))
                    self._wm_sent[p] = int(value)
            for key, value in latest.items():
                if value is None:
                    continue
                try:
                    pseudonym = bytes.fromhex(key[len(prefix) :].decode("ascii"))
                    self.ledger.restore(pseudonym, value, scope=p)
                except (ValueError, BudgetError):
                    # Fail closed: a budget that cannot be read cannot be honoured.
                    raise StateTopicError(
                        f"{what}: a DP budget snapshot in {self.state_topic} partition "
                        f"{p % self.n_state} cannot be restored"
                    ) from None
                n += 1
            self.owned.add(p)
        log.info(
            "%s: DP budget state loaded for partitions %s (%d subjects)",
            what,
            ",".join(map(str, sorted(committed))),
            n,
        )

    def drop(self, partitions: Sequence[int]) -> None:
        """Forget partitions' subjects (revoked, lost, or before a reload)."""
        gone = set(partitions)
        self.ledger.forget(self.ledger.held(gone))
        self.ledger.drop_watermarks(gone)
        for p in gone:
            self._wm_sent.pop(p, None)
        self.owned -= gone

    def dirty_messages(self) -> list[tuple[int, bytes, bytes | None]]:
        """``(state partition, key, snapshot)`` of every subject charged since the last call,
        the watermarks that moved, and (once a minute) tombstones of idle subjects."""
        out: list[tuple[int, bytes, bytes | None]] = []
        ledger = self.ledger
        for pseudonym in ledger.drain_dirty():
            p = ledger.home(pseudonym)
            if p is None:  # charged outside a partition (not keyed): nothing to persist
                continue
            key = subject_state_key(p, pseudonym)
            out.append((p % self.n_state, key, ledger.snapshot(pseudonym)))
        for p in self.owned:
            wm = ledger.watermark(p)
            if wm is not None and wm != self._wm_sent.get(p):
                out.append((p % self.n_state, watermark_key(p), str(wm).encode()))
                self._wm_sent[p] = wm
        if time.monotonic() - self._swept >= SWEEP_S:
            out += self.sweep()
        return out

    def sweep(self) -> list[tuple[int, bytes, bytes | None]]:
        """Forget the subjects that can no longer matter; their tombstones."""
        self._swept = time.monotonic()
        idle = self.ledger.expired(self.owned)
        self.ledger.forget([s for _, s in idle])
        out: list[tuple[int, bytes, bytes | None]] = [
            (p % self.n_state, subject_state_key(p, s), None) for p, s in idle
        ]
        if out:
            log.info(
                "topology %s: %d idle DP budget subjects expired", self.flow.topology.name, len(out)
            )
        future = self.ledger.future_refused
        if future > self._future_seen:
            log.warning(
                "topology %s: %d budgeted records stamped more than %d s after this worker's "
                "clock got no fresh noise (repeated or null); check the producers' clocks",
                self.flow.topology.name,
                future - self._future_seen,
                FUTURE_TOLERANCE_MS // 1000,
            )
            self._future_seen = future
        return out

    def at_commit(self, offsets: dict[int, int]) -> list[tuple[int, bytes, bytes]]:
        """exactly_once: the commit markers of a transaction committing ``offsets``."""
        if not self.eos:
            return []
        n = self.n_state
        return [(p % n, MARKER + str(p).encode(), str(o).encode()) for p, o in offsets.items()]
