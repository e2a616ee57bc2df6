"""Mutation corpus: every kind of tampering is detected and classified; no false alarms.

A closed trail is built once per module; each mutation (``streamproc.testing.tamper``) is
applied at seeded random positions and the report must contain the expected classification
at the expected place, and nothing unrelated. Records are parsed once and reused, so each run
costs only the analysis (the parser is tested on its own, and the intact trail is verified
from raw bytes end to end).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import pytest

from streamproc.audit import AuditLog, CheckpointSigner, TrustedKeys, verify_records
from streamproc.audit.encoding import MalformedRecord, parse_record
from streamproc.audit.verify import Parsed, Report, analyse
from streamproc.testing.tamper import MUTATIONS, Trail

from .conftest import FakeClock, MemorySink, write_trail

BIG = 100_000
BIG_EVERY = 1000
BIG_POSITIONS = 5  # random positions per mutation kind on the 100k trail
SMALL = 1_000
SMALL_EVERY = 20
SMALL_POSITIONS = 30


def _parse(raw: bytes) -> Parsed:
    try:
        return parse_record(raw)
    except MalformedRecord as exc:
        return exc


class Corpus:
    def __init__(self, n: int, every: int, signer: CheckpointSigner) -> None:
        sink = MemorySink()
        log = AuditLog(sink, signer, checkpoint_every=every, clock=FakeClock())
        write_trail(log, n)
        log.close()
        self.trail = Trail(sink.records)
        self.trusted = TrustedKeys.of([signer.public_key])
        self.cache: dict[bytes, Parsed] = {r: parse_record(r) for r in sink.records}

    def verify(self, records: Sequence[bytes], anchor: tuple[int, str] | None = None) -> Report:
        get = self.cache.get
        parsed = [(pos, get(raw) or _parse(raw)) for pos, raw in enumerate(records, 1)]
        return analyse(parsed, self.trusted, anchor=anchor)

    def run(self, name: str, positions: int) -> list[str]:
        failures = []
        for k in range(positions):
            rng = random.Random(f"{name}/{k}")
            records, expect = MUTATIONS[name](self.trail, rng)
            why = expect.judge(self.verify(records, expect.anchor))
            if why is not None:
                failures.append(f"{name} #{k}: {why}")
        return failures


@pytest.fixture(scope="module")
def big(signer: CheckpointSigner) -> Corpus:
    return Corpus(BIG, BIG_EVERY, signer)


@pytest.fixture(scope="module")
def small(signer: CheckpointSigner) -> Corpus:
    return Corpus(SMALL, SMALL_EVERY, signer)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_small_trail_mutations_are_detected_and_classified(small: Corpus, name: str) -> None:
    assert small.run(name, SMALL_POSITIONS) == []


def _no_false_alarms(c: Corpus, cuts: int) -> None:
    """Every prefix of a trail is a legitimate trail state (a writer still running)."""
    rng = random.Random("prefixes")
    checkpoints = set(c.trail.checkpoints)
    for cut in [len(c.trail.records)] + [
        rng.randrange(1, len(c.trail.records)) for _ in range(cuts)
    ]:
        report = c.verify(c.trail.records[:cut])
        assert report.findings == [], (cut, report.render())
        assert (report.unsigned is None) == (cut - 1 in checkpoints), cut


def test_small_trail_prefixes_raise_no_false_alarm(small: Corpus) -> None:
    _no_false_alarms(small, 200)


@pytest.mark.slow
def test_big_intact_trail_verifies_from_bytes(big: Corpus) -> None:
    t0 = time.perf_counter()
    report = verify_records(enumerate(big.trail.records, 1), big.trusted, source="100k")
    took = time.perf_counter() - t0
    assert report.ok and report.unsigned is None, report.render()
    assert (report.entries, report.checkpoints, report.head_seq) == (BIG, BIG // BIG_EVERY, BIG - 1)
    print(f"\nverified {BIG} entries in {took:.2f} s ({BIG / took:,.0f} entries/s)")


@pytest.mark.slow
def test_big_trail_prefixes_raise_no_false_alarm(big: Corpus) -> None:
    _no_false_alarms(big, 10)


@pytest.mark.slow
def test_big_trail_mutation_corpus(big: Corpus) -> None:
    failures: list[str] = []
    for name in sorted(MUTATIONS):
        failures += big.run(name, BIG_POSITIONS)
    print(
        f"\n{len(MUTATIONS)} mutation kinds x {BIG_POSITIONS} positions on {BIG} entries: "
        f"{len(MUTATIONS) * BIG_POSITIONS - len(failures)} detected and classified"
    )
    assert failures == []
