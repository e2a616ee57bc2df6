"""The alert path on real servers: worker -> Prometheus -> Alertmanager -> webhook.

One worker runs a detect topology (a staged exfiltration, as in test_detector_agent) and a
sanitize topology (good records, then a burst of bad ones). The Debian ``prometheus`` and
``prometheus-alertmanager`` binaries run with the project's own scrape config, rules and route
(rendered by :mod:`streamproc.localobserve`), at short intervals: scrape and evaluation 1 s,
``group_wait`` 1 s, and every rule's ``for`` shortened to 2 s (the expressions are the shipped
ones). The webhook receiver is this module's own ``http.server`` on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from fastavro import parse_schema

from streamproc.audit.signing import write_keypair
from streamproc.avro.schema import read_schema_json
from streamproc.config import Settings
from streamproc.config.topology import load_topology
from streamproc.keys import Keyring
from streamproc.localobserve import LocalObserve, ObserveSpec
from streamproc.pipeline.build import build_flow
from streamproc.testing.access import with_events
from streamproc.testing.customers import customer_records, policy_without_k, single_object
from tests.integration import test_detector_agent as det
from tests.integration import test_sanitize_pipeline as san
from tests.integration.kafka_io import produce
from tests.integration.test_detector_agent import scenario  # noqa: F401  (fixture)
from tests.integration.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboard.py"
ALERT_LABELS = {"alertname", "severity", "topology", "action", "reason", "check", "job", "instance"}
N_GOOD, N_BAD = 300, 1200  # dead-letter rule: rate over 5m > 1/s needs > 300 in the window


class Webhook:
    """Alertmanager webhook receiver: keeps (arrival time, alert) for every alert posted."""

    def __init__(self) -> None:
        self.alerts: list[tuple[float, dict[str, Any]]] = []
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.time()
                with hook.cond:
                    hook.alerts += [(now, a) for a in body["alerts"]]
                    hook.cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(
        self, match: Callable[[dict[str, Any]], bool], timeout: float
    ) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, a in self.alerts:
                    if a["status"] == "firing" and match(a):
                        return t, a
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({a["labels"]["alertname"] for _, a in self.alerts})
                    raise AssertionError(f"no matching alert in {timeout} s; got {names}")
                self.cond.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def dashboard_table() -> Any:
    """PANELS of deploy/grafana/dashboard.py (a script, loaded by path)."""
    spec = importlib.util.spec_from_file_location("streamproc_dashboard", DASHBOARD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module.PANELS


def short_rules(tmp: Path) -> Path:
    """The shipped rules with every ``for`` at 2 s (expressions, labels, annotations as is)."""
    doc = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "2s"
    out = tmp / "rules.yml"
    out.write_text(yaml.safe_dump(doc))
    return out


def audit_env(tmp: Path) -> dict[str, str]:
    """The worker's audit trail to a file, checkpoints signed every 100 entries."""
    write_keypair(tmp / "audit.pem", tmp / "audit.pub")
    return {
        "STREAMPROC_AUDIT_SIGNING_KEY": str(tmp / "audit.pem"),
        "STREAMPROC_AUDIT_FILE": str(tmp / "audit.log"),
        "STREAMPROC_AUDIT_CHECKPOINT_EVERY": "100",
    }


def risky_policy(topology: Path, tmp: Path) -> Path:
    """Point the topology at the customer policy without record-level k (fixed
    generalizations): most output records are unique, which the exposure gauge must show; its
    income noise is budgeted per customer, so the DP-budget gauges are emitted too."""
    doc = policy_without_k(read_schema_json(san.SCHEMA)[0])
    for f in doc["fields"]:
        if f["name"] == "annual_income":  # and a per-customer DP budget on the income noise
            f["privacy"] = {**f["privacy"], "subject": "customer_id", "budget": 3.0}
    schema = tmp / "customer_profile.no-k.avsc"
    schema.write_text(json.dumps(doc))
    doc = yaml.safe_load(topology.read_text())
    doc["source"]["schema"] = str(schema)
    topology.write_text(yaml.safe_dump(doc))
    return topology


def pin_policy(topology: Path, keyring: Path) -> Path:
    """Approve the topology's current policy (compliance.approved_policy_fingerprint)."""
    flow = build_flow(load_topology(topology), Settings(), Keyring.load(keyring))
    doc = yaml.safe_load(topology.read_text())
    doc["compliance"] = {"approved_policy_fingerprint": flow.plan.fingerprint}
    topology.write_text(yaml.safe_dump(doc))
    return topology


def query(obs: LocalObserve, promql: str) -> list[dict[str, Any]]:
    """An instant query against the real Prometheus: its result vector."""
    url = f"{obs.spec.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as resp:
        doc = json.loads(resp.read())
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


def wait_query(obs: LocalObserve, promql: str, n: int = 1, timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query(obs, promql)
        if len(result) >= n:
            return result
        time.sleep(0.3)
    raise AssertionError(f"{promql!r}: fewer than {n} series after {timeout} s")


@dataclass
class Stack:
    obs: LocalObserve
    hook: Webhook
    worker: WorkerProcess
    detect_name: str
    sanitize_name: str
    principals: set[str]
    victim: str
    containment_at: float  # broker timestamp of the first containment message (s)
    burst_at: float  # when the dead-letter burst was produced (s)


def _topics(bootstrap: str, *names: str) -> list[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    made = [f"observe.{n}.{uuid.uuid4().hex[:12]}" for n in names]
    futures = admin.create_topics([NewTopic(t, num_partitions=det.PARTITIONS) for t in made])
    for fut in futures.values():
        fut.result(timeout=30)
    return made


def _first_message_time(bootstrap: str, topic: str, timeout: float) -> float:
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"obs-{uuid.uuid4().hex}"}
        | {"auto.offset.reset": "earliest"}
    )
    c.subscribe([topic])
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                return float(msg.timestamp()[1]) / 1000.0
        raise AssertionError(f"no containment message on {topic} in {timeout} s")
    finally:
        c.close()


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    staged: det.Scenario = request.getfixturevalue("scenario")
    tmp = tmp_path_factory.mktemp("alerting")
    src, sink, dlq, c_src, c_sink, c_dlq = _topics(
        kafka_bootstrap, "access", "containment", "access-dlq", "raw", "clean", "dlq"
    )
    detect = det.write_topology(tmp, staged, src, sink, dlq, threshold=staged.page_threshold)
    sanitize = pin_policy(
        risky_policy(san.write_topology(tmp, c_src, c_sink, c_dlq, None), tmp), staged.keyring
    )
    port = san.free_port()
    hook = Webhook()
    obs = LocalObserve(
        ObserveSpec(
            prometheus_config=DEPLOY / "prometheus" / "prometheus.yml",
            rules=(short_rules(tmp),),
            alertmanager_config=DEPLOY / "alertmanager" / "alertmanager.yml",
            name="test",
            prometheus_port=san.free_port(),
            alertmanager_port=san.free_port(),
            targets=(f"127.0.0.1:{port}",),
            webhook_url=hook.url,
            scrape_interval="1s",
            evaluation_interval="1s",
            group_wait="1s",
            group_interval="1s",
            home=tmp / "observe",
        )
    )
    worker = WorkerProcess(
        [
            *("--topology", str(detect), "--topology", str(sanitize)),
            *("--keyring", str(staged.keyring), "--app-id", f"observe-{src}"),
            *("--metrics-port", str(port)),
        ],
        log_path=tmp / "worker.log",
        bootstrap=kafka_bootstrap,
        data_dir=tmp / "worker-data",
        env=audit_env(tmp),
    )
    try:
        obs.start()
        worker.start()
        stack = _run_scenario(kafka_bootstrap, obs, hook, worker, staged, detect, sanitize)
        yield stack
    finally:
        worker.stop()
        obs.stop()
        hook.close()
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for fut in admin.delete_topics([src, sink, dlq, c_src, c_sink, c_dlq]).values():
            with contextlib.suppress(Exception):
                fut.result(timeout=30)


def _run_scenario(
    bootstrap: str,
    obs: LocalObserve,
    hook: Webhook,
    worker: WorkerProcess,
    staged: det.Scenario,
    detect: Path,
    sanitize: Path,
) -> Stack:
    dname = yaml.safe_load(detect.read_text())["name"]
    sname = yaml.safe_load(sanitize.read_text())["name"]
    c_src = yaml.safe_load(sanitize.read_text())["source"]["topic"]
    src = yaml.safe_load(detect.read_text())["source"]["topic"]
    sink = yaml.safe_load(detect.read_text())["sink"]["topic"]
    # Every action's containment counter is scraped at 0 before anything happens.
    wait_query(obs, f'streamproc_containments_total{{topology="{dname}"}}', n=4)

    schema = parse_schema(read_schema_json(san.SCHEMA)[0])
    recs = [r for r, _v1 in customer_records(N_GOOD, seed=5)]
    # Keyed by the customer: the worker charges the budgeted income noise per key.
    keys = [r["customer_id"].encode() for r in recs]
    produce(bootstrap, c_src, [single_object(schema, r) for r in recs], keys=keys)
    bad = b"\x07" + single_object(schema, recs[0])[1:]
    # A first dead letter creates the series; the burst after it is a rate.
    produce(bootstrap, c_src, [bad])
    wait_query(obs, f'streamproc_dead_letters_total{{topology="{sname}"}}')
    produce(bootstrap, c_src, [bad] * N_BAD)
    burst_at = time.time()

    trace = with_events(staged.normal, staged.exfil)
    det.produce_events(bootstrap, src, trace)
    at = _first_message_time(bootstrap, sink, timeout=90)
    return Stack(
        obs,
        hook,
        worker,
        dname,
        sname,
        {e["principal"] for e in trace},
        staged.victim,
        at,
        burst_at,
    )


def _runbook_anchors() -> set[str]:
    text = (ROOT / "docs" / "runbook.md").read_text()
    return {m.group(1) for m in re.finditer(r"^## ([a-z0-9-]+)$", text, re.M)}


def _check_principal_free(alert: dict[str, Any], principals: set[str]) -> None:
    assert set(alert["labels"]) <= ALERT_LABELS, alert["labels"]
    text = json.dumps(alert)
    leaked = [p for p in principals if p in text]
    assert not leaked, leaked
    page, _, anchor = alert["annotations"]["runbook_url"].partition("#")
    assert page == "docs/runbook.md"
    assert anchor in _runbook_anchors()


def test_containment_alert_reaches_the_webhook(stack: Stack) -> None:
    at, alert = stack.hook.wait(
        lambda a: a["labels"]["alertname"] == "StreamprocContainmentIssued", timeout=60
    )
    labels = alert["labels"]
    assert labels["topology"] == stack.detect_name
    assert labels["severity"] == "page"
    assert labels["action"] in {"SUSPEND_READ", "NOTIFY"}
    _check_principal_free(alert, stack.principals)
    latency = at - stack.containment_at
    print(f"\nalert latency, containment message -> webhook: {latency:.2f} s")
    # Scrape 1 s + evaluation 1 s + group_wait 1 s, with slack for a busy machine.
    assert 0 < latency < 30


def test_dead_letters_rising_alert_reaches_the_webhook(stack: Stack) -> None:
    at, alert = stack.hook.wait(
        lambda a: a["labels"]["alertname"] == "StreamprocDeadLettersRising", timeout=60
    )
    print(f"\nalert latency, dead-letter burst produced -> webhook: {at - stack.burst_at:.2f} s")
    assert alert["labels"]["topology"] == stack.sanitize_name
    assert alert["labels"]["reason"] == "bad_magic"
    assert alert["labels"]["severity"] == "ticket"
    _check_principal_free(alert, stack.principals)


def test_k_anonymity_alert_reaches_the_webhook(stack: Stack) -> None:
    """The worker's own output is re-identifiable: the exposure gauge says so, and on-call
    hears it (StreamprocKAnonymityTargetMissed, for that topology only)."""
    _at, alert = stack.hook.wait(
        lambda a: a["labels"]["alertname"] == "StreamprocKAnonymityTargetMissed", timeout=60
    )
    assert alert["labels"]["topology"] == stack.sanitize_name
    t = f'topology="{stack.sanitize_name}"'
    (k_min,) = _values(stack.obs, f"streamproc_output_k_min{{{t}}}", "topology").values()
    (unique,) = _values(stack.obs, f"streamproc_output_unique_share{{{t}}}", "topology").values()
    assert k_min < 5 and unique > 0.1
    assert alert["annotations"]["runbook_url"].endswith("#k-anonymity-target-missed")
    _check_principal_free(alert, stack.principals)


def test_no_scraped_series_names_a_principal(stack: Stack) -> None:
    url = f"{stack.obs.spec.prometheus_url}/api/v1/series?" + urllib.parse.urlencode(
        {"match[]": '{job="streamproc"}'}
    )
    with urllib.request.urlopen(url, timeout=10) as resp:
        series = json.loads(resp.read())["data"]
    assert len(series) > 20
    values = {v for s in series for v in s.values()}
    assert stack.victim not in values
    assert not values & stack.principals


def test_no_alert_for_a_healthy_worker(stack: Stack) -> None:
    alerts = query(stack.obs, "ALERTS")
    names = {a["metric"]["alertname"] for a in alerts}
    assert "StreamprocWorkerDown" not in names
    assert "StreamprocConsumerLagHigh" not in names


def _values(obs: LocalObserve, promql: str, label: str) -> dict[str, float]:
    return {r["metric"][label]: float(r["value"][1]) for r in query(obs, promql)}


def test_privacy_health_is_scraped(stack: Stack) -> None:
    t = f'topology="{stack.sanitize_name}"'
    checks = _values(stack.obs, f"streamproc_compliance_check{{{t}}}", "check")
    # Pinned policy, fresh keys; not strict, unannotated fields dropped, a dead-letter burst.
    assert checks == {
        "policy_approved": 1.0,
        "key_age": 1.0,
        "strict": 0.0,
        "no_unannotated_drops": 0.0,
        "dead_letter_budget": 0.0,
    }
    assert _values(stack.obs, f"streamproc_compliant{{{t}}}", "topology") == {
        stack.sanitize_name: 0.0
    }
    # Records were produced seconds ago (their source timestamps are wall-clock).
    ages = _values(stack.obs, f"streamproc_data_age_seconds{{{t}}}", "topology")
    assert 0 < ages[stack.sanitize_name] < 120
    keys = _values(stack.obs, f"streamproc_key_age_seconds{{{t}}}", "key")
    assert keys and all(0 <= v < 600 for v in keys.values())
    share = _values(stack.obs, f"streamproc_dead_letter_share{{{t}}}", "topology")
    assert share[stack.sanitize_name] == pytest.approx((N_BAD + 1) / (N_GOOD + N_BAD + 1))


def test_audit_trail_is_scraped(stack: Stack) -> None:
    got = wait_query(stack.obs, "streamproc_audit_checkpoints > 0")
    assert got[0]["metric"]["worker"] == stack.worker.args[stack.worker.args.index("--app-id") + 1]
    entries = query(stack.obs, "streamproc_audit_entries")
    assert float(entries[0]["value"][1]) > N_BAD  # one entry per dead letter at least


def test_compliance_alert_names_the_failing_check(stack: Stack) -> None:
    _at, alert = stack.hook.wait(
        lambda a: (
            a["labels"]["alertname"] == "StreamprocComplianceFailed"
            and a["labels"]["check"] == "strict"
        ),
        timeout=60,
    )
    assert alert["labels"]["topology"] == stack.sanitize_name
    _check_principal_free(alert, stack.principals)


def test_every_dashboard_query_returns_series_with_its_labels(stack: Stack) -> None:
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "streamproc.json").read_text())
    exprs = [t["expr"] for p in board["panels"] if p["type"] != "row" for t in p["targets"]]
    queries = [query for spec in dashboard_table() for query in spec.queries]
    assert [qy.expr for qy in queries] == exprs  # the table is the committed dashboard
    pending = []
    for qy in queries:
        promql = qy.expr.replace("$topology", ".+").replace("$__rate_interval", "1m")
        result = query(stack.obs, promql)  # every query runs (status success)
        if qy.pending:
            pending.append(qy.expr.split("(")[-1].split("{")[0])
            continue
        assert result, f"no series: {promql}"
        for series in result:
            assert qy.labels <= set(series["metric"]), (promql, series["metric"])
    assert pending == []


def _listening(pid: int) -> list[str]:
    """Local addresses of the TCP sockets ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = fd.readlink().as_posix()
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    out = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                out.append(cols[1])
    return out


@pytest.mark.parametrize("kind", ["prometheus", "alertmanager"])
def test_servers_listen_on_loopback_only(stack: Stack, kind: str) -> None:
    pid = stack.obs.pids()[kind]
    addrs = _listening(pid)
    assert len(addrs) == 1, addrs  # Alertmanager's cluster listener is off
    host = addrs[0].split(":")[0]
    assert host in ("0100007F", "00000000000000000000000001000000"), addrs
