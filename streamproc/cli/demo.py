"""``streamproc demo``: the main job end to end on a broker (``make demo``).

A producer writes realistic customer profiles (some of an older schema version, a few bad
payloads) to a raw topic; a real worker process sanitizes them; the summary shows records
in/out, dead letters by reason, and one sanitized record beside its raw twin. Then the
access-log flow: a detector trained on generated traffic, normal traffic plus one staged
exfiltration, and the containment message on-call would receive.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from fastavro import parse_schema

from streamproc.avro.schema import read_schema_json
from streamproc.cli import _demo_kafka as kafka
from streamproc.cli.dlq import read_all
from streamproc.config import load_settings
from streamproc.examples import examples_dir
from streamproc.keys import Keyring
from streamproc.pipeline import H_DLQ_REASON, H_SOURCE_OFFSET, H_SOURCE_PARTITION
from streamproc.pipeline.anonymize import anonymize_records
from streamproc.policy import Plan, compile_plan
from streamproc.report import build_report, inputs_for, render
from streamproc.risk import RiskReport, measure, quasi_fields
from streamproc.testing.access import (
    AccessEncoder,
    baseline_trace,
    load_schema,
    night_of,
    staged_exfiltration,
    with_events,
)
from streamproc.testing.customers import (
    SENSITIVE_STRING_FIELDS,
    bad_payloads,
    customer_records,
    single_object,
)

MAX_RECORD_BYTES = 64 * 1024
DEMO_DELAY_MS = 3000  # the customer flow's k-anonymity delay bound in the demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the sanitize (+ detect) flow end to end and summarise")
    p.add_argument("--broker")
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--schemas", default=str(examples_dir() / "schemas"), help="schema folder")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument(
        "--report",
        type=Path,
        default=Path("streamproc-demo-report.html"),
        help="where the steward's report of the customer flow goes",
    )
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Demo:
    """One demo run: its id (in every topic name), work folder, broker and schemas."""

    run_id: str
    work: Path
    broker: str
    conf: dict[str, Any]
    schemas: Path

    @property
    def keyring(self) -> Path:
        return self.work / "keyring.json"

    def topics(self, flow: str, *kinds: str) -> list[str]:
        return [f"demo.{self.run_id}.{flow}.{k}" for k in kinds]

    def worker(self, topology: Path, name: str, port: int) -> kafka.Worker:
        argv = [
            *("--topology", str(topology), "--keyring", str(self.keyring)),
            *("--app-id", f"demo-{self.run_id}-{name}", "--metrics-port", str(port)),
            *("--loglevel", "info"),
        ]
        env = {"STREAMPROC_BROKER": self.broker, "STREAMPROC_DATA_DIR": str(self.work / "data")}
        return kafka.Worker(argv, self.work / f"{name}-worker.log", env)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(broker=args.broker)
    run_id = uuid.uuid4().hex[:6]
    work = Path(tempfile.mkdtemp(prefix=f"streamproc-demo-{run_id}-"))
    demo = Demo(run_id, work, settings.broker, settings.kafka_config(), Path(args.schemas))
    print(f"streamproc demo {run_id}: broker {settings.broker}, work folder {work}")
    Keyring.generate().save(demo.keyring)
    try:
        ok = customers_flow(demo, args.records, args.report)
        access_ok = access_flow(demo)
        print()
        print(f"steward's report (customer flow): {args.report.resolve()}")
        print(
            "dashboard: deploy/grafana/dashboards/streamproc.json in the checkout (docker "
            "compose up provisions it); alerts: make observe-up"
        )
        return 0 if ok and access_ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _show(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return json.dumps(value, default=str) if not isinstance(value, str) else value


# --- customers: sanitize ---------------------------------------------------------------


def _customers_topology(demo: Demo, raw: str, clean: str, dlq: str) -> Path:
    path = demo.work / "customers.yaml"
    doc = {
        "name": "customers",
        "source": {
            "topic": raw,
            "schema": str(demo.schemas / "customer_profile.avsc"),
            "history": [str(demo.schemas / "customer_profile.v1.avsc")],
            "partitions": 3,
        },
        "sink": {"topic": clean},
        "dead_letter": {"topic": dlq},
        "lineage": {
            "topic": f"demo.{demo.run_id}.lineage",
            "file": str(demo.work / "lineage.jsonl"),
        },
        "limits": {"max_record_bytes": MAX_RECORD_BYTES},
        "processing_guarantee": "exactly_once",
        # The schema's k = 5 lets a record wait up to 60 s for its group; the demo's
        # deployment lowers the bound (never the guarantee) so that it ends sooner.
        "anonymity": {"max_delay_ms": DEMO_DELAY_MS},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _produce_customers(
    demo: Demo, plan: Plan, raw: str, n: int
) -> tuple[list[dict[str, Any]], int, Any]:
    """Produce ``n`` profiles (every 7th of schema v1) and the bad-payload corpus spread
    among them; returns the raw records, the number of bad payloads and schema v1."""
    v2 = plan.source_schema
    v1 = parse_schema(read_schema_json(demo.schemas / "customer_profile.v1.avsc")[0])
    producer = kafka.producer(demo.conf)
    bad = bad_payloads(v2, next(customer_records(1, seed=3))[0], max_record_bytes=MAX_RECORD_BYTES)
    raws: list[dict[str, Any]] = []
    n_bad = 0
    for i, (rec, is_v1) in enumerate(customer_records(n, seed=42, v1_every=7)):
        raws.append(rec)
        kafka.produce(
            producer, raw, rec["customer_id"].encode(), single_object(v1 if is_v1 else v2, rec)
        )
        if i % max(1, n // len(bad)) == 0 and n_bad < len(bad):
            kafka.produce(producer, raw, b"bad", bad[n_bad][1])
            n_bad += 1
    producer.flush(60)
    print(
        f"produced {n} customer profiles ({n // 7} of schema v1) and {n_bad} bad payloads to {raw}"
    )
    return raws, n_bad, v1


def _print_summary(
    sent: int, out: list[Any], dead: list[Any], took: float, clean: str, dlq: str
) -> None:
    reasons = Counter(dict(m.headers())[H_DLQ_REASON].decode() for m in dead)
    accounted = {
        (dict(m.headers())[H_SOURCE_PARTITION], dict(m.headers())[H_SOURCE_OFFSET])
        for m in out + dead
    }
    print()
    print("=== customers: summary ===")
    print(f"records in       {sent}")
    print(f"sanitized out    {len(out)}  -> {clean}")
    by_reason = ", ".join(f"{r}={n}" for r, n in sorted(reasons.items()))
    print(f"dead letters     {len(dead)}  -> {dlq}  ({by_reason})")
    print(
        f"accounted for    {len(accounted)} of {sent} source offsets "
        f"in {took:.1f} s ({sent / took:,.0f} records/s end to end)"
    )


def _print_twin(demo: Demo, plan: Plan, raw: str, sample: Any, v1: Any) -> None:
    headers = dict(sample.headers())
    coords = (int(headers[H_SOURCE_PARTITION]), int(headers[H_SOURCE_OFFSET]))
    twin = kafka.raw_twin(demo.conf, raw, coords, plan.source_schema, v1)
    clean_rec = kafka.read_framed(plan.derived_schema, sample.value())
    actions = {f.source_path: f.action for f in plan.lineage}
    print()
    print(f"=== one record, raw vs sanitized (source {raw} {coords[0]}/{coords[1]}) ===")
    print(f"{'field':<18} {'action':<13} {'raw':<34} sanitized")
    for name, value in (twin or {}).items():
        shown = clean_rec.get(name, "(dropped)") if name in clean_rec else "(dropped)"
        action = actions.get(name, "drop")
        print(f"{name:<18} {action:<13} {_show(value)[:33]:<34} {_show(shown)[:60]}")


def _leaks(plan: Plan, raws: list[dict[str, Any]], out: list[Any]) -> int:
    """Raw sensitive string values found in sanitized values or keys (must be 0)."""
    sensitive = {str(r[f]) for r in raws for f in SENSITIVE_STRING_FIELDS if r.get(f)}
    leaks = 0
    for m in out:
        rec = kafka.read_framed(plan.derived_schema, m.value())
        leaks += sum(1 for v in rec.values() if isinstance(v, str) and v in sensitive)
        leaks += (m.key() or b"").decode(errors="replace") in sensitive
    return leaks


def _current(plan: Plan, raws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records written with the current schema version (v1 ones lack fields)."""
    names = {f["name"] for f in plan.source_schema_json["fields"]}
    return [r for r in raws if set(r) >= names]


def risk_line(label: str, report: RiskReport) -> str:
    """One line a steward reads: how re-identifiable the records are on their quasi-ids."""
    return (
        f"{label:<10} k_min {report.k_min}, {report.unique_share:.1%} unique, "
        f"{report.below_k_share:.1%} in classes below k={report.k} "
        f"on ({', '.join(report.quasi_identifiers)})"
    )


def _print_risk(plan: Plan, raws: list[dict[str, Any]], out: list[Any]) -> None:
    """The risk of the raw records and of the sanitized topic, on the same quasi-ids."""
    quasi = quasi_fields(plan.source_schema_json)
    kept = [q for q in quasi if q in set(quasi_fields(plan.derived_schema_json))]
    clean = [kafka.read_framed(plan.derived_schema, m.value()) for m in out]
    print()
    print("=== re-identification risk (streamproc risk) ===")
    print(risk_line("raw", measure(raws, quasi)))
    suffix = ""
    if plan.anonymity is not None:
        suffix = f" (the worker's k={plan.anonymity.k} groups, max {DEMO_DELAY_MS} ms delay)"
    print(risk_line("sanitized", measure(clean, kept)) + suffix)
    if plan.anonymity is not None:
        # The same records sanitized as one file: the batch engine sees them all at once.
        batch = anonymize_records(plan, _current(plan, raws))
        print(
            risk_line("batch", measure(batch, kept))
            + f" (streamproc sanitize, k={plan.anonymity.k})"
        )


def _write_report(out: Path, schema: Path, plan: Plan, raws: list[dict[str, Any]]) -> None:
    """The steward's report of the demo's own records (v2 ones), sanitized by its policy."""
    full = _current(plan, raws)
    sanitized = anonymize_records(plan, full)
    report = build_report(inputs_for(schema, full, sanitized))
    out.write_text(render(report), encoding="utf-8")
    print(
        f"report: {len(full)} records; k_min on the quasi-identifiers "
        f"{report.risk_raw.k_min} raw -> {report.risk_sanitized.k_min} sanitized"
    )


def customers_flow(demo: Demo, n: int, report: Path) -> bool:
    """Sanitize ``n`` customer profiles through a real worker; True when all is accounted for."""
    raw, clean, dlq = demo.topics("customers", "raw", "clean", "dlq")
    kafka.create_topics(demo.conf, (raw, clean, dlq))
    port = kafka.free_port()
    worker = demo.worker(_customers_topology(demo, raw, clean, dlq), "customers", port)
    try:
        worker.wait_ready()
        plan = compile_plan(demo.schemas / "customer_profile.avsc", Keyring.load(demo.keyring))
        t0 = time.monotonic()
        raws, n_bad, v1 = _produce_customers(demo, plan, raw, n)
        out = kafka.collect(demo.conf, clean, n, timeout=180)
        dead = kafka.collect(demo.conf, dlq, n_bad, timeout=60)
        _print_summary(n + n_bad, out, dead, time.monotonic() - t0, clean, dlq)
        _print_twin(demo, plan, raw, out[0], v1)
        _print_risk(plan, raws, out)
        _write_report(report, demo.schemas / "customer_profile.avsc", plan, raws)
        print()
        print(
            f"lineage (OpenLineage RunEvent) -> topic demo.{demo.run_id}.lineage and "
            f"{demo.work / 'lineage.jsonl'}"
        )
        print("metrics (excerpt):")
        for line in kafka.scrape(port).splitlines():
            if line.startswith(("streamproc_records_", "streamproc_dead_letters_total")):
                print("  " + line)
        dlq_n = sum(1 for _ in read_all(demo.conf, dlq))
        leaks = _leaks(plan, raws, out)
        ok = len(out) == n and len(dead) == n_bad and dlq_n == n_bad and not leaks
        print(f"raw sensitive values found in sanitized records or keys: {leaks}")
        print()
        print(
            "RESULT: "
            + (
                "OK: every record accounted for, no raw sensitive value in the sanitized topic"
                if ok
                else "MISMATCH: see the worker log"
            )
        )
        return ok
    finally:
        worker.stop()


# --- access log: detect ----------------------------------------------------------------


def _train_detector(demo: Demo) -> Path | None:
    """Train a small model on a generated baseline, as a user would (the CLI command)."""
    base = demo.work / "access-baseline.jsonl"
    baseline_trace(base, seed=1000, principals=25, days=14)
    model = demo.work / "access-detector.skops"
    print("training the detector on a generated baseline (25 principals, 14 days):")
    cmd = [sys.executable, "-m", "streamproc.cli.main", "detector", "train"]
    cmd += ["--events", str(base), "--model", str(model), "--holdout", "0.5"]
    # The demo scores another, smaller population than it trained on, uncalibrated: the
    # bootstrap confidence that holds for such populations (the default, 0.7, is for a model
    # of the deployment's own history; docs/detector.md "Calibration per evidence")
    cmd += ["--confidence", "0.99"]
    rc = subprocess.run([*cmd, "--target-fpr", "0.003"], check=False).returncode
    return model if rc == 0 else None


def _access_topology(demo: Demo, model: Path, source: str, sink: str, dlq: str) -> Path:
    path = demo.work / "access.yaml"
    doc = {
        "name": "access",
        "kind": "detect",
        "source": {
            "topic": source,
            "schema": str(demo.schemas / "access_event.avsc"),
            "partitions": 3,
        },
        "sink": {"topic": sink, "schema": str(demo.schemas / "containment.avsc")},
        "dead_letter": {"topic": dlq},
        "detector": {"model": str(model)},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _await_containments(
    demo: Demo, sink: str, port: int, n_events: int, staged: set[str]
) -> tuple[list[dict[str, Any]], float]:
    """The containments on ``sink`` once every event is scored and one of them names a
    ``staged`` event id (not merely the victim: it may have had a false alarm earlier, and
    the staged events come near the end of the trace), or after a minute."""
    schema = load_schema(demo.schemas / "containment.avsc")
    got: list[dict[str, Any]] = []
    scored = 0.0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msgs = kafka.collect(demo.conf, sink, 10_000, timeout=1.0)
        got = [kafka.read_framed(schema, m.value()) for m in msgs]
        scored = kafka.metric_total(port, "streamproc_access_events_total")
        if scored >= n_events and any(set(c["event_ids"]) & staged for c in got):
            break
    return got, scored


def _print_containment(c: dict[str, Any]) -> None:
    print()
    print("containment message on-call receives:")
    print(f"  principal          {c['principal']}")
    print(f"  score / threshold  {c['score']:.3f} / {c['threshold']:.3f}")
    print(f"  recommended action {c['action']}")
    print(f"  triggering events  {', '.join(c['event_ids'])}")
    print(f"  datasets           {', '.join(c['datasets'])}")
    print("  reasons")
    for r in c["reasons"]:
        print(f"    - {r['text']} ({r['feature']} {r['value']:.2f}, normal {r['normal']:.2f})")
    print(f"  summary            {c['summary']}")
    print(f"  containment id     {c['containment_id']} (model {c['model_version']})")


def access_flow(demo: Demo) -> bool:
    """Normal traffic plus one staged exfiltration through a real detect worker; True when
    exactly the staged principal is contained."""
    print()
    print("=== access log: normal traffic plus one staged exfiltration ===")
    t0 = time.monotonic()
    model = _train_detector(demo)
    if model is None:
        print("ACCESS RESULT: MISMATCH: training failed")
        return False
    normal = baseline_trace(demo.work / "access-normal.jsonl", seed=1, principals=15, days=9)
    counts = Counter(str(e["principal"]) for e in normal)
    victim = next(p for p, _ in counts.most_common() if p.startswith(("analyst", "data-sci")))
    exfil = staged_exfiltration(normal, victim, night_of(normal, 8, 21.0), tag="demo-exfil")
    trace = with_events(normal, exfil)
    exfil_ids = {e["event_id"] for e in exfil}
    source, sink, dlq = demo.topics("access", "events", "containment", "dlq")
    kafka.create_topics(demo.conf, (source, sink, dlq))
    port = kafka.free_port()
    worker = demo.worker(_access_topology(demo, model, source, sink, dlq), "access", port)
    try:
        worker.wait_ready()
        enc = AccessEncoder()
        producer = kafka.producer(demo.conf)
        for e in trace:
            kafka.produce(producer, source, enc.key(e), enc.encode(e))
        producer.flush(60)
        days = (trace[-1]["ts"] - trace[0]["ts"]) / 86_400_000
        print(
            f"produced {len(trace):,} access events to {source} ({len(counts)} principals, "
            f"{days:.1f} days of event time), among them {len(exfil)} staged EXPORTs by {victim}"
        )
        got, scored = _await_containments(demo, sink, port, len(trace), exfil_ids)
        ours = [c for c in got if set(c["event_ids"]) & exfil_ids]
        others = Counter(str(c["action"]) for c in got if c not in ours)
        print(
            f"scored {scored:,.0f} events; {len(got)} containment message(s) -> {sink}: "
            f"{len(ours)} for the staged exfiltration, {sum(others.values())} on normal traffic"
        )
        ok = len(ours) == 1 and ours[0]["principal"] == victim
        if ours:
            _print_containment(ours[0])
        if others:
            print(
                "other containments, on normal traffic: "
                + ", ".join(f"{a} x{n}" for a, n in sorted(others.items()))
                + " (false alarms at the model's calibrated rate; on-call sees these too)"
            )
        print(f"access flow took {time.monotonic() - t0:.1f} s (training included)")
        print()
        verdict = f"OK: the staged exfiltration was contained, for exactly {victim}"
        print("ACCESS RESULT: " + (verdict if ok else f"MISMATCH: see {worker.log_path}"))
        return ok
    finally:
        worker.stop()
