"""Topology files: the shipped ones load; every invalid one fails at load naming file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streamproc.config.topology import load_topology
from streamproc.errors import TopologyError

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = str(ROOT / "schemas" / "customer_profile.avsc")


def base() -> dict[str, Any]:
    return {
        "name": "t",
        "source": {"topic": "a.raw", "schema": SCHEMA, "partitions": 3},
        "sink": {"topic": "a.clean"},
        "dead_letter": {"topic": "a.dlq"},
    }


SHIPPED = sorted(p for p in (ROOT / "topologies").glob("*.yaml") if p.name != "principals.yaml")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_topologies_load(path: Path) -> None:
    topo = load_topology(path)
    assert topo.source.schema.is_file()
    assert len({topo.source.topic, topo.sink.topic, topo.dead_letter}) == 3
    if topo.kind == "sanitize":  # its policy compiles as the worker would (strict included)
        from streamproc.config import Settings
        from streamproc.keys import Keyring
        from streamproc.pipeline.build import build_flow

        flow = build_flow(topo, Settings(), Keyring.generate())
        assert flow.plan.transformed


def test_strict_topology_refuses_an_unannotated_field_at_start(tmp_path: Path) -> None:
    from streamproc.config import Settings
    from streamproc.errors import UnannotatedFieldError
    from streamproc.keys import Keyring
    from streamproc.pipeline.build import build_flow

    doc = base()
    doc["strict"] = True
    f = tmp_path / "strict.yaml"
    f.write_text(yaml.safe_dump(doc))
    with pytest.raises(UnannotatedFieldError) as err:
        build_flow(load_topology(f), Settings(), Keyring.generate())
    assert "credit_score" in str(err.value) and "customer_profile.avsc" in str(err.value)


def test_defaults_and_resolved_paths(tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump(base()))
    topo = load_topology(f)
    assert (topo.kind, topo.framing, topo.write_framing, topo.strict) == (
        "sanitize",
        "auto",
        "single-object",
        False,
    )
    assert topo.processing_guarantee == "at_least_once"
    assert topo.limits.max_record_bytes == 1024 * 1024


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.pop("name"), "name"),
        (lambda d: d["source"].pop("topic"), "source.topic"),
        (lambda d: d["source"].update(schema="missing.avsc"), "source.schema"),
        (lambda d: d["source"].update(partitions=0), "source.partitions"),
        (lambda d: d["source"].update(partitions=True), "source.partitions"),
        (lambda d: d["source"].update(history=["nope.avsc"]), "source.history[0]"),
        (lambda d: d["source"].update(colour="red"), "source.colour"),
        (lambda d: d.update(framing="xml"), "framing"),
        (lambda d: d.update(kind="mystery"), "kind"),
        (lambda d: d.update(strict="yes"), "strict"),
        (lambda d: d.update(processing_guarantee="maybe"), "processing_guarantee"),
        (lambda d: d.update(tags={"PII": {"class": "direct"}}), "tags.PII"),
        (lambda d: d.update(tags={"PII": 3}), "tags.PII"),
        (lambda d: d.update(limits={"max_items": -1}), "limits.max_items"),
        (lambda d: d.update(surprise=1), "surprise"),
        (lambda d: d["sink"].update(partitions=6), "sink.partitions"),
        (lambda d: d["sink"].update(schema=SCHEMA), "sink.schema"),
        (lambda d: d.pop("dead_letter"), "dead_letter"),
    ],
)
def test_invalid_topology_names_file_and_key(tmp_path: Path, change: Any, key: str) -> None:
    doc = base()
    change(doc)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(doc))
    with pytest.raises(TopologyError) as err:
        load_topology(f)
    assert str(f) in str(err.value)
    assert f"'{key}'" in str(err.value)


def test_topics_must_differ(tmp_path: Path) -> None:
    doc = base()
    doc["sink"]["topic"] = "a.raw"
    f = tmp_path / "same.yaml"
    f.write_text(yaml.safe_dump(doc))
    with pytest.raises(TopologyError, match="must all differ"):
        load_topology(f)


@pytest.mark.parametrize(
    ("text", "what"), [("name: [unclosed", "line 1"), ("- a\n- b\n", "mapping")]
)
def test_unreadable_yaml_is_refused_with_the_file(tmp_path: Path, text: str, what: str) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text(text)
    with pytest.raises(TopologyError, match=what) as err:
        load_topology(f)
    assert str(f) in str(err.value)
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("kind", "value", "error"),
    [
        ("sanitize", "exactly_once", None),
        ("sanitize", "at_least_once", None),
        ("sanitize", "exactly-once", "must be one of at_least_once, exactly_once"),
        ("detect", "exactly_once", "offered for sanitize topologies"),
    ],
)
def test_processing_guarantee_is_read_and_checked(
    tmp_path: Path, kind: str, value: str, error: str | None
) -> None:
    doc = base()
    doc["processing_guarantee"] = value
    if kind == "detect":
        doc["kind"] = "detect"
        doc.pop("strict", None)
    f = tmp_path / "g.yaml"
    f.write_text(yaml.safe_dump(doc))
    if error is None:
        assert load_topology(f).processing_guarantee == value
        return
    with pytest.raises(TopologyError, match=error) as err:
        load_topology(f)
    assert str(f) in str(err.value) and "'processing_guarantee'" in str(err.value)


@pytest.mark.parametrize(("tags", "action"), [("drop", "drop"), ({"action": "mask"}, "mask")])
def test_topology_tags_map_confluent_tags_to_actions(
    tmp_path: Path, tags: Any, action: str
) -> None:
    """``tags:`` takes the same {tag: annotation} form as ``--tags FILE``, shorthand included."""
    import json

    from streamproc.keys import Keyring
    from streamproc.policy import compile_plan

    schema = tmp_path / "tagged.avsc"
    schema.write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Contact",
                "fields": [
                    {"name": "id", "type": "string", "privacy": {"action": "keep"}},
                    {"name": "email", "type": "string", "confluent:tags": ["PII"]},
                ],
            }
        )
    )
    doc = base()
    doc["source"]["schema"] = str(schema)
    doc["tags"] = {"PII": tags}
    f = tmp_path / "tagged.yaml"
    f.write_text(yaml.safe_dump(doc))
    topo = load_topology(f)
    plan = compile_plan(topo.source.schema, Keyring.generate(), tag_actions=topo.tags)
    (email,) = [x for x in plan.lineage if x.source_path == "email"]
    assert (email.action, email.origin) == (action, "tag:PII")
    out = plan.sanitize({"id": "c1", "email": "ann@example.com"})
    assert "ann@example.com" not in json.dumps(out)
