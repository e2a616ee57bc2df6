"""Budgeted ``noise`` through the compiled plan: a subject's epsilon never exceeds its budget.

The claims tried here, over random record sequences (subjects, event times out of order,
several budgeted fields, arrays): within any window no subject is granted more than its
budget; once refused, a field re-releases the subject's last value (``repeat``) or null;
the ledger state never holds a raw subject value; errors name fields, never values.
"""

from __future__ import annotations

import random
import traceback
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.budget.ledger import DAY_MS
from streamproc.errors import PolicyError, TransformError
from streamproc.policy import Plan, compile_plan
from tests.unit.engine_helpers import KEYRING, encode, plan_for

CANARY = "CANARY-5e1f"

#: field -> (avro type, epsilon, budget, window days, on_exhausted)
FIELDS: dict[str, tuple[Any, float, float, int, str]] = {
    "income": ("double", 0.3, 1.0, 2, "repeat"),
    "visits": ("long", 0.5, 1.5, 1, "null"),
    "scores": ({"type": "array", "items": "double"}, 0.25, 1.0, 3, "repeat"),
}


def schema() -> dict[str, Any]:
    fields: list[dict[str, Any]] = [
        {"name": "member_id", "type": "string", "privacy": {"action": "drop"}}
    ]
    for name, (t, eps, budget, days, on_exhausted) in FIELDS.items():
        fields.append(
            {
                "name": name,
                "type": t,
                "privacy": {
                    "action": "noise",
                    "epsilon": eps,
                    "sensitivity": 10,
                    "subject": "member_id",
                    "budget": budget,
                    "budget_window_days": days,
                    "on_exhausted": on_exhausted,
                },
            }
        )
    return {"type": "record", "name": "Visit", "namespace": "test", "fields": fields}


def budget_plan(seed: int = 3) -> Plan:
    return compile_plan(schema(), KEYRING, rng=random.Random(seed), clock=lambda: 0)


records = st.lists(
    st.tuples(
        st.integers(0, 3),  # subject
        st.integers(0, 12 * DAY_MS),  # event time, in any order
        st.integers(0, 3),  # array length
    ),
    max_size=60,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_budget_holds_in_every_window_and_exhaustion_repeats_or_nulls(
    seq: list[tuple[int, int, int]],
) -> None:
    plan = budget_plan()
    assert plan.budget is not None
    last: dict[tuple[int, str], Any] = {}
    grants: dict[tuple[int, str], list[int]] = {}
    refused = 0
    for subject, ts, n in seq:
        plan.budget.at(ts)
        out = plan.sanitize(
            {"member_id": f"{CANARY}-{subject}", "income": 5.0, "visits": 3, "scores": [1.0] * n}
        )
        encode(plan, out)
        released = [("income", out["income"]), ("visits", out["visits"])]
        released += [("scores", v) for v in out["scores"]]
        for name, value in released:
            key = (subject, name)
            if FIELDS[name][4] == "null":
                fresh = value is not None
            else:
                # A refusal repeats the last value exactly; fresh noise (sensitivity 10 on a
                # fine grid) equals it with negligible probability.
                fresh = key not in last or value != last[key]
                if not fresh:
                    assert value == last[key]
            if fresh:
                grants.setdefault(key, []).append(ts)
                last[key] = value
            else:
                refused += 1
    assert refused == plan.budget.refused
    for (_, name), times in grants.items():
        _, eps, budget, days, _ = FIELDS[name]
        w = days * DAY_MS
        for s in times:  # the heaviest window starts at a granted release
            assert sum(1 for x in times if s <= x < s + w) * eps <= budget + 1e-9
    # The ledger's state and its snapshots hold pseudonyms, never a subject value.
    state = b"".join(plan.budget.snapshot(p) + p for p in plan.budget.pseudonyms())
    assert CANARY.encode() not in state
    assert CANARY not in repr(vars(plan.budget))


def test_in_order_records_are_refused_only_when_the_budget_requires_it() -> None:
    """Liveness: with time moving forward, a subject gets exactly budget/epsilon fresh values
    per window, and fresh ones again once the window has passed."""
    plan = budget_plan()
    assert plan.budget is not None
    outs = []
    for day in (0, 0, 0, 0, 0, 2, 2, 2, 2):
        plan.budget.at(day * DAY_MS)
        outs.append(plan.sanitize({"member_id": "m", "income": 5.0, "visits": 1, "scores": []}))
    incomes = [o["income"] for o in outs]
    # income: 0.3 per release, budget 1.0 -> 3 fresh per 2-day window, then repeats.
    assert len(set(incomes[:3])) == 3 and incomes[3] == incomes[4] == incomes[2]
    assert len(set(incomes[5:8])) == 3 and incomes[8] == incomes[7]
    # visits: 0.5 per release, budget 1.5 -> 3 per 1-day window, then null.
    assert [o["visits"] is None for o in outs] == [False] * 3 + [True] * 2 + [False] * 3 + [True]
    assert plan.budget.exhausted_subjects == 1
    assert plan.budget.epsilon_spent == pytest.approx(6 * 0.3 + 6 * 0.5)


def test_subjects_are_budgeted_apart_and_unbudgeted_fields_untouched() -> None:
    plan = plan_for(
        "double",
        {"action": "noise", "epsilon": 1, "sensitivity": 1, "subject": "sid", "budget": 1},
        rng=random.Random(1),
        clock=lambda: 0,
    )
    a1, a2 = (plan.sanitize({"sid": "a", "v": 1.0})["v"] for _ in range(2))
    b1 = plan.sanitize({"sid": "b", "v": 1.0})["v"]
    assert a1 == a2 != b1
    plain = plan_for("double", {"action": "noise", "epsilon": 1, "sensitivity": 1})
    assert plain.budget is None


def test_on_exhausted_null_makes_the_derived_type_nullable() -> None:
    ann = {
        "action": "noise",
        "epsilon": 1,
        "sensitivity": 1,
        "subject": "sid",
        "budget": 1,
        "on_exhausted": "null",
    }
    types = {
        "int": ["null", "int"],
        "null-first": ["null", "int"],
        "array": {"type": "array", "items": ["null", "double"]},
    }
    for label, (avro_type, want) in {
        "int": ("int", types["int"]),
        "null-first": (["null", "int"], types["null-first"]),
        "array": ({"type": "array", "items": "double"}, types["array"]),
    }.items():
        plan = plan_for(avro_type, ann, clock=lambda: 0)
        assert plan.derived_schema_json["fields"][1]["type"] == want, label
    plan = plan_for("int", ann, clock=lambda: 0)
    assert plan.sanitize({"sid": "s", "v": 1})["v"] is not None
    out = plan.sanitize({"sid": "s", "v": 1})
    assert out["v"] is None
    encode(plan, out)


BASE = {"action": "noise", "epsilon": 0.5, "sensitivity": 1}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"budget": 1}, "parameter 'subject' is required"),
        ({"subject": "sid"}, "parameter 'budget' is required"),
        ({"subject": "sid", "budget": f"{CANARY}"}, "parameter 'budget' must be a number"),
        ({"subject": "sid", "budget": -1}, "'budget' must be a finite positive number"),
        ({"subject": "sid", "budget": 0.25}, "'budget' must be >= 'epsilon'"),
        ({"on_exhausted": "null"}, "'on_exhausted' needs parameters 'subject' and 'budget'"),
        ({"budget_window_days": 3}, "'budget_window_days' needs parameters"),
        (
            {"subject": "sid", "budget": 1, "on_exhausted": CANARY},
            "'on_exhausted' must be one of repeat, null",
        ),
        ({"subject": "sid", "budget": 1, "budget_window_days": 0}, "must be >= 1"),
        ({"subject": "sid", "budget": 1, "budget_window_days": 4000}, "must be <= 3650"),
        ({"subject": "nobody", "budget": 1}, "subject field 'nobody' is not in this record"),
        ({"subject": "sid", "budget": 1, "key": "missing"}, "key 'missing' is not in"),
    ],
)
def test_bad_budget_parameters_fail_at_load_naming_the_field(
    extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError) as info:
        plan_for("double", {**BASE, **extra})
    text = str(info.value)
    assert "field v:" in text and message in text
    assert CANARY not in text


def test_a_failing_value_names_the_field_never_the_subject_or_value() -> None:
    plan = plan_for(
        "double",
        {**BASE, "subject": "sid", "budget": 1},
        clock=lambda: 0,
    )
    with pytest.raises(TransformError) as info:
        plan.sanitize({"sid": f"{CANARY}-subject", "v": f"{CANARY}-value"})
    text = "".join(traceback.format_exception(info.value))
    assert "field v" in str(info.value) and CANARY not in text


def test_gaussian_budgets_compose_delta_too() -> None:
    """Gaussian noise may be budgeted: each release costs (epsilon, delta); the lineage
    description states both, so the per-window delta is releases * delta."""
    ann = {
        "action": "noise",
        "mechanism": "gaussian",
        "epsilon": 0.5,
        "delta": 1e-6,
        "sensitivity": 1,
        "subject": "sid",
        "budget": 1,
    }
    plan = plan_for("double", ann, clock=lambda: 0, rng=random.Random(2))
    outs = [plan.sanitize({"sid": "s", "v": 0.0})["v"] for _ in range(4)]
    assert outs[0] != outs[1] and outs[1] == outs[2] == outs[3]
    assert "delta=1e-06" in plan.lineage[-1].transform
