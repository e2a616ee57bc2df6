"""The shipped example schemas compile to the same derived schema and fingerprint as before.

``data/example_plans.json`` was recorded from the single-class compiler (commit 842baff) before
the policy package was split by phase; a change here changes every consumer's derived schema
and policy fingerprint, so it must be deliberate (re-record the fixture and say why).
Re-recorded once since: a kept field with a class carries ``"streamproc": {"action": "keep",
"class": ...}`` so that risk measures on a sanitized topic find its quasi-identifiers (only
that attribute changed; the fingerprints did not). Re-recorded again (issue 13): the shipped
``customer_profile.avsc`` masks ``email`` to a fixed ``length`` of 8, so the shape of an address
no longer shows; only that entry's mask description, fingerprint and doc stamp changed.
Re-recorded for customer_profile.avsc once more when it declared record-level k = 5 with
ladders on birth_date, postcode, city and gender (issue 13 section 2): their derived types
became nullable {lo, hi} / strings, the fingerprint changed; the other schemas did not change.
Re-recorded for customer_profile.avsc when birth_date's ladder gained 5-year bands
(``["month", "year", "5y", "decade"]``): that field's doc note and transform, the fingerprint
and the doc stamp changed; its derived type did not. Re-recorded when postcode's prefix ladder
declared ``"alphabet": "0123456789"`` (its loss measured over the code space): that field's doc
note and transform, the fingerprint and the doc stamp changed; its derived type did not.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from streamproc.errors import StreamprocError
from streamproc.examples import examples_dir
from streamproc.policy import derive_schema, describe_plan

EXPECTED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "example_plans.json").read_text()
)
SCHEMAS = sorted((examples_dir() / "schemas").glob("*.avsc"))


def test_fixture_covers_every_shipped_schema() -> None:
    recorded = {key.split(" ")[0] for key in EXPECTED}
    assert recorded == {p.name for p in SCHEMAS}


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_derived_schema_and_fingerprint_unchanged(schema: Path, strict: bool) -> None:
    expected = EXPECTED[f"{schema.name} strict={strict}"]
    if "error" in expected:
        with pytest.raises(StreamprocError) as info:
            derive_schema(str(schema), strict=strict)
        got = f"{type(info.value).__name__}: {info.value}".replace(str(schema), "<PATH>")
        assert got == expected["error"]
        return
    plan = derive_schema(str(schema), strict=strict)
    assert plan.fingerprint == expected["fingerprint"]
    # Compared as text: key order is part of what the registry and consumers see.
    assert json.dumps(plan.derived_schema_json) == json.dumps(expected["derived_schema"])
    assert [dataclasses.asdict(f) for f in plan.lineage] == [
        {**f, "tags": tuple(f["tags"])} for f in expected["lineage"]
    ]
    assert describe_plan(plan).replace(str(schema), "<PATH>") == expected["describe"]
