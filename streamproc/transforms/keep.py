"""``keep``: the field passes unchanged, with its type and default."""

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


def _identity(value: object) -> object:
    return value


@register
@dataclass(frozen=True)
class Keep(Transform):
    name: ClassVar[str] = "keep"
    whole_field: ClassVar[WholeField | None] = "keep"

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> Keep:
        params.done()
        return cls()

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        # The compiler copies a kept field without a call; the identity serves direct users.
        return _identity
