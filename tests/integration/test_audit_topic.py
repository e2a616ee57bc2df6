"""The audit trail on a real Kafka topic: write, resume, verify, detect a forged append."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from streamproc.audit import (
    AuditKind,
    AuditLog,
    CheckpointSigner,
    KafkaSink,
    TrustedKeys,
    create_audit_topic,
    read_topic,
    verify_records,
)
from streamproc.audit.verify import FindingKind
from streamproc.cli.main import main
from streamproc.errors import AuditError

pytestmark = pytest.mark.integration

DLQ = {"reason": "decode_error", "topic": "orders.raw", "partition": 0}


def test_topic_trail_resumes_and_verifies(
    kafka_bootstrap: str, unique_topic: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    signer = CheckpointSigner.generate()
    trusted = TrustedKeys.of([signer.public_key])
    assert create_audit_topic(conf, unique_topic) is False  # the fixture made it already

    with AuditLog(KafkaSink(unique_topic, conf), signer, checkpoint_every=100) as log:
        for i in range(250):
            log.append(AuditKind.DEAD_LETTER, **DLQ, offset=i)
    # a restarted writer reads the tail back from the topic and continues the chain
    log = AuditLog(KafkaSink(unique_topic, conf), signer, checkpoint_every=100)
    assert log.head[0] == 249
    log.append(AuditKind.WORKER_STOP, worker="w-1", reason="test")
    log.close()

    records = list(read_topic(unique_topic, conf))
    assert [off for off, _ in records] == list(range(len(records)))
    report = verify_records(records, trusted, source=unique_topic, unit="offset")
    assert report.ok and report.unsigned is None, report.render()
    assert (report.entries, report.checkpoints, report.head_seq) == (251, 4, 250)
    pub = tmp_path / "audit.pub.pem"
    pub.write_bytes(signer.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    cli = ["audit", "verify", "--topic", unique_topic, "--broker", kafka_bootstrap]
    assert main([*cli, "--public-key", str(pub)]) == 0
    assert "entries: 251" in capsys.readouterr().out

    # Anyone with write access can append, but not sign: a forged entry is caught.
    forged = records[5][1].replace(b'"offset":5', b'"offset":6')
    p = Producer(conf)
    p.produce(unique_topic, forged, partition=0)
    p.flush(10)
    report = verify_records(read_topic(unique_topic, conf), trusted, unit="offset")
    assert [(f.kind, f.positions) for f in report.findings] == [
        (FindingKind.INSERTED, (len(records),))
    ], report.render()


def test_multi_partition_topic_is_refused(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=3)
    with pytest.raises(AuditError, match="exactly one"):
        KafkaSink(topic, {"bootstrap.servers": kafka_bootstrap})
