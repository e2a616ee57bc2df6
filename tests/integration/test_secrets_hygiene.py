"""No key material anywhere a worker writes: logs, metrics, sanitized and dead-letter topics,
lineage, the audit trail. Scanned for every key version and every derived sub-key, in every
encoding the code uses (raw, hex, base64, URL-safe base64, with and without padding)."""

from __future__ import annotations

import base64
import random
import urllib.request
from pathlib import Path

import pytest

from streamproc.cli.main import main
from streamproc.config import Settings
from streamproc.keys import Keyring
from streamproc.keys.keyring import SUBKEY_BYTES
from streamproc.policy import compile_plan
from streamproc.testing.customers import bad_payloads, customer_record, single_object
from tests.integration.kafka_io import drain, produce
from tests.integration.test_sanitize_pipeline import SCHEMA, free_port, write_topology

pytestmark = pytest.mark.integration


def encodings(secret: bytes) -> set[bytes]:
    forms = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(enc(secret))
        forms.add(enc(secret).rstrip(b"="))
    # A secret may also surface in pieces; 16-byte windows of each form still identify it.
    return {f for f in forms if len(f) >= 16}


def key_material(keyring: Keyring) -> list[bytes]:
    secrets = []
    for name in keyring.names():
        for version in keyring.versions(name):
            secrets.append(keyring._keys[name][version].material)  # test-only peek
            for purpose in SUBKEY_BYTES:
                secrets.append(keyring.subkey(name, purpose, version)[1])
    return secrets


def test_settings_never_print_secrets() -> None:
    s = Settings(
        security_protocol="SASL_PLAINTEXT", sasl_username="svc", sasl_password="hunter2-very-secret"
    )
    assert "hunter2-very-secret" not in repr(s) and "hunter2-very-secret" not in str(s)
    assert "hunter2-very-secret" not in s.model_dump_json()
    # Only the client configuration handed to librdkafka carries it.
    assert s.kafka_config()["sasl.password"] == "hunter2-very-secret"


def test_no_key_material_in_anything_the_worker_writes(
    kafka_bootstrap, make_topic, worker_factory, tmp_path: Path
) -> None:
    source = make_topic("customers.raw", partitions=3)
    sink, dlq, lineage = make_topic("clean", 3), make_topic("dlq", 3), make_topic("lineage")
    keyring = Keyring.generate()
    keyring.rotate("default")
    kr_path = tmp_path / "keyring.json"
    keyring.save(kr_path)
    topo = write_topology(tmp_path, source, sink, dlq, lineage)
    assert main(["audit", "keygen", "--out", str(tmp_path / "audit")]) == 0
    audit_file = tmp_path / "audit.jsonl"
    port = free_port()
    worker = worker_factory(
        "--topology",
        str(topo),
        "--keyring",
        str(kr_path),
        "--app-id",
        f"hyg-{source}",
        "--metrics-port",
        str(port),
        "--loglevel",
        "debug",
        env={
            "STREAMPROC_AUDIT_SIGNING_KEY": str(tmp_path / "audit" / "audit-signing.pem"),
            "STREAMPROC_AUDIT_FILE": str(audit_file),
        },
    )
    schema = compile_plan(SCHEMA, keyring).source_schema
    rng = random.Random(12)
    good = [customer_record(i, rng) for i in range(300)]
    bad = [p for _, p in bad_payloads(schema, good[0], max_record_bytes=64 * 1024)]
    produce(kafka_bootstrap, source, [single_object(schema, r) for r in good] + bad)
    out = drain(kafka_bootstrap, sink, expect=len(good), timeout=60)
    dead = drain(kafka_bootstrap, dlq, expect=len(bad), timeout=60)
    lin = drain(kafka_bootstrap, lineage, expect=1, timeout=30)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    worker.stop()
    assert len(out) == len(good) and len(dead) == len(bad)

    def blob(msgs) -> bytes:
        return b"\n".join(
            (m.key() or b"") + (m.value() or b"") + b"".join(v for _, v in (m.headers() or []))
            for m in msgs
        )

    places = {
        "worker log": worker.log_text().encode(),
        "metrics": metrics,
        "sanitized topic": blob(out),
        "dead-letter topic": blob(dead),
        "lineage": blob(lin),
        "audit trail": audit_file.read_bytes(),
    }
    forms = set().union(*(encodings(s) for s in key_material(keyring)))
    assert len(forms) > 100
    for where, data in places.items():
        assert data, where
        for form in forms:
            assert form not in data, f"key material found in the {where}"
