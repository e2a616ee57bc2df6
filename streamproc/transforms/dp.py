"""Exact samplers for differential privacy (Canonne, Kamath, Steinke 2020).

The discrete Laplace and discrete Gaussian are sampled with integer arithmetic only, from a
source of uniform random integers, so there is no floating-point sampling to attack (Mironov
2012). Real values are handled by the caller on a grid of ``2**k`` (see ``noise.py``): the
value is rounded to the grid and an integer number of grid steps is added -- the same
construction OpenDP uses for floats.

``rng`` is anything with ``randrange`` and ``getrandbits`` (``random.Random``): tests inject a
seeded one; production uses ``secrets.SystemRandom`` (the OS CSPRNG).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol


class RandomSource(Protocol):
    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int: ...

    def getrandbits(self, k: int, /) -> int: ...


def bernoulli_exp_le1(num: int, den: int, rng: RandomSource) -> bool:
    """Bernoulli(exp(-num/den)) for 0 <= num <= den (CKS20 Algorithm 1)."""
    k = 1
    while rng.randrange(den * k) < num:
        k += 1
    return k % 2 == 1


def bernoulli_exp(num: int, den: int, rng: RandomSource) -> bool:
    """Bernoulli(exp(-num/den)) for any num >= 0, den > 0."""
    while num > den:
        if not bernoulli_exp_le1(1, 1, rng):
            return False
        num -= den
    return bernoulli_exp_le1(num, den, rng)


def discrete_laplace(s: int, t: int, rng: RandomSource) -> int:
    """P(x) proportional to exp(-|x| * s / t) over the integers (CKS20 Algorithm 2)."""
    while True:
        u = rng.randrange(t)
        if not bernoulli_exp(u, t, rng):
            continue
        v = 0
        while bernoulli_exp_le1(1, 1, rng):
            v += 1
        y = (u + t * v) // s
        if rng.getrandbits(1):
            if y == 0:
                continue
            return -y
        return y


def discrete_gaussian(sigma2: Fraction, rng: RandomSource) -> int:
    """P(x) proportional to exp(-x^2 / (2 sigma2)) over the integers (CKS20 Algorithm 3)."""
    a, b = sigma2.numerator, sigma2.denominator
    t = math.isqrt(a // b) + 1
    while True:
        y = discrete_laplace(1, t, rng)
        if bernoulli_exp((abs(y) * b * t - a) ** 2, 2 * a * b * t * t, rng):
            return y


@dataclass(frozen=True)
class DiscreteLaplace:
    """Discrete Laplace with the given scale (in grid units)."""

    scale: Fraction

    def sample(self, rng: RandomSource) -> int:
        return discrete_laplace(self.scale.denominator, self.scale.numerator, rng)


@dataclass(frozen=True)
class DiscreteGaussian:
    """Discrete Gaussian with the given variance parameter (in grid units squared)."""

    sigma2: Fraction

    def sample(self, rng: RandomSource) -> int:
        return discrete_gaussian(self.sigma2, rng)


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    """Sigma giving (epsilon, delta)-DP for the (discrete) Gaussian, via zCDP.

    The discrete Gaussian with ``sigma`` is ``rho = sensitivity^2 / (2 sigma^2)``-zCDP (CKS20
    Thm 4), and rho-zCDP implies ``(rho + 2 sqrt(rho ln(1/delta)), delta)``-DP; solving for the
    largest rho within epsilon gives sigma. Valid for any epsilon > 0.
    """
    log_inv_delta = math.log(1.0 / delta)
    sqrt_rho = math.sqrt(log_inv_delta + epsilon) - math.sqrt(log_inv_delta)
    return sensitivity / (sqrt_rho * math.sqrt(2.0))
