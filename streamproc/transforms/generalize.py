"""``generalize``: coarsen a value, keeping its type.

- numbers: ``bucket`` (width) -> the lower bound of the value's bucket;
- strings: ``prefix`` (n) -> the first n characters; the rest removed, or masked with ``char``;
- dates and timestamps: ``to`` = year | month | day | hour -> truncated.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
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

_UNITS = ("year", "month", "day", "hour")
_BY_KIND = {
    base.INTEGER: "bucket",
    base.FLOAT: "bucket",
    base.DECIMAL: "bucket",
    base.STRING: "prefix",
    base.DATE: "to",
    base.TIMESTAMP: "to",
}


@register
@dataclass(frozen=True)
class Generalize(Transform):
    name: ClassVar[str] = "generalize"
    kinds: ClassVar[frozenset[str]] = frozenset(_BY_KIND)
    bucket: float | int | None = None
    prefix: int | None = None
    char: str | None = None
    to: str | None = None

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> Generalize:
        base.check_kind(cls, vtype, ctx)
        wanted = _BY_KIND[vtype.kind]
        for other in ("bucket", "prefix", "to"):
            if other != wanted and params.has(other):
                raise ctx.error(
                    f"generalize: parameter {other!r} does not fit type {vtype.describe()} "
                    f"(use {wanted!r})"
                )
        if wanted == "bucket":
            if vtype.kind == base.INTEGER:
                bucket: float | int = params.get_int("bucket", minimum=1)
            else:
                bucket = params.get_number("bucket", positive=True)
                if vtype.kind == base.DECIMAL:
                    scale = int(vtype.schema.get("scale", 0))
                    if decimal.Decimal(str(bucket)).as_tuple().exponent < -scale:  # type: ignore[operator]
                        raise ctx.error(
                            f"generalize: bucket has more decimals than the type's scale {scale}"
                        )
            params.done()
            return cls(bucket=bucket)
        if wanted == "prefix":
            prefix = params.get_int("prefix", minimum=0)
            char = params.opt_str("char")
            params.done()
            if char is not None and len(char) != 1:
                raise ctx.error("generalize: parameter 'char' must be one character")
            return cls(prefix=prefix, char=char)
        to = params.get_str("to", choices=_UNITS)
        params.done()
        if vtype.kind == base.DATE and to == "hour":
            raise ctx.error("generalize: 'to: hour' does not fit type date")
        return cls(to=to)

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        kind = vtype.kind
        if kind == base.INTEGER:
            assert isinstance(self.bucket, int)
            width = self.bucket
            lo = base.INT_RANGE[vtype.base][0]

            def bucket_int(value: int) -> int:
                return max(lo, (value // width) * width)

            return bucket_int
        if kind == base.FLOAT:
            fwidth = float(self.bucket or 1)
            floor, isfinite = math.floor, math.isfinite

            def bucket_float(value: float) -> float:
                q = value / fwidth
                if not isfinite(q):
                    # inf/nan, or a value so large that float precision is coarser than
                    # the bucket: there is nothing left to coarsen.
                    return value
                return float(floor(q) * fwidth)

            return bucket_float
        if kind == base.DECIMAL:
            dwidth = decimal.Decimal(str(self.bucket))
            quantum = decimal.Decimal(1).scaleb(-int(vtype.schema.get("scale", 0)))
            rounding = decimal.ROUND_FLOOR

            def bucket_decimal(value: decimal.Decimal) -> decimal.Decimal:
                q = (value / dwidth).to_integral_value(rounding=rounding)
                return (q * dwidth).quantize(quantum)

            return bucket_decimal
        if kind == base.STRING:
            n, char = self.prefix or 0, self.char
            if char is None:

                def prefix_cut(value: str) -> str:
                    return value[:n]

                return prefix_cut

            def prefix_mask(value: str) -> str:
                return value[:n] + char * max(0, len(value) - n)

            return prefix_mask
        return _truncate(self.to or "day", kind)


def _truncate(to: str, kind: str) -> ValueFn:
    if to == "year":

        def to_year(value: Any) -> Any:
            if kind == base.DATE:
                return value.replace(month=1, day=1)
            return value.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)

        return to_year
    if to == "month":

        def to_month(value: Any) -> Any:
            if kind == base.DATE:
                return value.replace(day=1)
            return value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)

        return to_month
    if to == "day":

        def to_day(value: Any) -> Any:
            if kind == base.DATE:
                return value
            return value.replace(hour=0, minute=0, second=0, microsecond=0)

        return to_day

    def to_hour(value: dt.datetime) -> dt.datetime:
        return value.replace(minute=0, second=0, microsecond=0)

    return to_hour
