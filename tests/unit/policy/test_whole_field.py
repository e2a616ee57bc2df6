"""The compiler asks a transform what it does to the field; no action name is special."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from streamproc.errors import PolicyError
from streamproc.policy import compile_plan
from streamproc.transforms import registry
from streamproc.transforms.base import (
    FieldContext,
    Params,
    Resources,
    Transform,
    ValueFn,
    ValueType,
    WholeField,
)
from tests.unit.engine_helpers import KEYRING, one_field, plan_for

REC = {
    "type": "record",
    "name": "Inner",
    "fields": [{"name": "a", "type": "string", "privacy": "keep"}],
}
SEEN: list[ValueType] = []


@dataclass(frozen=True)
class _Erase(Transform):
    name: ClassVar[str] = "erase"
    whole_field: ClassVar[WholeField | None] = "drop"
    reason: str = ""

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> _Erase:
        SEEN.append(vtype)
        reason = params.get_str("reason")
        params.done()
        return cls(reason)

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        raise AssertionError("a whole-field transform is never bound")


@dataclass(frozen=True)
class _Pass(_Erase):
    name: ClassVar[str] = "pass"
    whole_field: ClassVar[WholeField | None] = "keep"


@pytest.fixture(autouse=True)
def _registered(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in (_Erase, _Pass):
        monkeypatch.setitem(registry._REGISTRY, cls.name, cls)
    SEEN.clear()


def test_a_dropping_transform_under_another_name_drops_the_field() -> None:
    plan = plan_for(["null", "string"], {"action": "erase", "reason": "gdpr", "class": "direct"})
    assert [f["name"] for f in plan.derived_schema_json["fields"]] == ["sid"]
    assert plan.sanitize({"sid": "s", "v": "secret"}) == {"sid": "s"}
    (item,) = [i for i in plan.lineage if i.source_path == "v"]
    assert (item.action, item.output_path, item.privacy_class) == ("erase", None, "direct")
    (vtype,) = SEEN
    assert (vtype.kind, vtype.schema) == ("field", ["null", "string"])


def test_a_dropping_transform_may_sit_on_a_field_containing_records() -> None:
    plan = plan_for({"type": "array", "items": REC}, {"action": "erase"})
    assert [f["name"] for f in plan.derived_schema_json["fields"]] == ["sid"]


def test_a_keeping_transform_passes_the_field_with_its_default() -> None:
    schema = one_field("long", {"action": "pass", "reason": "public"})
    schema["fields"][1]["default"] = 3
    plan = compile_plan(schema, KEYRING)
    assert plan.derived_schema_json["fields"][1] == {"name": "v", "type": "long", "default": 3}
    assert plan.sanitize({"sid": "s", "v": 7}) == {"sid": "s", "v": 7}
    (item,) = [i for i in plan.lineage if i.source_path == "v"]
    assert (item.action, item.output_path, item.transform) == ("pass", "v", "")


def test_a_keeping_transform_is_refused_on_a_field_containing_records() -> None:
    with pytest.raises(PolicyError, match="action 'pass' is not allowed on a field containing"):
        plan_for(REC, {"action": "pass", "reason": "x"})


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ({"action": "erase"}, "field v: erase: parameter 'reason' is required"),
        ({"action": "pass", "reason": "x", "why": 1}, "field v: pass: unknown parameter(s) why"),
    ],
)
def test_a_whole_field_transform_validates_its_own_parameters(
    annotation: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError) as info:
        plan_for("string", annotation)
    assert str(info.value) == f"schema <inline schema>: {message}"


def test_only_value_transforms_count_as_transformed() -> None:
    kept = plan_for("string", {"action": "pass", "reason": "x"})
    assert kept.transformed == () and len(kept.lineage) == 2
    masked = plan_for("string", {"action": "mask"})
    assert [i.source_path for i in masked.transformed] == ["v"]
