"""The transform contract.

A transform is a frozen dataclass whose fields are its validated parameters. The policy
compiler builds one per annotated field at load time (:meth:`Transform.from_params`), asks it
for the derived type (:meth:`Transform.output_type`), and binds it once into a plain callable
(:meth:`Transform.bind`) that the compiled plan calls for every value. Nothing about the
annotation is interpreted per record. A transform with :attr:`Transform.whole_field` set acts
on the field itself (``keep``, ``drop``) and is never bound.

Rules every transform obeys (checked by ``tests/unit/transforms/test_contract.py``):
parameters are validated in ``from_params`` with a :class:`PolicyError` naming the schema file
and field path; a bound callable is deterministic when ``deterministic`` says so; its output
conforms to ``output_type``; nothing it raises quotes the value it was given.
"""

from __future__ import annotations

import dataclasses
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from streamproc.budget.ledger import BudgetLedger
from streamproc.errors import PolicyError
from streamproc.keys import Keyring

# Value kinds: what a transform needs to know about a (non-null) Avro type.
STRING = "string"
UUID = "uuid"
BYTES = "bytes"
FIXED = "fixed"
ENUM = "enum"
BOOLEAN = "boolean"
INTEGER = "integer"
FLOAT = "float"
DECIMAL = "decimal"
DATE = "date"
TIMESTAMP = "timestamp"
TIME = "time"
#: Kind of a whole field's type (any Avro type, unions included), seen by ``whole_field``
#: transforms only; no value transform accepts it.
FIELD = "field"

NUMERIC = frozenset({INTEGER, FLOAT, DECIMAL})
TEMPORAL = frozenset({DATE, TIMESTAMP})
ALL_KINDS = frozenset(
    {STRING, UUID, BYTES, FIXED, ENUM, BOOLEAN, INTEGER, FLOAT, DECIMAL, DATE, TIMESTAMP, TIME}
)

INT_RANGE: Mapping[str, tuple[int, int]] = {
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}

ValueFn = Callable[..., Any]  # (value) or, for needs_subject, (value, subject)

#: What a whole-field transform does: pass the field through as is, or remove it.
WholeField = Literal["keep", "drop"]


@dataclass(frozen=True)
class ValueType:
    """The non-null Avro type of one value as a transform sees it."""

    base: str  # Avro type: string, bytes, int, long, float, double, boolean, enum, fixed
    logical: str | None
    schema: Any  # JSON form, reused verbatim in the derived schema when the type is kept

    @property
    def kind(self) -> str:
        base, logical = self.base, self.logical
        if logical == "decimal" and base in ("bytes", "fixed"):
            return DECIMAL
        if logical == "uuid" and base == "string":
            return UUID
        if logical == "date" and base == "int":
            return DATE
        if base == "long" and logical in (
            "timestamp-millis",
            "timestamp-micros",
            "local-timestamp-millis",
            "local-timestamp-micros",
        ):
            return TIMESTAMP
        if (base, logical) in (("int", "time-millis"), ("long", "time-micros")):
            return TIME
        return {
            FIELD: FIELD,
            "string": STRING,
            "bytes": BYTES,
            "fixed": FIXED,
            "enum": ENUM,
            "boolean": BOOLEAN,
            "int": INTEGER,
            "long": INTEGER,
            "float": FLOAT,
            "double": FLOAT,
        }[base]

    def describe(self) -> str:
        return f"{self.base}/{self.logical}" if self.logical else self.base

    @classmethod
    def of_field(cls, schema: Any) -> ValueType:
        """A whole field's type, as a ``whole_field`` transform sees it (kind :data:`FIELD`)."""
        return cls(FIELD, None, schema)


@dataclass(frozen=True)
class FieldContext:
    """Where a transform is being compiled: schema file and field path, for errors."""

    schema_file: str
    path: str
    nullable: bool = False  # the field's union admits null

    def error(self, message: str) -> PolicyError:
        return PolicyError(f"schema {self.schema_file}: field {self.path}: {message}")


@dataclass(frozen=True)
class Resources:
    """What bound transforms may use: the keyring; for DP noise, a random source and the
    plan's per-subject budget ledger."""

    keyring: Keyring | None = None
    rng: random.Random | None = None
    budget: BudgetLedger | None = None


class Params:
    """Reads an annotation's parameters once, type-checked; unknown keys are an error."""

    def __init__(self, raw: Mapping[str, Any], ctx: FieldContext, action: str) -> None:
        self._raw = dict(raw)
        self._ctx = ctx
        self._action = action
        self._used: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self._raw

    def _get(self, name: str) -> Any:
        self._used.add(name)
        return self._raw.get(name)

    def _bad(self, name: str, want: str) -> PolicyError:
        return self._ctx.error(f"{self._action}: parameter {name!r} must be {want}")

    def get_int(self, name: str, default: int | None = None, *, minimum: int | None = None) -> int:
        value = self._get(name)
        if value is None:
            if default is None:
                raise self._ctx.error(f"{self._action}: parameter {name!r} is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(name, "an integer")
        if minimum is not None and value < minimum:
            raise self._bad(name, f">= {minimum}")
        return value

    def get_number(
        self, name: str, default: float | None = None, *, positive: bool = False
    ) -> float:
        value = self._get(name)
        if value is None:
            if default is None:
                raise self._ctx.error(f"{self._action}: parameter {name!r} is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(name, "a number")
        if not math.isfinite(value) or (positive and value <= 0):
            raise self._bad(name, "a finite positive number" if positive else "finite")
        return value

    def get_str(
        self, name: str, default: str | None = None, *, choices: tuple[str, ...] | None = None
    ) -> str:
        value = self._get(name)
        if value is None:
            if default is None:
                raise self._ctx.error(f"{self._action}: parameter {name!r} is required")
            return default
        if not isinstance(value, str) or not value:
            raise self._bad(name, "a non-empty string")
        if choices is not None and value not in choices:
            raise self._bad(name, "one of " + ", ".join(choices))
        return value

    def opt_str(self, name: str) -> str | None:
        return self.get_str(name) if self.has(name) else None

    def opt_int(self, name: str, *, minimum: int | None = None) -> int | None:
        return self.get_int(name, minimum=minimum) if self.has(name) else None

    def opt_number(self, name: str, *, positive: bool = False) -> float | None:
        return self.get_number(name, positive=positive) if self.has(name) else None

    def opt_range(self, name: str) -> tuple[float, float] | None:
        value = self._get(name)
        if value is None:
            return None
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not all(math.isfinite(v) for v in value)
            or value[0] > value[1]
        ):
            raise self._bad(name, "a pair [lo, hi] of finite numbers with lo <= hi")
        return (value[0], value[1])

    def raw(self, name: str) -> Any:
        return self._get(name)

    def done(self) -> None:
        unknown = sorted(set(self._raw) - self._used)
        if unknown:
            raise self._ctx.error(f"{self._action}: unknown parameter(s) {', '.join(unknown)}")


class Transform(ABC):
    """A privacy transform; subclasses are frozen dataclasses of their parameters."""

    name: ClassVar[str]
    #: Types of value accepted (see the kind constants above).
    kinds: ClassVar[frozenset[str]] = ALL_KINDS
    #: Same input (and subject, for date_shift) -> same output under one key and plan.
    deterministic: ClassVar[bool] = True
    #: The bound callable takes ``(value, subject_value)`` instead of ``(value)``. A transform
    #: whose subject is optional (``noise`` with a budget) leaves this False; the compiler
    #: passes the subject whenever :attr:`subject` is set.
    needs_subject: ClassVar[bool] = False
    #: None: the transform maps each value (through :meth:`bind`). ``"keep"``: the field passes
    #: through with its type and default; ``"drop"``: it leaves the derived record. Either way
    #: ``from_params`` gets :meth:`ValueType.of_field` and nothing is bound.
    whole_field: ClassVar[WholeField | None] = None

    @classmethod
    @abstractmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> Transform:
        """Validate parameters against the value type; :class:`PolicyError` if they do not fit."""

    def output_type(self, vtype: ValueType) -> Any:
        """JSON form of the derived (output) type; by default the input type."""
        return vtype.schema

    @abstractmethod
    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        """The specialised per-value callable, built once."""

    @property
    def key_name(self) -> str | None:
        """Name of the keyring key this transform uses, if any."""
        return None

    @property
    def subject(self) -> str | None:
        """Field name of the data subject (date_shift, budgeted noise), if any; when set, the
        bound callable takes ``(value, subject_value)``."""
        return None

    def describe(self) -> str:
        """A short, value-free description for the derived schema's docs."""
        args = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if getattr(self, f.name) is not None
        )
        return f"{self.name}({args})"


def check_kind(cls: type[Transform], vtype: ValueType, ctx: FieldContext) -> None:
    """Raise :class:`PolicyError` if ``cls`` does not accept values of ``vtype``."""
    if vtype.kind not in cls.kinds:
        raise ctx.error(f"action {cls.name!r} does not fit type {vtype.describe()}")


def require_key(res: Resources, name: str, ctx: FieldContext) -> Keyring:
    """The keyring, checked to hold ``name``; :class:`PolicyError` otherwise."""
    if res.keyring is None:
        raise ctx.error(f"needs key {name!r} but no keyring was given")
    if name not in res.keyring:
        raise ctx.error(f"key {name!r} is not in the keyring")
    return res.keyring
