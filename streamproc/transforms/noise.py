"""``noise``: differentially private noise from an exact discrete sampler (see ``dp.py``).

Integers get integer noise (discrete Laplace or discrete Gaussian, scale from
``sensitivity / epsilon``). Floats are rounded to a grid of ``2**k`` (k about 20 bits below
the noise scale) and get an integer number of grid steps; the rounding is accounted for by
adding one grid step to the sensitivity. With ``clamp`` the value is clamped first. Integer
results are kept inside the Avro type's range (post-processing, no privacy cost).

With ``subject`` and ``budget`` the field is budgeted per data subject (see
:mod:`streamproc.budget`): each fresh noisy value costs ``epsilon`` from the subject's budget
for ``budget_window_days``; once it is spent, the subject's last noisy value is released
again (``on_exhausted: repeat``, post-processing) or null (``on_exhausted: null``, which
makes the derived type nullable). docs/annotations.md states the guarantee and its limits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import Any, ClassVar

from streamproc.budget import BudgetError, BudgetLedger, SubjectPseudonyms
from streamproc.errors import TransformError
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
from streamproc.transforms.dp import (
    BufferedSystemRandom,
    DiscreteGaussian,
    DiscreteLaplace,
    gaussian_sigma,
)
from streamproc.transforms.registry import register

GRID_BITS = 20  # grid step ~ scale / 2**20
ON_EXHAUSTED = ("repeat", "null")
#: Parameters that only apply together with ``subject`` and ``budget``.
BUDGET_ONLY = ("budget_window_days", "on_exhausted", "key")


@dataclass(frozen=True)
class Calibration:
    """What ``noise`` adds: ``sampler`` draws integers, scaled by ``granularity``."""

    sampler: DiscreteLaplace | DiscreteGaussian
    granularity: float  # 1.0 for integers
    scale: float  # Laplace scale b or Gaussian sigma, in value units


@register
@dataclass(frozen=True)
class Noise(Transform):
    name: ClassVar[str] = "noise"
    kinds: ClassVar[frozenset[str]] = frozenset({base.INTEGER, base.FLOAT})
    deterministic: ClassVar[bool] = False
    mechanism: str = "laplace"
    epsilon: float = 1.0
    sensitivity: float = 1.0
    delta: float | None = None
    clamp: tuple[float, float] | None = None

    # Per-subject budget (None: unbudgeted, every record takes fresh noise).
    subject_field: str | None = None
    budget: float | None = None
    budget_window_days: int | None = None
    on_exhausted: str | None = None
    key: str | None = None
    in_union: bool = field(default=False, repr=False)  # the value sits in a nullable union

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> Noise:
        base.check_kind(cls, vtype, ctx)
        mechanism = params.get_str("mechanism", "laplace", choices=("laplace", "gaussian"))
        epsilon = params.get_number("epsilon", positive=True)
        sensitivity = params.get_number("sensitivity", positive=True)
        delta = params.opt_number("delta", positive=True)
        clamp = params.opt_range("clamp")
        if mechanism == "gaussian" and (delta is None or not delta < 1):
            raise ctx.error("noise: gaussian needs parameter 'delta' in (0, 1)")
        if mechanism == "laplace" and delta is not None:
            raise ctx.error("noise: 'delta' only applies to the gaussian mechanism")
        budgeted = cls._budget_params(params, epsilon, ctx)
        params.done()
        return cls(mechanism, epsilon, sensitivity, delta, clamp, *budgeted, ctx.nullable)

    @staticmethod
    def _budget_params(
        params: Params, epsilon: float, ctx: FieldContext
    ) -> tuple[str | None, float | None, int | None, str | None, str | None]:
        """(subject, budget, window days, on_exhausted, key), or all None when unbudgeted."""
        if not (params.has("subject") or params.has("budget")):
            extra = [name for name in BUDGET_ONLY if params.has(name)]
            if extra:
                raise ctx.error(f"noise: {extra[0]!r} needs parameters 'subject' and 'budget'")
            return None, None, None, None, None
        subject = params.get_str("subject")
        budget = params.get_number("budget", positive=True)
        window = params.get_int("budget_window_days", 30, minimum=1)
        on_exhausted = params.get_str("on_exhausted", "repeat", choices=ON_EXHAUSTED)
        key = params.get_str("key", "default")
        if window > 3650:
            raise ctx.error("noise: parameter 'budget_window_days' must be <= 3650")
        if budget < epsilon:
            raise ctx.error("noise: parameter 'budget' must be >= 'epsilon' (one release)")
        return subject, budget, window, on_exhausted, key

    @property
    def subject(self) -> str | None:
        return self.subject_field

    @property
    def key_name(self) -> str | None:
        return self.key

    def output_type(self, vtype: ValueType) -> Any:
        # A refused release is null: the value becomes nullable (unless its union already is).
        if self.on_exhausted == "null" and not self.in_union:
            return ["null", vtype.schema]
        return vtype.schema

    def describe(self) -> str:
        args = ", ".join(
            f"{name}={value!r}"
            for name, value in vars(self).items()
            if value is not None and name != "in_union"
        )
        return f"{self.name}({args})"

    def calibrate(self, vtype: ValueType) -> Calibration:
        """The sampler and grid for values of ``vtype``."""
        if vtype.kind == base.INTEGER:
            k_gran = Fraction(1)
            sens = Fraction(str(self.sensitivity))
        else:
            k = math.floor(math.log2(self._scale(self.sensitivity))) - GRID_BITS
            k_gran = Fraction(2) ** k
            # Rounding to the grid can move neighbouring values one more step apart.
            sens = Fraction(self.sensitivity) + k_gran
        if self.mechanism == "laplace":
            scale = sens / Fraction(str(self.epsilon))
            return Calibration(DiscreteLaplace(scale / k_gran), float(k_gran), float(scale))
        assert self.delta is not None
        sigma = gaussian_sigma(float(sens), self.epsilon, self.delta) * (1 + 1e-9)
        sigma2 = Fraction(sigma) ** 2 / k_gran**2
        return Calibration(DiscreteGaussian(sigma2), float(k_gran), sigma)

    def _scale(self, sensitivity: float) -> float:
        if self.mechanism == "laplace":
            return sensitivity / self.epsilon
        assert self.delta is not None
        return gaussian_sigma(sensitivity, self.epsilon, self.delta)

    @staticmethod
    def _sampler(cal: Calibration, res: Resources) -> Callable[[], int]:
        """Seeded (tests): the scalar sampler over ``res.rng``. Production: the OS CSPRNG,
        through the vectorised Laplace sampler (the Gaussian's candidates too) where it
        applies."""
        if res.rng is None and isinstance(cal.sampler, DiscreteLaplace | DiscreteGaussian):
            stream = cal.sampler.stream()
            if stream is not None:
                return stream
        rng = res.rng if res.rng is not None else BufferedSystemRandom()
        return partial(cal.sampler.sample, rng)

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        plain = self._bind_plain(vtype, res)
        if self.budget is None:
            return plain
        return self._bind_budgeted(plain, ctx, res)

    def _bind_budgeted(self, plain: ValueFn, ctx: FieldContext, res: Resources) -> ValueFn:
        """``(value, subject) -> noisy value``: fresh noise while the subject's budget lasts."""
        assert self.key is not None and self.subject_field is not None
        assert self.budget is not None and self.budget_window_days is not None
        keyring = base.require_key(res, self.key, ctx)
        _, secret = keyring.subkey(self.key, "budget")
        of = SubjectPseudonyms(secret, self.subject_field, canonical).of
        # Without the plan's ledger (a transform bound on its own) the budget still holds,
        # in a ledger private to this callable.
        ledger = res.budget if res.budget is not None else BudgetLedger()
        try:
            acc = ledger.account(
                ctx.path,
                epsilon=self.epsilon,
                budget=self.budget,
                window_days=self.budget_window_days,
            )
        except BudgetError as exc:
            raise ctx.error(f"noise: {exc}") from None
        spend, remember, last = ledger.spend, ledger.remember, ledger.last
        check = ledger.check_subject  # keyed (the worker): the record's key is its subject
        null = self.on_exhausted == "null"
        no_value = f"schema {ctx.schema_file}: field {ctx.path}: budget spent, nothing to repeat"

        def noise_budgeted(value: Any, subject: Any) -> Any:
            check(subject)
            p = of(subject)
            if spend(p, acc):
                out = plain(value)
                remember(p, acc, out)
                return out
            if null:
                return None
            found, out = last(p, acc)
            if not found:
                raise TransformError(no_value)
            return out

        return noise_budgeted

    def _bind_plain(self, vtype: ValueType, res: Resources) -> ValueFn:
        cal = self.calibrate(vtype)
        draw = self._sampler(cal, res)
        lo, hi = self.clamp if self.clamp is not None else (-math.inf, math.inf)
        if vtype.kind == base.INTEGER:
            tmin, tmax = base.INT_RANGE[vtype.base]
            ilo = max(tmin, math.ceil(lo)) if lo > -math.inf else tmin
            ihi = min(tmax, math.floor(hi)) if hi < math.inf else tmax

            def noise_int(value: int) -> int:
                value = ilo if value < ilo else ihi if value > ihi else value
                out = value + draw()
                return tmin if out < tmin else tmax if out > tmax else out

            return noise_int

        gran = cal.granularity
        isfinite = math.isfinite

        def noise_float(value: float) -> Any:
            value = lo if value < lo else hi if value > hi else value
            if not isfinite(value):
                raise ValueError("non-finite value cannot take noise")
            return (round(value / gran) + draw()) * gran

        return noise_float
