"""The Grafana dashboard: generated from deploy/grafana/dashboard.py (grafana-foundation-sdk),
in sync with the committed JSON, valid for the SDK's dashboard model, provisioned in compose.
Its queries are evaluated on a real Prometheus in tests/integration/test_alerting.py."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
JSON_FILE = GRAFANA / "dashboards" / "streamproc.json"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("streamproc_dashboard", GRAFANA / "dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def committed() -> dict[str, Any]:
    return dict(json.loads(JSON_FILE.read_text()))


def test_committed_json_is_what_the_generator_writes() -> None:
    assert generator().render() == JSON_FILE.read_text(), "run: python deploy/grafana/dashboard.py"


def test_json_round_trips_through_the_dashboard_model() -> None:
    doc = committed()
    model = Dashboard.from_json(doc)
    again = json.loads(json.dumps(model.to_json(), default=lambda o: o.to_json()))
    assert again == doc
    assert model.uid == "streamproc-privacy"


def test_every_panel_from_the_table_is_there() -> None:
    gen = generator()
    panels = [p for p in committed()["panels"] if p["type"] != "row"]
    assert [p["title"] for p in panels] == [s.title for s in gen.PANELS]
    for panel, spec in zip(panels, gen.PANELS, strict=True):
        assert [t["expr"] for t in panel["targets"]] == [q.expr for q in spec.queries]
    rows = [p["title"] for p in committed()["panels"] if p["type"] == "row"]
    assert rows == list(dict.fromkeys(s.row for s in gen.PANELS))
    for needed in ("Exposure", "Data age", "Compliance", "Detection", "DP budget", "Audit"):
        assert needed in rows


def test_panels_do_not_overlap_and_ids_are_unique() -> None:
    panels = committed()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not mine & cells, p["title"]
        cells |= mine


def test_panels_use_the_provisioned_datasource() -> None:
    ds = yaml.safe_load((GRAFANA / "datasource.yml").read_text())["datasources"][0]
    for p in committed()["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": ds["type"], "uid": ds["uid"]}
        assert all(t["datasource"]["uid"] == ds["uid"] for t in p["targets"])


def test_compose_provisions_the_dashboard() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(
        v.rsplit(":", 1)[0].split(":", 1) for v in compose["services"]["grafana"]["volumes"]
    )
    provider = yaml.safe_load((GRAFANA / "dashboards.yml").read_text())["providers"][0]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert (ROOT / "deploy/grafana/dashboards.yml").exists()
    assert "/etc/grafana/provisioning/dashboards/" in mounts["./deploy/grafana/dashboards.yml"]
