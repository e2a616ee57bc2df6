"""``redact``: a literal (``with``), else null for a nullable field, else the type's empty value."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from streamproc.transforms import base
from streamproc.transforms.base import (
    FieldContext,
    Params,
    Resources,
    Transform,
    ValueFn,
    ValueType,
)
from streamproc.transforms.registry import register

_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def empty_value(vtype: ValueType) -> Any:
    """The 'empty' value of a non-null type: "", b"", 0, epoch, the first enum symbol..."""
    kind = vtype.kind
    if kind == base.STRING:
        return ""
    if kind == base.UUID:
        return uuid.UUID(int=0)
    if kind == base.BYTES:
        return b""
    if kind == base.FIXED:
        return bytes(int(vtype.schema["size"]))
    if kind == base.ENUM:
        return vtype.schema.get("default", vtype.schema["symbols"][0])
    if kind == base.BOOLEAN:
        return False
    if kind == base.INTEGER:
        return 0
    if kind == base.FLOAT:
        return 0.0
    if kind == base.DECIMAL:
        return decimal.Decimal(0)
    if kind == base.DATE:
        return dt.date(1970, 1, 1)
    if kind == base.TIMESTAMP:
        local = (vtype.logical or "").startswith("local-")
        return _EPOCH_UTC.replace(tzinfo=None) if local else _EPOCH_UTC
    if kind == base.TIME:
        return dt.time(0)
    raise AssertionError(kind)


def _literal_fits(value: Any, vtype: ValueType) -> bool:
    kind = vtype.kind
    if kind in (base.STRING, base.UUID):
        if not isinstance(value, str):
            return False
        if kind == base.UUID:
            try:
                uuid.UUID(value)
            except ValueError:
                return False
        return True
    if kind == base.ENUM:
        return isinstance(value, str) and value in vtype.schema["symbols"]
    if kind == base.BOOLEAN:
        return isinstance(value, bool)
    if kind == base.INTEGER:
        lo, hi = base.INT_RANGE[vtype.base]
        return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    if kind == base.FLOAT:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


@register
@dataclass(frozen=True)
class Redact(Transform):
    name: ClassVar[str] = "redact"
    literal: Any = None
    has_literal: bool = False
    nullable: bool = False

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> Redact:
        has = params.has("with")
        literal = params.raw("with")
        params.done()
        if has and not _literal_fits(literal, vtype):
            # Name the type, not the literal: a policy literal is not a record value, but
            # keeping messages value-free everywhere is the simpler rule to check.
            raise ctx.error(f"redact: 'with' literal does not fit type {vtype.describe()}")
        if has and vtype.kind == base.FLOAT:
            literal = float(literal)
        return cls(literal=literal, has_literal=has, nullable=ctx.nullable)

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        if self.has_literal:
            out = self.literal
        elif self.nullable:
            out = None
        else:
            out = empty_value(vtype)

        def redact(value: Any, _out: Any = out) -> Any:
            return _out

        return redact

    def describe(self) -> str:
        if self.has_literal:
            return "redact(with literal)"
        return "redact(null)" if self.nullable else "redact(empty value)"
