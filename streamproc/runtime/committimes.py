"""Where an exactly-once commit's time goes, part by part.

A read_committed consumer sees a record once its transaction commits, so under exactly_once
the commit's duration is part of every record's latency (docs/delivery.md, "What a commit
costs"). The hot path times each part of every commit (``send_offsets_to_transaction``, the
flush of the transaction's records, ``commit_transaction``; under at_least_once the flush and
the offset commit), exports them as the histogram ``streamproc_commit_seconds{part}`` and
logs a summary when it stops; ``load/bench_peer.py`` reads that line back for its ceiling
comparison.

>>> t = CommitTimes()
>>> t.add("flush", 0.004)
>>> t.add("flush", 0.002)
>>> t.summary()
'commit parts (ms, n=2): flush p50 4.0 p99 4.0 max 4.0'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The parts of one commit, in call order (exactly_once: send_offsets, flush, commit_txn;
# at_least_once: flush, commit_offsets), its total, then the sanitize + produce of one
# fetched batch (``batch``, the hot path's other stall); a summary lists them in this order.
PARTS = ("send_offsets", "flush", "commit_txn", "commit_offsets", "total", "batch")
# Samples kept per part: a 20 ms interval makes ~50 commits/s, so a few minutes of them.
MAX_SAMPLES = 20_000


@dataclass
class CommitTimes:
    """Seconds per commit part: every one into ``histogram`` (a Prometheus histogram with
    a ``part`` label, when given), the first :data:`MAX_SAMPLES` of each kept for the
    summary."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    histogram: Any = None
    _children: dict[str, Any] = field(default_factory=dict, repr=False)

    def add(self, part: str, seconds: float) -> None:
        """Record one duration of ``part`` (samples past the cap are dropped, not rotated:
        the summary is for benchmarks, which run minutes; the histogram counts them all)."""
        if self.histogram is not None:
            child = self._children.get(part)
            if child is None:
                child = self._children[part] = self.histogram.labels(part)
            child.observe(seconds)
        kept = self.samples.setdefault(part, [])
        if len(kept) < MAX_SAMPLES:
            kept.append(seconds)

    def summary(self) -> str:
        """One line: p50/p99/max in ms per part, known parts first."""
        order = [p for p in PARTS if p in self.samples]
        order += sorted(p for p in self.samples if p not in PARTS)
        if not order:
            return "commit parts: none"
        n = max(len(self.samples[p]) for p in order)
        parts = []
        for part in order:
            xs = sorted(self.samples[part])
            p50 = xs[len(xs) // 2] * 1000
            p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000
            parts.append(f"{part} p50 {p50:.1f} p99 {p99:.1f} max {xs[-1] * 1000:.1f}")
        return f"commit parts (ms, n={n}): " + ", ".join(parts)
