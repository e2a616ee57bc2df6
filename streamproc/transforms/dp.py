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
import os
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol


class RandomSource(Protocol):
    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int: ...

    def getrandbits(self, k: int, /) -> int: ...


class BufferedSystemRandom(random.Random):
    """OS CSPRNG bits (``os.urandom``), fetched 4 KiB at a time.

    ``secrets.SystemRandom`` makes one system call per draw, and an exact sampler makes a dozen
    draws per value; buffering keeps the same source at a fraction of the cost. Not seedable.
    """

    _CHUNK = 4096

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        super().__init__()

    def seed(self, *args: object, **kwargs: object) -> None:
        return None

    def getstate(self) -> tuple[Any, ...]:
        raise NotImplementedError("a CSPRNG has no state to save")

    def setstate(self, state: tuple[Any, ...]) -> None:
        raise NotImplementedError("a CSPRNG has no state to restore")

    def _take(self, n: int) -> bytes:
        if self._pos + n > len(self._buf):
            self._buf = os.urandom(max(self._CHUNK, n))
            self._pos = 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def getrandbits(self, k: int, /) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        if k == 0:
            return 0
        n = (k + 7) // 8
        return int.from_bytes(self._take(n), "big") >> (n * 8 - k)

    def random(self) -> float:
        return (int.from_bytes(self._take(7), "big") >> 3) * 2.0**-53

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is not None or step != 1 or start <= 0:
            return super().randrange(start, stop, step)
        # Fast path for randrange(n): rejection sampling on k-bit draws (no modulo bias).
        k = start.bit_length()
        n = (k + 7) // 8
        shift = n * 8 - k
        while True:
            pos = self._pos
            if pos + n > len(self._buf):
                self._buf = os.urandom(max(self._CHUNK, n))
                pos = 0
            self._pos = pos + n
            r = int.from_bytes(self._buf[pos : pos + n], "big") >> shift
            if r < start:
                return r


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
    """P(x) proportional to exp(-|x| * s / t) over the integers (CKS20 Algorithm 2).

    The Bernoulli(exp(-gamma)) steps of Algorithm 1 are inlined (this runs per record).
    """
    randrange, getrandbits = rng.randrange, rng.getrandbits
    while True:
        u = randrange(t)
        k = 1  # Bernoulli(exp(-u/t)), u < t
        while randrange(t * k) < u:
            k += 1
        if not k & 1:
            continue
        v = 0
        while True:  # count successes of Bernoulli(exp(-1)); its first step always succeeds
            k = 2
            while randrange(k) == 0:
                k += 1
            if not k & 1:
                break
            v += 1
        y = (u + t * v) // s
        if getrandbits(1):
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
