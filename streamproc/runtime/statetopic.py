"""Reading a worker's compacted state topic when it adopts source partitions.

The k-anonymity buffers (:mod:`streamproc.runtime.grouped`), the DP budget ledger
(:mod:`streamproc.runtime.budgeted`) and the detector's principal states
(:mod:`streamproc.runtime.detecthot`, at_least_once, no markers) keep their state in a
compacted topic with as many partitions as the source; source partition ``p`` keeps its
state in state partition ``p % n``. Under exactly_once each transaction also writes a commit marker
(``<prefix><p>`` -> the source offset it committed): a new owner reads until every marker
has reached the group's committed offset, since a transaction's markers can become readable
a moment after its offsets are visible to the group.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streamproc.errors import StreamprocError

log = logging.getLogger("streamproc.runtime.statetopic")

# How long a new owner waits for the state of the last committed transaction to be readable.
STATE_READ_TIMEOUT_S = 60.0

# Compacted, and compacted soon (a new owner reads them whole).
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "60000",
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": "60000",
}


class StateTopicError(StreamprocError):
    """A state topic could not be read (the worker exits and is restarted)."""


def marks_caught_up(eos: bool, committed: dict[int, int], marks: dict[int, int]) -> bool:
    """Whether the markers read show every ``committed`` offset (always, at_least_once).
    A partition without a marker never committed a transaction with this state in it."""
    if not eos:
        return True
    return all(marks.get(p, c) >= c for p, c in committed.items() if c >= 0)


def read_state(
    conf: dict[str, Any],
    group: str,
    topic: str,
    state_partitions: list[int],
    marker: bytes,
    caught_up: Callable[[dict[int, int]], bool],
    what: str,
) -> dict[int, list[tuple[bytes, Any]]]:
    """Every message of ``state_partitions``, read committed from the beginning, until all
    are at their end and ``caught_up(marks)`` (source partition -> offset of its newest
    ``marker`` message; ``b""``: no markers) holds; ``what`` names the owner in log lines."""
    reader = Consumer(
        {
            **conf,
            # The hot path's group (the ACL plan grants it READ): an assign()-only consumer
            # neither joins it nor commits to it.
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    wanted = sorted(set(state_partitions))
    out: dict[int, list[tuple[bytes, Any]]] = {sp: [] for sp in wanted}
    n = len(marker)
    try:
        reader.assign([TopicPartition(topic, sp, OFFSET_BEGINNING) for sp in wanted])
        marks: dict[int, int] = {}
        at_eof: set[int] = set()
        deadline = time.monotonic() + STATE_READ_TIMEOUT_S
        while True:
            msg: Any
            for msg in reader.consume(1000, 0.2):
                m = msg  # Message accessors are typed Optional; these are set
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_eof.add(m.partition())
                        continue
                    if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        return out  # no state yet
                    raise StateTopicError(f"reading {topic}: {err.name()}")
                at_eof.discard(m.partition())
                key, value = m.key() or b"", m.value()
                out[m.partition()].append((key, value))
                if marker and key.startswith(marker) and value is not None:
                    marks[int(key[n:])] = int(value)
            if at_eof >= set(wanted) and caught_up(marks):
                return out
            if time.monotonic() > deadline:
                if at_eof >= set(wanted):
                    log.warning(
                        "%s: the state of the last transaction did not show within %.0f s; "
                        "going on with what is there",
                        what,
                        STATE_READ_TIMEOUT_S,
                    )
                    return out
                raise StateTopicError(f"reading {topic}: timed out")
    finally:
        reader.close()


@dataclass(frozen=True)
class StateTopic:
    """One route's state topic: its name and partition count, and how it is read."""

    name: str
    partitions: int
    eos: bool
    conf: dict[str, Any]
    group: str  # the hot path's (an assign()-only reader neither joins nor commits)

    def of(self, source_partition: int) -> int:
        """The state partition of a source partition."""
        return source_partition % max(1, self.partitions)

    def read(
        self, committed: dict[int, int], marker: bytes, what: str
    ) -> dict[int, list[tuple[bytes, Any]]]:
        """The state of the ``committed`` source partitions (see :func:`read_state`)."""
        return read_state(
            self.conf,
            self.group,
            self.name,
            [self.of(p) for p in committed],
            marker,
            lambda marks: marks_caught_up(self.eos, committed, marks),
            what,
        )
