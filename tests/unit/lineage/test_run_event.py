"""OpenLineage RunEvents: column lineage from source field to training field, value-free."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streamproc.avro.schema import read_schema_json
from streamproc.keys import Keyring
from streamproc.keys.keyring import SUBKEY_BYTES
from streamproc.lineage import MASKING_ACTIONS, run_event, to_json
from streamproc.policy import compile_plan

ROOT = Path(__file__).resolve().parents[3]
FACET_SCHEMA = json.loads((ROOT / "docs" / "lineage-facet.json").read_text())


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.generate()


def event_json(plan: Any, **kw: Any) -> str:
    """The RunEvent a worker would emit for ``plan``, serialised as it is sent."""
    event = run_event(
        topology_name="claims",
        namespace="127.0.0.1:9092",
        source_topic="claims.raw",
        sink_topic="claims.clean",
        lineage=plan.lineage,
        policy_fingerprint=plan.fingerprint,
        key_versions=plan.key_versions,
        **kw,
    )
    return str(to_json(event))


def event_doc(plan: Any, **kw: Any) -> dict[str, Any]:
    return dict(json.loads(event_json(plan, **kw)))


def output_fields(schema: dict[str, Any]) -> set[str]:
    """Every field path of a derived schema (nested records dotted, arrays as ``name[]``),
    with named types referenced by name resolved."""
    named: dict[str, dict[str, Any]] = {}
    paths: set[str] = set()

    def walk(t: Any, path: str, ns: str | None) -> None:
        if isinstance(t, list):
            for b in t:
                walk(b, path, ns)
        elif isinstance(t, str):
            ref = named.get(t) or named.get(f"{ns}.{t}")
            if ref is not None:
                walk(ref, path, ns)
        elif t.get("type") == "array":
            walk(t["items"], path + "[]", ns)
        elif t.get("type") == "map":
            walk(t["values"], path, ns)
        elif t.get("type") == "record":
            ns = t.get("namespace", ns)
            named[t["name"]] = named[f"{ns}.{t['name']}"] = t
            for f in t["fields"]:
                child = f"{path}.{f['name']}" if path else f["name"]
                paths.add(child)
                if "streamproc" not in f:  # a transformed value (even a {lo, hi}) is a leaf
                    walk(f["type"], child, ns)

    walk(schema, "", None)
    return paths


@pytest.mark.parametrize("schema", ["claims.avsc", "customer_profile.avsc"])
def test_column_lineage_covers_exactly_the_output_fields(schema: str, keyring: Keyring) -> None:
    plan = compile_plan(ROOT / "schemas" / schema, keyring)
    doc = event_doc(plan)
    assert doc["eventType"] == "START" and doc["job"]["name"] == "sanitize.claims"
    assert doc["inputs"][0]["name"] == "claims.raw"
    out = doc["outputs"][0]
    assert out["name"] == "claims.clean" and out["namespace"] == "kafka://127.0.0.1:9092"
    columns = out["facets"]["columnLineage"]["fields"]
    derived_paths = output_fields(plan.derived_schema_json)
    # Every field a training consumer sees has lineage, and nothing else does.
    assert set(columns) == derived_paths
    policy = out["facets"]["streamproc_policy"]
    source = {f["name"] for f in read_schema_json(ROOT / "schemas" / schema)[0]["fields"]}
    for name, col in columns.items():
        (inp,) = col["inputFields"]
        (tr,) = inp["transformations"]
        entry = policy["fields"][name]
        assert inp["field"] == entry["source"]
        assert inp["name"] == "claims.raw"
        assert tr["masking"] is (entry["action"] in MASKING_ACTIONS)
        assert tr["description"] == f"streamproc:{entry['transform']}"
        assert entry["transform"].startswith(entry["action"])
    # Dropped and unannotated top-level source fields are listed, and have no column.
    dropped_top = {p for p in policy["dropped"] if "." not in p and "[" not in p}
    kept_top = {n for n in columns if "." not in n and "[" not in n}
    assert dropped_top | kept_top == source and not dropped_top & kept_top
    assert policy["policyFingerprint"] == plan.fingerprint
    assert policy["keyVersions"] == plan.key_versions


def test_the_custom_facet_conforms_to_its_published_schema(keyring: Keyring) -> None:
    plan = compile_plan(ROOT / "schemas" / "claims.avsc", keyring)
    facet = event_doc(plan)["outputs"][0]["facets"]["streamproc_policy"]
    jsonschema.validate(facet, FACET_SCHEMA)
    assert facet["_schemaURL"] == FACET_SCHEMA["$id"]
    keyed = [f for f in facet["fields"].values() if f["action"] in ("pseudonymize", "encrypt")]
    assert keyed and all(f["key"] == "default" and f["keyVersion"] == 1 for f in keyed)
    broken = copy.deepcopy(facet)
    broken["fields"]["patient_id"]["action"] = "teleport"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, FACET_SCHEMA)


def test_a_policy_change_shows_in_the_next_event(keyring: Keyring, tmp_path: Path) -> None:
    """The event a restarted worker emits names the new policy and the new transforms."""
    doc, _ = read_schema_json(ROOT / "schemas" / "customer_profile.avsc")
    before = event_doc(compile_plan(ROOT / "schemas" / "customer_profile.avsc", keyring))
    for f in doc["fields"]:
        if f["name"] == "email":
            f["privacy"] = {"class": "direct", "action": "pseudonymize", "domain": "contact"}
    changed = tmp_path / "customer_profile.avsc"
    changed.write_text(json.dumps(doc))
    after = event_doc(compile_plan(changed, keyring))
    pb = before["outputs"][0]["facets"]["streamproc_policy"]
    pa = after["outputs"][0]["facets"]["streamproc_policy"]
    assert pa["policyFingerprint"] != pb["policyFingerprint"]
    assert pb["fields"]["email"]["action"] == "mask"
    assert pa["fields"]["email"]["action"] == "pseudonymize"
    assert "domain='contact'" in pa["fields"]["email"]["transform"]
    assert before["run"]["runId"] != after["run"]["runId"]
    # A key rotation shows as a new key version under the same policy fingerprint.
    path = keyring.save(tmp_path / "keyring.json")
    rotated = Keyring.load(path)
    rotated.rotate("default")
    rot = event_doc(compile_plan(ROOT / "schemas" / "customer_profile.avsc", rotated))
    pr = rot["outputs"][0]["facets"]["streamproc_policy"]
    assert pr["policyFingerprint"] == pb["policyFingerprint"]
    assert pr["keyVersions"]["default"] == pb["keyVersions"]["default"] + 1
    assert {f.get("keyVersion") for f in pr["fields"].values()} - {None} == {
        pr["keyVersions"]["default"]
    }


def test_no_key_material_in_an_event(keyring: Keyring) -> None:
    plan = compile_plan(ROOT / "schemas" / "customer_profile.avsc", keyring)
    text = event_json(plan)
    for name in keyring.names():
        for version in keyring.versions(name):
            for purpose in SUBKEY_BYTES:
                secret = keyring.subkey(name, purpose, version)[1]
                for enc in (secret.hex(), base64.b64encode(secret).decode()):
                    assert enc not in text
