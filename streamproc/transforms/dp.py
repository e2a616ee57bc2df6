"""Exact samplers for differential privacy (Canonne, Kamath, Steinke 2020).

The discrete Laplace and discrete Gaussian are sampled with integer arithmetic only, from a
source of uniform random integers, so there is no floating-point sampling to attack (Mironov
2012). Real values are handled by the caller on a grid of ``2**k`` (see ``noise.py``): the
value is rounded to the grid and an integer number of grid steps is added -- the same
construction OpenDP uses for floats.

``rng`` is anything with ``randrange`` and ``getrandbits`` (``random.Random``): tests inject a
seeded one; production uses the OS CSPRNG (:class:`BufferedSystemRandom`).

:func:`discrete_laplace_batch` runs the same algorithm on numpy integer arrays, thousands of
draws at a time from CSPRNG words, which is what the noise transform uses per record in
production (:class:`LaplaceStream`): the same exact distribution at a fraction of the cost.
The discrete Gaussian takes its Laplace candidates from such a stream and keeps each with
the exact Bernoulli of Algorithm 3 on Python integers (:class:`GaussianStream`).
Buffered random state is discarded in a forked child, so worker processes never replay
their parent's draws.
"""

from __future__ import annotations

import math
import os
import random
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Words = Callable[[int], "npt.NDArray[np.uint64]"]
"""A source of ``n`` uniform 64-bit words."""

_AFTER_FORK: weakref.WeakSet[Any] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for source in list(_AFTER_FORK):
        source.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


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
        _AFTER_FORK.add(self)

    def reset(self) -> None:
        """Drop buffered bits (called in a forked child: never reuse the parent's)."""
        self._buf = b""
        self._pos = 0

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


def urandom_words(n: int) -> npt.NDArray[np.uint64]:
    """``n`` uniform 64-bit words from the OS CSPRNG."""
    return np.frombuffer(os.urandom(8 * n), dtype=np.uint64)


def _below(bounds: npt.NDArray[np.int64], words: Words) -> npt.NDArray[np.int64]:
    """Uniform integers in ``[0, bound)`` per element (rejection on masked words, no bias)."""
    top = (bounds - 1).astype(np.uint64)
    mask = top.copy()
    for shift in (1, 2, 4, 8, 16, 32):
        mask |= mask >> np.uint64(shift)
    out = np.empty(len(bounds), dtype=np.int64)
    todo = np.arange(len(bounds))
    while todo.size:
        r = words(todo.size) & mask[todo]
        ok = r <= top[todo]
        out[todo[ok]] = r[ok].astype(np.int64)
        todo = todo[~ok]
    return out


BATCH_MAX_T = 2**40  # keeps t * k (Algorithm 1) far inside int64


def discrete_laplace_batch(s: int, t: int, n: int, words: Words) -> npt.NDArray[np.int64]:
    """``n`` independent draws of :func:`discrete_laplace` ``(s, t)``, vectorised.

    Each candidate runs the steps of CKS20 Algorithm 2 on integer arrays; rejected
    candidates are discarded and fresh ones drawn until ``n`` are accepted. Acceptance does
    not depend on a candidate's position, so the first ``n`` accepted are i.i.d.
    """
    if not (0 < t < BATCH_MAX_T and 0 < s < BATCH_MAX_T):
        raise ValueError("discrete Laplace parameters out of the batch sampler's range")
    parts: list[npt.NDArray[np.int64]] = []
    got = 0
    while got < n:
        m = max(64, 2 * (n - got))
        u = _below(np.full(m, t, dtype=np.int64), words)
        # Bernoulli(exp(-u/t)), Algorithm 1: k counts draws below u; success iff k is odd.
        k = np.ones(m, dtype=np.int64)
        active = np.arange(m)
        while active.size:
            cont = _below(t * k[active], words) < u[active]
            active = active[cont]
            k[active] += 1
        u = u[(k & 1) == 1]
        # v: successes of Bernoulli(exp(-1)) before the first failure.
        v = np.zeros(len(u), dtype=np.int64)
        active = np.arange(len(u))
        while active.size:
            kk = np.full(active.size, 2, dtype=np.int64)
            inner = np.arange(active.size)
            while inner.size:
                inner = inner[_below(kk[inner], words) == 0]
                kk[inner] += 1
            active = active[(kk & 1) == 1]
            v[active] += 1
        y = (u + t * v) // s
        negative = (words(len(y)) & np.uint64(1)).astype(bool)
        z = np.where(negative, -y, y)[~(negative & (y == 0))]
        parts.append(z)
        got += len(z)
    return np.concatenate(parts)[:n]


class LaplaceStream:
    """Draws of one discrete Laplace, served one at a time from vectorised batches."""

    BATCH = 4096

    def __init__(self, s: int, t: int, words: Words = urandom_words) -> None:
        self._s, self._t, self._words = s, t, words
        self._it: Iterator[int] = iter(())
        self.reset()
        _AFTER_FORK.add(self)

    def _batches(self) -> Iterator[list[int]]:
        while True:
            yield discrete_laplace_batch(self._s, self._t, self.BATCH, self._words).tolist()

    def reset(self) -> None:
        """Drop buffered draws (called in a forked child: never reuse the parent's)."""
        self._it = chain.from_iterable(self._batches())

    def __call__(self) -> int:
        return next(self._it)


class GaussianStream:
    """Draws of one discrete Gaussian (CKS20 Algorithm 3): candidates from a vectorised
    discrete Laplace stream, each kept with the exact Bernoulli on Python integers."""

    def __init__(self, sigma2: Fraction, words: Words = urandom_words) -> None:
        a, b = sigma2.numerator, sigma2.denominator
        t = math.isqrt(a // b) + 1
        self._candidates = LaplaceStream(1, t, words)
        self._rng = BufferedSystemRandom()  # its own buffer, reset after a fork too
        self._a, self._bt, self._den = a, b * t, 2 * a * b * t * t

    def __call__(self) -> int:
        candidate, rng, a, bt, den = self._candidates, self._rng, self._a, self._bt, self._den
        while True:
            y = candidate()
            if bernoulli_exp((abs(y) * bt - a) ** 2, den, rng):
                return y


@dataclass(frozen=True)
class DiscreteLaplace:
    """Discrete Laplace with the given scale (in grid units)."""

    scale: Fraction

    def sample(self, rng: RandomSource) -> int:
        return discrete_laplace(self.scale.denominator, self.scale.numerator, rng)

    def stream(self, words: Words = urandom_words) -> Callable[[], int] | None:
        """A batched CSPRNG sampler, or None if the scale is outside the batch range."""
        s, t = self.scale.denominator, self.scale.numerator
        if t >= BATCH_MAX_T or s >= BATCH_MAX_T:
            return None
        return LaplaceStream(s, t, words)


@dataclass(frozen=True)
class DiscreteGaussian:
    """Discrete Gaussian with the given variance parameter (in grid units squared)."""

    sigma2: Fraction

    def sample(self, rng: RandomSource) -> int:
        return discrete_gaussian(self.sigma2, rng)

    def stream(self, words: Words = urandom_words) -> Callable[[], int] | None:
        """A sampler on batched CSPRNG candidates, or None outside the batch range."""
        a, b = self.sigma2.numerator, self.sigma2.denominator
        if math.isqrt(a // b) + 1 >= BATCH_MAX_T:
            return None
        return GaussianStream(self.sigma2, words)


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    """Sigma giving (epsilon, delta)-DP for the (discrete) Gaussian, via zCDP.

    The discrete Gaussian with ``sigma`` is ``rho = sensitivity^2 / (2 sigma^2)``-zCDP (CKS20
    Thm 4), and rho-zCDP implies ``(rho + 2 sqrt(rho ln(1/delta)), delta)``-DP; solving for the
    largest rho within epsilon gives sigma. Valid for any epsilon > 0.
    """
    log_inv_delta = math.log(1.0 / delta)
    sqrt_rho = math.sqrt(log_inv_delta + epsilon) - math.sqrt(log_inv_delta)
    return sensitivity / (sqrt_rho * math.sqrt(2.0))
