"""AuditLog: chaining, checkpoint cadence, resume from the tail, failing closed."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

import pytest

from streamproc.audit import (
    AuditKind,
    AuditLog,
    CheckpointSigner,
    FileSink,
    TrustedKeys,
    read_file,
    verify_records,
)
from streamproc.audit.encoding import GENESIS, Checkpoint, Entry, parse_record
from streamproc.errors import AuditError

from .conftest import FakeClock, MemorySink, write_trail

DLQ = {"reason": "decode_error", "topic": "orders.raw", "partition": 0, "offset": 1}


def test_entries_chain_and_checkpoints_follow_the_cadence(signer: CheckpointSigner) -> None:
    sink = MemorySink()
    log = AuditLog(sink, signer, checkpoint_every=4, clock=FakeClock())
    write_trail(log, 10)
    log.close()
    recs = [parse_record(r) for r in sink.records]
    assert [type(r).__name__[0] for r in recs] == list("EEEECEEEECEEC")
    entries = [r for r in recs if isinstance(r, Entry)]
    assert [e.seq for e in entries] == list(range(10))
    assert entries[0].prev == GENESIS
    assert all(b.prev == a.hash for a, b in itertools.pairwise(entries))
    ckpts = [r for r in recs if isinstance(r, Checkpoint)]
    assert [(c.n, c.first, c.seq) for c in ckpts] == [(0, 0, 3), (1, 4, 7), (2, 8, 9)]
    assert ckpts[1].prev_ckpt == ckpts[0].hash and ckpts[1].prev_sig == ckpts[0].sig
    assert ckpts[2].head == entries[-1].hash
    assert sink.synced == [isinstance(r, Checkpoint) for r in recs]
    assert sink.closed


def test_time_based_checkpoint(signer: CheckpointSigner) -> None:
    clock = FakeClock(step=0.0)
    sink = MemorySink()
    log = AuditLog(sink, signer, checkpoint_every=1000, checkpoint_seconds=60, clock=clock)
    log.append(AuditKind.DEAD_LETTER, **DLQ)
    assert log.maybe_checkpoint() is None
    clock.t += 61
    c = log.maybe_checkpoint()
    assert c is not None and c.seq == 0
    clock.t += 61
    log.append(AuditKind.DEAD_LETTER, **DLQ)  # due: checkpointed right after the append
    assert log.last_checkpoint is not None and log.last_checkpoint.seq == 1


def test_file_trail_verifies_and_resumes(
    tmp_path: Path, signer: CheckpointSigner, trusted: TrustedKeys
) -> None:
    path = tmp_path / "audit" / "trail.jsonl"
    with AuditLog(FileSink(path), signer, checkpoint_every=7, clock=FakeClock()) as log:
        write_trail(log, 20)
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0
    # A restart continues the chain: new entries link to the old head, numbering goes on.
    log = AuditLog(FileSink(path), signer, checkpoint_every=7, clock=FakeClock())
    assert log.head[0] == 19 and log.last_checkpoint is not None
    write_trail(log, 5)
    log.close()
    report = verify_records(read_file(path), trusted, source=str(path))
    assert report.ok, report.render()
    assert (report.entries, report.head_seq, report.unsigned) == (25, 24, None)
    assert report.exit_code() == 0


def test_resume_from_an_unsigned_tail(tmp_path: Path, signer: CheckpointSigner) -> None:
    sink = MemorySink()
    log = AuditLog(sink, signer, checkpoint_every=5, clock=FakeClock())
    write_trail(log, 7)  # checkpoint after 5, two entries pending; process "crashes"
    log2 = AuditLog(MemorySink(sink.records), signer, checkpoint_every=5, clock=FakeClock())
    assert log2.head == log.head
    c = log2.checkpoint()
    assert c is not None and (c.first, c.seq) == (5, 6)


def test_resume_refuses_a_tampered_tail(signer: CheckpointSigner) -> None:
    sink = MemorySink()
    log = AuditLog(sink, signer, checkpoint_every=5, clock=FakeClock())
    write_trail(log, 8)
    sink.records[-2] = sink.records[-2].replace(b'"partition":0', b'"partition":1')
    with pytest.raises(AuditError, match="does not chain"):
        AuditLog(MemorySink(sink.records), signer)


def test_resume_refuses_a_checkpoint_from_another_key(signer: CheckpointSigner) -> None:
    sink = MemorySink()
    write_trail(AuditLog(sink, CheckpointSigner.generate(), checkpoint_every=2), 2)
    with pytest.raises(AuditError, match="trusted key"):
        AuditLog(MemorySink(sink.records), signer)


def test_partial_last_line_is_refused(tmp_path: Path, signer: CheckpointSigner) -> None:
    path = tmp_path / "t.jsonl"
    with AuditLog(FileSink(path), signer) as log:
        log.append(AuditKind.DEAD_LETTER, **DLQ)
    with open(path, "ab") as f:
        f.write(b'{"v":1,"type":"ent')
    with pytest.raises(AuditError, match="partial record"):
        AuditLog(FileSink(path), signer)


class FailingSink(MemorySink):
    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.fail_after = fail_after

    def write(self, record: bytes, *, checkpoint: bool) -> None:
        if len(self.records) >= self.fail_after:
            raise AuditError("disk full")
        super().write(record, checkpoint=checkpoint)


def test_a_failed_write_fails_closed(signer: CheckpointSigner) -> None:
    log = AuditLog(FailingSink(2), signer, checkpoint_every=100)
    log.append(AuditKind.DEAD_LETTER, **DLQ)
    log.append(AuditKind.DEAD_LETTER, **DLQ)
    with pytest.raises(AuditError, match="disk full"):
        log.append(AuditKind.DEAD_LETTER, **DLQ)
    with pytest.raises(AuditError, match="failed earlier"):
        log.append(AuditKind.DEAD_LETTER, **DLQ)
    assert log.head[0] == 1


def test_without_a_signer_the_trail_is_chained_but_unsigned(trusted: TrustedKeys) -> None:
    sink = MemorySink()
    with AuditLog(sink, None, checkpoint_every=2) as log:
        write_trail(log, 5)
    report = verify_records(enumerate(sink.records, 1), trusted)
    assert report.ok and report.unsigned is not None and report.unsigned.count == 5
    assert report.exit_code() == 3 and report.exit_code(allow_unsigned_tail=True) == 0


def test_fsync_policy(tmp_path: Path, signer: CheckpointSigner, monkeypatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    for policy, expected in (("always", 4 + 2), ("checkpoint", 2), ("never", 0)):
        calls.clear()
        log = AuditLog(
            FileSink(tmp_path / f"{policy}.jsonl", fsync=policy), signer, checkpoint_every=2
        )
        write_trail(log, 4)  # 4 entries, 2 checkpoints
        assert len(calls) == expected, policy
        log.close()


def test_concurrent_appends_keep_one_chain(signer: CheckpointSigner, trusted) -> None:
    import threading

    sink = MemorySink()
    log = AuditLog(sink, signer, checkpoint_every=50)
    threads = [threading.Thread(target=write_trail, args=(log, 200)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    report = verify_records(enumerate(sink.records, 1), trusted)
    assert report.ok and report.entries == 800 and report.unsigned is None


def test_append_once_writes_one_entry_per_source_coordinate_across_restarts(
    tmp_path: Path, signer: CheckpointSigner, trusted: TrustedKeys
) -> None:
    """A worker that writes dead-letter entries before its commit and, after a crash,
    processes the same records again, must not audit them twice (file sink: a restart
    reads the trail's end back)."""
    path = tmp_path / "trail.jsonl"
    log = AuditLog(FileSink(path), signer, checkpoint_every=3)
    for off in range(10):
        assert log.append_once(AuditKind.DEAD_LETTER, **{**DLQ, "offset": off}) is not None
    assert log.append_once(AuditKind.DEAD_LETTER, **{**DLQ, "offset": 4}) is None
    # Another partition, or another kind at the same coordinate, is not a duplicate.
    assert log.append_once(AuditKind.DEAD_LETTER, **{**DLQ, "partition": 1, "offset": 4})
    log.close()  # (a kill -9 leaves the same file minus the final checkpoint)

    again = AuditLog(FileSink(path), signer, checkpoint_every=3)
    written = [again.append_once(AuditKind.DEAD_LETTER, **{**DLQ, "offset": o}) for o in range(12)]
    assert [w is not None for w in written] == [False] * 10 + [True] * 2
    again.close()
    entries = [parse_record(r) for _, r in read_file(path)]
    coords = [(e.fields["partition"], e.fields["offset"]) for e in entries if isinstance(e, Entry)]
    assert len(coords) == len(set(coords)) == 13
    assert verify_records(read_file(path), trusted).ok


def test_append_once_forgets_beyond_its_window(signer: CheckpointSigner) -> None:
    sink = MemorySink()
    log = AuditLog(sink, signer, dedup_window=3)
    for off in range(5):
        log.append_once(AuditKind.DEAD_LETTER, **{**DLQ, "offset": off})
    assert log.append_once(AuditKind.DEAD_LETTER, **{**DLQ, "offset": 4}) is None
    assert log.append_once(AuditKind.DEAD_LETTER, **{**DLQ, "offset": 0}) is not None
    with pytest.raises(AuditError, match="needs topic, partition, offset"):
        log.append_once(AuditKind.REVEAL, who="User:a", why="case 1")
