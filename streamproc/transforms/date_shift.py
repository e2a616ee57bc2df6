"""``date_shift``: shift dates/timestamps by a per-subject offset in [-max_days, max_days].

The offset (never 0) comes from a keyed HMAC of the subject's value (``subject`` names a field
of the same record or of an enclosing one), so every record of one data subject moves by the
same number of days: intervals within a subject survive, calendar dates do not.
"""

from __future__ import annotations

import datetime as dt
import hmac
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
from streamproc.transforms.codec import canonical
from streamproc.transforms.registry import register

_CACHE_LIMIT = 65536


@register
@dataclass(frozen=True)
class DateShift(Transform):
    name: ClassVar[str] = "date_shift"
    kinds: ClassVar[frozenset[str]] = base.TEMPORAL
    needs_subject: ClassVar[bool] = True
    max_days: int = 30
    subject_field: str = ""
    key: str = "default"

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> DateShift:
        base.check_kind(cls, vtype, ctx)
        max_days = params.get_int("max_days", minimum=1)
        subject = params.get_str("subject")
        key = params.get_str("key", "default")
        params.done()
        if max_days > 3650:
            raise ctx.error("date_shift: parameter 'max_days' must be <= 3650")
        return cls(max_days=max_days, subject_field=subject, key=key)

    @property
    def key_name(self) -> str | None:
        return self.key

    @property
    def subject(self) -> str | None:
        return self.subject_field

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        keyring = base.require_key(res, self.key, ctx)
        _, key = keyring.subkey(self.key, "date_shift")
        span = self.max_days
        prefix = b"streamproc/ds\x00"
        digest = hmac.digest
        cache: dict[bytes, dt.timedelta] = {}

        def offset(subject: Any) -> dt.timedelta:
            c = canonical(subject)
            delta = cache.get(c)
            if delta is None:
                r = int.from_bytes(digest(key, prefix + c, "sha256")[:8], "big") % (2 * span)
                days = r - span if r < span else r - span + 1  # [-span, -1] u [1, span]
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                delta = cache[c] = dt.timedelta(days=days)
            return delta

        def date_shift(value: Any, subject: Any) -> Any:
            return value + offset(subject)

        return date_shift
