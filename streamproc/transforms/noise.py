"""``noise``: differentially private noise from an exact discrete sampler (see ``dp.py``).

Integers get integer noise (discrete Laplace or discrete Gaussian, scale from
``sensitivity / epsilon``). Floats are rounded to a grid of ``2**k`` (k about 20 bits below
the noise scale) and get an integer number of grid steps; the rounding is accounted for by
adding one grid step to the sensitivity. With ``clamp`` the value is clamped first. Integer
results are kept inside the Avro type's range (post-processing, no privacy cost).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
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
from streamproc.transforms.dp import (
    BufferedSystemRandom,
    DiscreteGaussian,
    DiscreteLaplace,
    gaussian_sigma,
)
from streamproc.transforms.registry import register

GRID_BITS = 20  # grid step ~ scale / 2**20


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

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> Noise:
        base.check_kind(cls, vtype, ctx)
        mechanism = params.get_str("mechanism", "laplace", choices=("laplace", "gaussian"))
        epsilon = params.get_number("epsilon", positive=True)
        sensitivity = params.get_number("sensitivity", positive=True)
        delta = params.opt_number("delta", positive=True)
        clamp = params.opt_range("clamp")
        params.done()
        if mechanism == "gaussian" and (delta is None or not delta < 1):
            raise ctx.error("noise: gaussian needs parameter 'delta' in (0, 1)")
        if mechanism == "laplace" and delta is not None:
            raise ctx.error("noise: 'delta' only applies to the gaussian mechanism")
        return cls(mechanism, epsilon, sensitivity, delta, clamp)

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
        through the vectorised Laplace sampler where it applies."""
        if res.rng is None and isinstance(cal.sampler, DiscreteLaplace):
            stream = cal.sampler.stream()
            if stream is not None:
                return stream
        rng = res.rng if res.rng is not None else BufferedSystemRandom()
        return partial(cal.sampler.sample, rng)

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
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
