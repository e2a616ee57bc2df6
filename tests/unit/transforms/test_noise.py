"""DP noise: exact discrete samplers with the right scale, reproducible under a seed."""

from __future__ import annotations

import json
import math
import os
import random
import statistics
from fractions import Fraction

import numpy as np
import pytest

from streamproc.transforms import dp
from streamproc.transforms.base import Resources, ValueType
from streamproc.transforms.noise import Noise
from tests.unit.engine_helpers import plan_for

N = 20_000


def laplace_mean_abs(t: float) -> float:
    """E|X| for the discrete Laplace P(x) ~ exp(-|x|/t)."""
    q = math.exp(-1 / t)
    return 2 * q / ((1 - q) * (1 + q))


@pytest.mark.parametrize("scale", [Fraction(1, 2), Fraction(2), Fraction(25)])
def test_discrete_laplace_pmf_and_scale(scale: Fraction) -> None:
    rng = random.Random(1234)
    draws = [dp.DiscreteLaplace(scale).sample(rng) for _ in range(N)]
    t = float(scale)
    assert statistics.fmean(map(abs, draws)) == pytest.approx(laplace_mean_abs(t), rel=0.05)
    q = math.exp(-1 / t)
    for x in (0, 1, -1):  # exact pmf: (1-q)/(1+q) q^|x|
        expected = (1 - q) / (1 + q) * q ** abs(x)
        assert draws.count(x) / N == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("sigma", [1.5, 10.0])
def test_discrete_gaussian_scale(sigma: float) -> None:
    rng = random.Random(99)
    sampler = dp.DiscreteGaussian(Fraction(sigma) ** 2)
    draws = [sampler.sample(rng) for _ in range(N)]
    assert statistics.fmean(draws) == pytest.approx(0, abs=0.1 * sigma)
    assert statistics.pstdev(draws) == pytest.approx(sigma, rel=0.05)


def test_bernoulli_exp_probability() -> None:
    rng = random.Random(3)
    hits = sum(dp.bernoulli_exp(3, 2, rng) for _ in range(N))
    assert hits / N == pytest.approx(math.exp(-1.5), abs=0.01)


@pytest.mark.parametrize(
    ("avro_type", "ann", "value", "expected_scale"),
    [
        ("long", {"epsilon": 0.5, "sensitivity": 1}, 100, 2.0),
        ("double", {"epsilon": 1.0, "sensitivity": 1000}, 52_000.0, 1000.0),
        ("double", {"epsilon": 2.0, "sensitivity": 0.1}, 0.5, 0.05),
    ],
)
def test_noise_transform_empirical_scale_is_sensitivity_over_epsilon(
    avro_type: str, ann: dict[str, float], value: float, expected_scale: float
) -> None:
    plan = plan_for(avro_type, {"action": "noise", **ann}, rng=random.Random(7))
    noise = [plan.sanitize({"sid": "", "v": value})["v"] - value for _ in range(N)]
    mean_abs = statistics.fmean(map(abs, noise))
    if avro_type == "long":
        assert mean_abs == pytest.approx(laplace_mean_abs(expected_scale), rel=0.05)
    else:
        assert mean_abs == pytest.approx(expected_scale, rel=0.05)  # E|Laplace(b)| = b
    assert abs(statistics.fmean(noise)) < 0.05 * expected_scale * 4


def test_gaussian_noise_sigma_from_zcdp_calibration() -> None:
    ann = {
        "action": "noise",
        "mechanism": "gaussian",
        "epsilon": 1.0,
        "delta": 1e-5,
        "sensitivity": 1.0,
    }
    plan = plan_for("double", ann, rng=random.Random(11))
    sigma = dp.gaussian_sigma(1.0, 1.0, 1e-5)
    assert 3.0 < sigma < 5.0  # rho ~ 0.02 for (1, 1e-5)
    noise = [plan.sanitize({"sid": "", "v": 0.0})["v"] for _ in range(N)]
    assert statistics.pstdev(noise) == pytest.approx(sigma, rel=0.05)


def test_noise_uses_the_vetted_discrete_sampler_on_a_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("floating-point sampler used")

    for name in ("laplace", "normal", "exponential", "random"):
        monkeypatch.setattr(np.random, name, forbidden)
    monkeypatch.setattr(random, "gauss", forbidden)
    monkeypatch.setattr(random, "expovariate", forbidden)

    noise = Noise(mechanism="laplace", epsilon=1.0, sensitivity=1000.0)
    cal = noise.calibrate(ValueType("double", None, "double"))
    assert isinstance(cal.sampler, dp.DiscreteLaplace)
    assert cal.granularity == 2.0 ** math.floor(math.log2(cal.granularity))  # a power of two
    assert cal.granularity < cal.scale / 2**19
    plan = plan_for("double", {"action": "noise", "epsilon": 1.0, "sensitivity": 1000})
    for _ in range(200):  # production source (OS CSPRNG), not seeded
        out = plan.sanitize({"sid": "", "v": 12345.678})["v"]
        assert (out / cal.granularity).is_integer()  # on the grid: snapping, not raw floats
    gauss = Noise(mechanism="gaussian", epsilon=1.0, sensitivity=1.0, delta=1e-6)
    assert isinstance(gauss.calibrate(ValueType("long", None, "long")).sampler, dp.DiscreteGaussian)


def test_seeded_noise_is_reproducible_and_unseeded_is_not() -> None:
    ann = {"action": "noise", "epsilon": 1.0, "sensitivity": 10}
    runs = [plan_for("double", ann, rng=random.Random(42)) for _ in range(2)]
    a, b = ([p.sanitize({"sid": "", "v": 1.0})["v"] for _ in range(50)] for p in runs)
    assert a == b
    prod = [plan_for("double", ann) for _ in range(2)]
    c, d = ([p.sanitize({"sid": "", "v": 1.0})["v"] for _ in range(50)] for p in prod)
    assert c != d


def test_clamp_bounds_the_input_and_int_range_bounds_the_output() -> None:
    ann = {"action": "noise", "epsilon": 10.0, "sensitivity": 1, "clamp": [0, 100]}
    plan = plan_for("int", ann, rng=random.Random(1))
    outs = [plan.sanitize({"sid": "", "v": 10**6})["v"] for _ in range(500)]
    assert 95 < statistics.fmean(outs) < 105
    top = plan_for(
        "int", {"action": "noise", "epsilon": 0.01, "sensitivity": 1000}, rng=random.Random(1)
    )
    assert all(top.sanitize({"sid": "", "v": 2**31 - 1})["v"] <= 2**31 - 1 for _ in range(100))


def test_matches_opendp_reference_scale() -> None:
    """Cross-check against OpenDP's vetted Laplace (too slow per call to use per record)."""
    dp_prelude = pytest.importorskip("opendp.prelude")
    dp_prelude.enable_features("contrib")
    meas = dp_prelude.m.make_laplace(
        dp_prelude.atom_domain(T=int), dp_prelude.absolute_distance(T=int), scale=3.0
    )
    theirs = statistics.fmean(abs(meas(0)) for _ in range(3000))
    rng = random.Random(5)
    ours = statistics.fmean(abs(dp.DiscreteLaplace(Fraction(3)).sample(rng)) for _ in range(3000))
    assert ours == pytest.approx(theirs, rel=0.1)
    assert ours == pytest.approx(laplace_mean_abs(3.0), rel=0.07)


def test_buffered_system_random_is_uniform_and_unseedable() -> None:
    rng = dp.BufferedSystemRandom()
    counts = [0] * 7
    for _ in range(14_000):
        counts[rng.randrange(7)] += 1
    assert all(1700 < c < 2300 for c in counts)
    with pytest.raises(NotImplementedError):
        rng.getstate()


def seeded_words(seed: int) -> dp.Words:
    gen = np.random.Generator(np.random.PCG64(seed))
    return lambda n: gen.integers(0, 2**64, size=n, dtype=np.uint64)


@pytest.mark.parametrize(("s", "t"), [(1, 2), (2, 1), (1, 25), (3, 7)])
def test_batched_discrete_laplace_has_the_exact_pmf(s: int, t: int) -> None:
    draws = dp.discrete_laplace_batch(s, t, 100_000, seeded_words(s * 100 + t))
    assert draws.dtype == np.int64 and len(draws) == 100_000
    scale = t / s
    q = math.exp(-1 / scale)
    assert float(np.mean(np.abs(draws))) == pytest.approx(laplace_mean_abs(scale), rel=0.03)
    for x in (0, 1, -1, 2, -2):
        expected = (1 - q) / (1 + q) * q ** abs(x)
        assert float(np.mean(draws == x)) == pytest.approx(expected, abs=0.006)
    assert abs(float(np.mean(draws))) < 0.05 * scale + 0.02  # symmetric


def test_batched_and_scalar_samplers_agree_in_distribution() -> None:
    scale = Fraction(7, 3)
    batch = dp.discrete_laplace_batch(3, 7, 40_000, seeded_words(8))
    rng = random.Random(8)
    scalar = [dp.DiscreteLaplace(scale).sample(rng) for _ in range(40_000)]
    for x in range(-3, 4):
        assert float(np.mean(batch == x)) == pytest.approx(scalar.count(x) / 40_000, abs=0.012)


def test_production_noise_draws_from_the_batched_csprng_stream() -> None:
    noise = Noise(mechanism="laplace", epsilon=1.0, sensitivity=1000.0)
    cal = noise.calibrate(ValueType("double", None, "double"))
    draw = Noise._sampler(cal, Resources())
    assert isinstance(draw, dp.LaplaceStream)
    draws = [draw() for _ in range(20_000)]  # crosses several batch refills
    assert statistics.fmean(map(abs, draws)) == pytest.approx(
        laplace_mean_abs(float(cal.scale) / cal.granularity), rel=0.05
    )
    assert dp.DiscreteLaplace(Fraction(2**41)).stream() is None  # outside the batch range


def test_a_forked_child_never_replays_buffered_draws() -> None:
    stream = dp.LaplaceStream(1, 1000)
    rng = dp.BufferedSystemRandom()
    stream(), rng.randrange(10)  # both buffers now hold unused draws
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report what it draws next
        os.write(write, json.dumps([[stream() for _ in range(20)], rng.getrandbits(64)]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        child = json.loads(fh.read())
    os.waitpid(pid, 0)
    parent = [[stream() for _ in range(20)], rng.getrandbits(64)]
    assert child[0] != parent[0] and child[1] != parent[1]


@pytest.mark.parametrize("sigma", [1.5, 10.0, 1.39e6])
def test_gaussian_stream_has_the_scale_and_pmf_of_the_scalar_sampler(sigma: float) -> None:
    sigma2 = Fraction(sigma) ** 2
    stream = dp.DiscreteGaussian(sigma2).stream(seeded_words(int(sigma)))
    assert isinstance(stream, dp.GaussianStream)
    draws = [stream() for _ in range(N)]
    assert statistics.fmean(draws) == pytest.approx(0, abs=0.05 * sigma)
    assert statistics.pstdev(draws) == pytest.approx(sigma, rel=0.03)
    if sigma < 2:  # the exact pmf: exp(-x^2 / 2 sigma^2), normalised over the integers
        weights = {x: math.exp(-(x * x) / (2 * sigma * sigma)) for x in range(-40, 41)}
        total = sum(weights.values())
        for x in (0, 1, -1, 2, -2):
            assert draws.count(x) / N == pytest.approx(weights[x] / total, abs=0.012)


def test_production_gaussian_noise_draws_from_the_batched_stream() -> None:
    noise = Noise(mechanism="gaussian", epsilon=0.5, delta=1e-6, sensitivity=1.0)
    cal = noise.calibrate(ValueType("float", None, "float"))
    assert isinstance(Noise._sampler(cal, Resources()), dp.GaussianStream)
    seeded = Noise._sampler(cal, Resources(rng=random.Random(1)))
    assert not isinstance(seeded, dp.GaussianStream)  # a seed keeps the scalar sampler
    assert dp.DiscreteGaussian(Fraction(2**81)).stream() is None  # outside the batch range


def test_a_forked_child_never_replays_buffered_gaussian_draws() -> None:
    stream = dp.GaussianStream(Fraction(100))
    stream()  # the candidate and Bernoulli buffers now hold unused draws
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, json.dumps([stream() for _ in range(40)]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        child = json.loads(fh.read())
    os.waitpid(pid, 0)
    assert child != [stream() for _ in range(40)]
