"""The streamproc_policy facet's ``anonymity`` entry: the bound of a k-anonymous plan."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from streamproc.config.settings import Settings
from streamproc.config.topology import load_topology
from streamproc.keys import Keyring
from streamproc.lineage.events import run_event, to_json
from streamproc.pipeline import SanitizeFlow
from streamproc.policy import compile_plan
from streamproc.runtime.wiring import _lineage_event

ROOT = Path(__file__).resolve().parents[3]
KEYRING = Keyring.generate()
FACET_SCHEMA = json.loads((ROOT / "docs" / "lineage-facet.json").read_text())


def facet(schema: str, with_bound: bool) -> dict[str, object]:
    plan = compile_plan(ROOT / "schemas" / schema, KEYRING)
    bound = plan.anonymity.facet() if with_bound and plan.anonymity is not None else None
    event = run_event(
        topology_name="t",
        namespace="127.0.0.1:9092",
        source_topic="raw",
        sink_topic="clean",
        lineage=plan.lineage,
        policy_fingerprint=plan.fingerprint,
        key_versions={},
        anonymity=bound,
    )
    out: dict[str, object] = json.loads(to_json(event))["outputs"][0]["facets"]["streamproc_policy"]
    return out


def test_the_bound_of_the_customer_policy_validates() -> None:
    f = facet("customer_profile.avsc", True)
    jsonschema.validate(f, FACET_SCHEMA)
    assert f["anonymity"] == {
        "k": 5,
        "l": 1,
        "quasiIdentifiers": ["birth_date", "postcode", "city", "gender"],
        "sensitive": [],
        "maxSuppressed": 0.05,
    }


def test_absent_without_a_bound_and_a_bad_entry_fails_the_schema() -> None:
    f = facet("claims.avsc", False)
    assert "anonymity" not in f
    jsonschema.validate(f, FACET_SCHEMA)
    broken = {**facet("customer_profile.avsc", True)}
    broken["anonymity"] = {**broken["anonymity"], "k": 1}  # type: ignore[dict-item]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, FACET_SCHEMA)
    broken["anonymity"] = {
        "k": 5,
        "l": 1,
        "quasiIdentifiers": [],
        "sensitive": [],
        "maxSuppressed": 0.05,
        "values": ["x"],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, FACET_SCHEMA)


def test_the_worker_start_event_carries_the_bound_it_runs() -> None:
    topo = load_topology(ROOT / "topologies" / "customers.yaml")
    plan = compile_plan(topo.source.schema, KEYRING)
    flow = SanitizeFlow(topo, plan, KEYRING)
    event = json.loads(_lineage_event(Settings(broker="127.0.0.1:9092"), topo, flow))
    f = event["outputs"][0]["facets"]["streamproc_policy"]
    jsonschema.validate(f, FACET_SCHEMA)
    # The shipped topology lowers the schema's 60 s to 30 s and caps the buffer.
    assert f["anonymity"]["k"] == 5
    assert f["anonymity"]["maxDelayMs"] == 30_000
    assert f["anonymity"]["maxBuffered"] == 5_000
