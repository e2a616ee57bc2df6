"""docker-compose.yml cannot run here (no Docker engine); check what can be checked:
it parses, and its services, ports and environment agree with the code's defaults."""

from __future__ import annotations

from pathlib import Path

import yaml

from streamproc.config import DEFAULT_BROKER, Settings
from streamproc.localkafka import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[3]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_present() -> None:
    services = _compose()["services"]
    assert set(services) >= {
        "kafka",
        "schema-registry",
        "worker",
        "prometheus",
        "alertmanager",
        "grafana",
    }


def test_kafka_image_matches_local_broker_version() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert f"{DEFAULT_BROKER.rsplit(':', 1)[1]}:9092" in kafka["ports"]


def test_worker_environment_names_real_settings() -> None:
    worker = _compose()["services"]["worker"]
    fields = set(Settings.model_fields)
    for name in worker["environment"]:
        assert name.startswith("STREAMPROC_")
        assert name.removeprefix("STREAMPROC_").lower() in fields, name
    port = str(Settings.model_fields["metrics_port"].default)
    assert worker["environment"]["STREAMPROC_METRICS_PORT"] == port
    assert f"{port}:{port}" in worker["ports"]
    assert (ROOT / worker["build"] / "Dockerfile").exists()


def test_worker_points_at_kafka_and_registry_services() -> None:
    services = _compose()["services"]
    env = services["worker"]["environment"]
    assert env["STREAMPROC_BROKER"].split(":")[0] == "kafka"
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{env['STREAMPROC_BROKER']}" in advertised
    assert env["STREAMPROC_SCHEMA_REGISTRY_URL"] == "http://schema-registry:8081"
    assert "8081:8081" in services["schema-registry"]["ports"]


def test_prometheus_scrapes_the_worker_metrics_port() -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"worker:{Settings.model_fields['metrics_port'].default}"]
    mounts = _compose()["services"]["prometheus"]["volumes"]
    for mount in mounts:
        assert (ROOT / mount.split(":")[0]).exists()


def test_dockerfile_default_command_uses_shipped_topologies() -> None:
    text = (ROOT / "Dockerfile").read_text()
    cmd = next(line for line in text.splitlines() if line.startswith("CMD"))
    for part in cmd.split('"'):
        if part.startswith("topologies/"):
            assert (ROOT / part).exists(), part


def test_alertmanager_service_uses_the_project_route() -> None:
    services = _compose()["services"]
    am = services["alertmanager"]
    assert "--cluster.listen-address=" in am["command"]
    for mount in am["volumes"]:
        assert (ROOT / mount.split(":")[0]).exists()
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    target = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    assert target == "alertmanager:9093"
    assert "9093:9093" in am["ports"]
