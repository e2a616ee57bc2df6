"""``drop``: the field is removed from the derived schema and record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from streamproc.transforms.base import (
    FieldContext,
    Params,
    Resources,
    Transform,
    ValueFn,
    ValueType,
    WholeField,
)
from streamproc.transforms.registry import register


@register
@dataclass(frozen=True)
class Drop(Transform):
    name: ClassVar[str] = "drop"
    whole_field: ClassVar[WholeField | None] = "drop"

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> Drop:
        params.done()
        return cls()

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        # A dropped field has no output value; reaching this is a compiler bug.
        raise ctx.error("drop has no per-value function")
