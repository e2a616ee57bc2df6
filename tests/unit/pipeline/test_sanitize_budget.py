"""SanitizeFlow with a budgeted policy: each release is charged at the record's timestamp."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader

from streamproc.avro.schema import read_schema_json
from streamproc.budget.ledger import DAY_MS
from streamproc.config.topology import load_topology
from streamproc.keys import Keyring
from streamproc.pipeline import Sanitized, SanitizeFlow
from streamproc.policy import compile_plan
from streamproc.testing.customers import customer_record, single_object

ROOT = Path(__file__).resolve().parents[3]
TOPOLOGY = ROOT / "topologies" / "customers.yaml"


def budgeted_flow() -> SanitizeFlow:
    topo = load_topology(TOPOLOGY)
    doc, _ = read_schema_json(topo.source.schema)
    for f in doc["fields"]:
        if f["name"] == "annual_income":
            f["privacy"].update(subject="customer_id", budget=2.0, budget_window_days=7)
    keyring = Keyring.generate()
    # The clock only bounds how far in the future a keyed record may lie (all have times).
    plan = compile_plan(doc, keyring, rng=random.Random(4), clock=lambda: 365 * DAY_MS)
    return SanitizeFlow(topo, plan, keyring)


def income(flow: SanitizeFlow, rec: dict[str, Any], ts: int, offset: int) -> float:
    out = flow.process(
        single_object(flow.plan.source_schema, rec),
        topic="customers.raw",
        partition=0,
        offset=offset,
        timestamp_ms=ts,
    )
    assert isinstance(out, Sanitized)
    clean = schemaless_reader(io.BytesIO(out.value[10:]), flow.plan.derived_schema, None)
    assert isinstance(clean, dict)
    value = clean["annual_income"]
    assert isinstance(value, float)
    return value


def test_flow_charges_at_the_record_timestamp() -> None:
    flow = budgeted_flow()
    assert flow.budget is flow.plan.budget is not None
    rec = customer_record(1, random.Random(1))
    day0 = [income(flow, rec, ts=1_000, offset=i) for i in range(3)]
    assert day0[0] != day0[1] and day0[2] == day0[1]  # epsilon 1.0, budget 2.0
    later = income(flow, rec, ts=1_000 + 7 * DAY_MS, offset=3)  # a window later: fresh
    assert later != day0[1]
    assert flow.budget.exhausted_subjects == 1 and flow.budget.epsilon_spent == 3.0
