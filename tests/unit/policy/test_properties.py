"""Property tests over generated annotated schemas and records.

For any schema built from the supported types, wrappers (nullable, array, map, nested record)
and fitting annotations: the sanitized record always encodes under the derived schema;
exactly the annotated, non-dropped fields survive; and a unique marker placed in every
non-kept string never appears in the output bytes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import random
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.policy import compile_plan
from tests.unit.engine_helpers import KEYRING, encode

DATE = {"type": "int", "logicalType": "date"}
TS = {"type": "long", "logicalType": "timestamp-millis"}
DEC = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}

KEEP, DROP, REDACT = {"action": "keep"}, {"action": "drop"}, {"action": "redact"}
ENC_D = {"action": "encrypt", "mode": "deterministic"}
ENC_R = {"action": "encrypt", "mode": "randomized", "key": "hr"}
PSEUDO = {"action": "pseudonymize", "domain": "d"}
SHIFT = {"action": "date_shift", "max_days": 30, "subject": "sid"}

_counter = itertools.count()


def marker(_: Any = None) -> str:
    return f"CANARY{next(_counter):08d}X"


@dataclass(frozen=True)
class Leaf:
    avro: Any
    values: st.SearchStrategy[Any]
    annotations: tuple[dict[str, Any], ...]
    is_string: bool = False


LEAVES = [
    Leaf(
        "string",
        st.text(max_size=12),
        (
            KEEP,
            DROP,
            REDACT,
            {"action": "redact", "with": "[r]"},
            {"action": "mask", "keep_first": 1},
            PSEUDO,
            ENC_D,
            ENC_R,
            {"action": "generalize", "prefix": 3},
        ),
        is_string=True,
    ),
    Leaf(
        "long",
        st.integers(-(2**63), 2**63 - 1),
        (
            KEEP,
            REDACT,
            PSEUDO,
            ENC_D,
            {"action": "generalize", "bucket": 100},
            {"action": "noise", "epsilon": 1, "sensitivity": 10},
        ),
    ),
    Leaf(
        "int",
        st.integers(-(2**31), 2**31 - 1),
        (
            KEEP,
            {"action": "generalize", "bucket": 7},
            {
                "action": "noise",
                "mechanism": "gaussian",
                "epsilon": 1,
                "delta": 1e-6,
                "sensitivity": 1,
            },
        ),
    ),
    Leaf(
        "double",
        st.floats(allow_nan=False, allow_infinity=False),
        (
            KEEP,
            REDACT,
            ENC_R,
            {"action": "generalize", "bucket": 0.5},
            {"action": "noise", "epsilon": 0.5, "sensitivity": 1, "clamp": [-1e6, 1e6]},
        ),
    ),
    Leaf("boolean", st.booleans(), (KEEP, DROP, REDACT)),
    Leaf("bytes", st.binary(max_size=12), (KEEP, PSEUDO, ENC_D, REDACT)),
    Leaf(
        DATE,
        st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)),
        (KEEP, {"action": "generalize", "to": "year"}, SHIFT, ENC_D),
    ),
    Leaf(
        TS,
        st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1)).map(
            lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=dt.UTC)
        ),
        (KEEP, {"action": "generalize", "to": "hour"}, SHIFT, ENC_R),
    ),
    Leaf(
        DEC,
        st.decimals(-(10**9), 10**9, places=2),
        (KEEP, PSEUDO, {"action": "generalize", "bucket": 10}),
    ),
]


@dataclass
class FieldSpec:
    name: str
    schema: dict[str, Any]
    values: st.SearchStrategy[Any]
    survives: bool
    nested: list[FieldSpec] | None = None
    how: str = "plain"


def wrap(avro: Any, values: st.SearchStrategy[Any], how: str) -> tuple[Any, st.SearchStrategy[Any]]:
    if how == "nullable":
        return ["null", avro], st.none() | values
    if how == "array":
        return {"type": "array", "items": avro}, st.lists(values, max_size=3)
    if how == "map":
        return {"type": "map", "values": avro}, st.dictionaries(
            st.text(max_size=4), values, max_size=3
        )
    return avro, values


@st.composite
def leaf_field(draw: st.DrawFn, name: str) -> FieldSpec:
    leaf = draw(st.sampled_from(LEAVES))
    ann = draw(st.none() | st.sampled_from(leaf.annotations))
    how = draw(st.sampled_from(["plain", "nullable", "array", "map"]))
    avro, values = wrap(leaf.avro, leaf.values, how)
    if leaf.is_string and ann not in (None, KEEP):
        # Sensitive strings carry canaries so the output can be scanned for them.
        inner = st.builds(marker)
        avro, values = wrap(leaf.avro, inner, how)
    field: dict[str, Any] = {"name": name, "type": avro}
    if ann is not None:
        field["privacy"] = ann
    survives = ann is not None and ann != DROP
    return FieldSpec(name, field, values, survives)


@st.composite
def schemas(draw: st.DrawFn) -> tuple[dict[str, Any], list[FieldSpec]]:
    n = draw(st.integers(1, 6))
    specs = [draw(leaf_field(f"f{i}")) for i in range(n)]
    if draw(st.booleans()):
        inner = [draw(leaf_field(f"g{i}")) for i in range(draw(st.integers(1, 3)))]
        rec = {"type": "record", "name": "Nested", "fields": [s.schema for s in inner]}
        rec_values = st.fixed_dictionaries({s.name: s.values for s in inner})
        how = draw(st.sampled_from(["plain", "nullable", "array", "map"]))
        avro, values = wrap(rec, rec_values, how)
        drop = draw(st.booleans())
        field = {"name": "nested", "type": avro, **({"privacy": DROP} if drop else {})}
        specs.append(FieldSpec("nested", field, values, not drop, inner, how))
    sid = {"name": "sid", "type": "string", "privacy": draw(st.sampled_from([KEEP, PSEUDO]))}
    schema = {
        "type": "record",
        "name": "Gen",
        "namespace": "prop",
        "fields": [sid, *(s.schema for s in specs)],
    }
    return schema, specs


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_schemas_sanitize_to_the_derived_schema(data: st.DataObject) -> None:
    schema, specs = data.draw(schemas())
    plan = compile_plan(schema, KEYRING, rng=random.Random(0))
    records = data.draw(
        st.lists(
            st.fixed_dictionaries(
                {"sid": st.text(max_size=8), **{s.name: s.values for s in specs}}
            ),
            min_size=1,
            max_size=3,
        )
    )
    expected = {"sid"} | {s.name for s in specs if s.survives}
    derived_names = {f["name"] for f in plan.derived_schema_json["fields"]}
    assert derived_names == expected
    for record in records:
        out = plan.sanitize(record)
        assert set(out) == expected  # no unannotated (or dropped) field survives
        data_bytes = encode(plan, out)  # conforms to the derived schema
        for spec in specs:
            if spec.nested is not None and spec.survives:
                assert_nested(out[spec.name], spec)
        text = repr(out).encode() + data_bytes
        for canary in _canaries(record, specs):
            assert canary.encode() not in text


def assert_nested(value: Any, spec: FieldSpec) -> None:
    assert spec.nested is not None
    want = {s.name for s in spec.nested if s.survives}
    if spec.how == "plain":
        records = [value]
    elif spec.how == "nullable":
        records = [] if value is None else [value]
    elif spec.how == "array":
        records = value
    else:
        records = list(value.values())
    for r in records:
        assert set(r) == want


def _canaries(record: dict[str, Any], specs: list[FieldSpec]) -> list[str]:
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str) and v.startswith("CANARY"):
            found.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for spec in specs:
        walk(record.get(spec.name))
    return found


def test_decimal_and_nested_named_types_survive_roundtrip() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "amount", "type": DEC, "privacy": {"action": "generalize", "bucket": 10}}
        ],
    }
    plan = compile_plan(schema, KEYRING)
    out = plan.sanitize({"amount": decimal.Decimal("19.99")})
    assert out == {"amount": decimal.Decimal("10.00")}
    encode(plan, out)
