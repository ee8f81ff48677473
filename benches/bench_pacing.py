"""Pacing benches, each rtbcore kernel beside the same rule in numpy (and pure Python) in one run.

Vectorised groups (items = campaigns per call, 1M): each rtbcore call validates its input (NaN,
negative, infinite, elapsed in [0, total]) and applies the rule in one ``nogil`` pass. Two numpy
baselines per rule: ``numpy_checked`` does the same validation and rule (what the rtbcore call
does, written the obvious numpy way), ``numpy_rule_only`` skips the validation (a lower bound for
numpy; it would return wrong numbers on bad input). Every rtbcore row is asserted equal to its
numpy twin.

- ``pacing linear`` / ``pacing tiered``: ``multiplier(spent, budget, elapsed, total)``.
- ``pacing hard cap``: ``LinearPacer.should_bid(spent, budget, cost)`` (the cap alone).
- ``pacing throttle``: ``ThrottlingPacer.should_bid`` (cap + seeded coin where throttled); numpy
  draws its coins with ``Generator.random``.
- ``pacing pid``: ``PIDPacer.output`` + ``update`` (one campaign-update = both).
- ``pacing value_bid``: ``value_bid`` on 1M requests.

Scalar groups (items = calls from a Python loop, 200k per round):
- ``pacing should_bid scalar``: ``LinearPacer.should_bid(spent, budget, cost)``,
  ``ThrottlingPacer.should_bid(spent, budget, cost, elapsed, total)`` and a one-campaign
  ``PIDPacer.should_bid(...)`` against a pure-Python hard cap with the same checks, and the
  floor: an empty Python function of three arguments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtbcore import LinearPacer, PIDPacer, ThrottlingPacer, TieredPacer, value_bid
from rtbcore.errors import InvalidInputError

N = 1_000_000
CALLS = 200_000
DAY = 86_400.0
ELAPSED = 43_200.0


def _clock() -> float:
    return 0.0


@pytest.fixture(scope="module")
def data():
    rs = np.random.default_rng(0)
    budget = rs.uniform(10.0, 1000.0, N)
    spent = budget * rs.uniform(0.0, 1.0, N)
    cost = rs.uniform(0.1, 5.0, N)
    return spent, budget, cost


# ---- numpy twins --------------------------------------------------------------------------------


def _np_check_time(elapsed: float, total: float) -> float:
    if not (0 < total < math.inf):
        raise InvalidInputError(f"total = {total!r} must be finite and > 0")
    if not (0 <= elapsed <= total):
        raise InvalidInputError(f"elapsed = {elapsed!r} must be in [0, total]")
    return elapsed / total


def _np_check(name: str, x: np.ndarray) -> None:
    bad = ~((x >= 0) & (x < np.inf))
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInputError(f"{name}[{i}] = {x[i]!r} must be finite and >= 0")


def np_linear(spent, budget, elapsed, total, checked=True):
    frac = _np_check_time(elapsed, total) if checked else elapsed / total
    if checked:
        _np_check("spent", spent)
        _np_check("budget", budget)
    return np.where(spent > budget * frac, 0.8, 1.2)


def np_tiered(spent, budget, elapsed, total, checked=True):
    frac = _np_check_time(elapsed, total) if checked else elapsed / total
    if checked:
        _np_check("spent", spent)
        _np_check("budget", budget)
    target = budget * frac
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(target > 0, spent / target, np.where(spent > 0, np.inf, 1.0))
    return np.select([r > 1.2, r > 1.1, r < 0.8, r < 0.9], [0.7, 0.85, 1.3, 1.15], 1.0)


def np_cap(spent, budget, cost, checked=True):
    if checked:
        _np_check("spent", spent)
        _np_check("budget", budget)
        _np_check("cost", cost)
    return spent + cost <= budget


def np_throttle(spent, budget, cost, elapsed, total, rng, checked=True):
    frac = _np_check_time(elapsed, total) if checked else elapsed / total
    if checked:
        _np_check("spent", spent)
        _np_check("budget", budget)
        _np_check("cost", cost)
    used = spent / budget
    p = np.where(used <= frac, 1.0, np.maximum(0.1, np.minimum(1.0, 1.0 - (used - frac))))
    return (spent + cost <= budget) & (rng.random(spent.shape[0]) < p)


class NumpyPID:
    def __init__(self, budget, kp=10.0, ki=50.0, lo=0.1, hi=3.0):
        self.budget = budget
        self.kp, self.ki, self.lo, self.hi = kp, ki, lo, hi
        self.imin, self.imax = (lo - 1.0) / ki, (hi - 1.0) / ki
        n = budget.shape[0]
        self.integ, self.prev, self.last = np.zeros(n), np.zeros(n), np.zeros(n)

    def _error(self, spent, elapsed, checked):
        """The budget error at ``elapsed`` (checked like the rtbcore pacer when ``checked``)."""
        frac = _np_check_time(elapsed, DAY) if checked else elapsed / DAY
        if checked:
            _np_check("spent", spent)
            if (elapsed < self.last).any():
                raise InvalidInputError("elapsed went backwards")
        return (self.budget * frac - spent) / self.budget

    def output(self, spent, elapsed, checked=True):
        err = self._error(spent, elapsed, checked)
        return np.clip(1.0 + self.kp * err + self.ki * self.integ, self.lo, self.hi)

    def update(self, spent, elapsed, checked=True):
        err = self._error(spent, elapsed, checked)
        dt = (elapsed - self.last) / DAY
        inew = np.clip(self.integ + err * dt, self.imin, self.imax)
        u = 1.0 + self.kp * err + self.ki * inew
        hold = ((u > self.hi) & (err > 0)) | ((u < self.lo) & (err < 0))
        self.integ = np.where(hold, self.integ, inew)
        self.prev, self.last = err, np.full_like(self.last, elapsed)


def np_value_bid(ctr, cvr, value, roi, mult, lo=0.10, hi=50.0, checked=True):
    if checked:
        for name, x in (("p_ctr", ctr), ("p_cvr", cvr)):
            bad = ~((x >= 0) & (x <= 1))
            if bad.any():
                raise InvalidInputError(f"{name}[{int(np.argmax(bad))}] must be in [0, 1]")
        _np_check("value", value)
        _np_check("multiplier", mult)
    return np.clip(ctr * cvr * value / roi * mult, lo, hi)


def _setup_vec(benchmark, baseline=False):
    benchmark.extra_info["items"] = N
    if baseline:
        benchmark.extra_info["baseline"] = True


# ---- linear / tiered ----------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "cls", "twin"), [
    pytest.param("linear", LinearPacer, np_linear, id="linear"),
    pytest.param("tiered", TieredPacer, np_tiered, id="tiered"),
])
@pytest.mark.parametrize("impl", ["rtbcore", "numpy_checked", "numpy_rule_only"])
def test_pacing_multiplier(benchmark, data, rule, cls, twin, impl):
    spent, budget, _ = data
    benchmark.group = f"pacing {rule} (1M campaigns)"
    _setup_vec(benchmark, impl != "rtbcore")
    pacer = cls(clock=_clock)
    if impl == "rtbcore":
        out = benchmark(pacer.multiplier, spent, budget, ELAPSED, DAY)
    else:
        out = benchmark(twin, spent, budget, ELAPSED, DAY, impl == "numpy_checked")
    np.testing.assert_array_equal(out, pacer.multiplier(spent, budget, ELAPSED, DAY))


# ---- hard cap -----------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["rtbcore", "numpy_checked", "numpy_rule_only"])
def test_pacing_hard_cap(benchmark, data, impl):
    spent, budget, cost = data
    benchmark.group = "pacing hard cap (1M campaigns)"
    _setup_vec(benchmark, impl != "rtbcore")
    pacer = LinearPacer(clock=_clock)
    if impl == "rtbcore":
        out = benchmark(pacer.should_bid, spent, budget, cost)
    else:
        out = benchmark(np_cap, spent, budget, cost, impl == "numpy_checked")
    np.testing.assert_array_equal(out, spent + cost <= budget)


# ---- throttle -----------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["rtbcore", "numpy_checked", "numpy_rule_only"])
def test_pacing_throttle(benchmark, data, impl):
    spent, budget, cost = data
    benchmark.group = "pacing throttle (1M campaigns)"
    _setup_vec(benchmark, impl != "rtbcore")
    if impl == "rtbcore":
        pacer = ThrottlingPacer(clock=_clock, seed=1)
        out = benchmark(pacer.should_bid, spent, budget, cost, ELAPSED, DAY)
    else:
        rng = np.random.default_rng(1)
        out = benchmark(np_throttle, spent, budget, cost, ELAPSED, DAY, rng,
                        impl == "numpy_checked")
    # different RNGs: compare what is deterministic and the bid rate
    cap = spent + cost <= budget
    assert not np.any(out & ~cap)
    p = ThrottlingPacer(clock=_clock).bid_probability(spent, budget, ELAPSED, DAY)
    assert abs(out.mean() - (p * cap).mean()) < 0.005


# ---- PID ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["rtbcore", "numpy_checked", "numpy_rule_only"])
def test_pacing_pid(benchmark, data, impl):
    spent, budget, _ = data
    benchmark.group = "pacing pid output+update (1M campaigns)"
    _setup_vec(benchmark, impl != "rtbcore")
    clock = {"t": 0.0}

    if impl == "rtbcore":
        pacer = PIDPacer(budget, clock=_clock)

        def step():
            clock["t"] += 1.0
            out = pacer.output(spent, elapsed=clock["t"])
            pacer.update(spent, clock["t"])
            return out
    else:
        twin = NumpyPID(budget)
        checked = impl == "numpy_checked"

        def step():
            clock["t"] += 1.0
            out = twin.output(spent, clock["t"], checked)
            twin.update(spent, clock["t"], checked)
            return out

    benchmark(step)
    ref_pacer, ref_twin = PIDPacer(budget, clock=_clock), NumpyPID(budget)
    for t in (600.0, 1200.0):
        ref_pacer.update(spent, t)
        ref_twin.update(spent, t)
    np.testing.assert_allclose(ref_pacer.output(spent, elapsed=1800.0),
                               ref_twin.output(spent, 1800.0), rtol=1e-12)


# ---- value_bid ----------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["rtbcore", "numpy_checked", "numpy_rule_only"])
def test_pacing_value_bid(benchmark, impl):
    rs = np.random.default_rng(2)
    ctr, cvr = rs.uniform(0.005, 0.05, N), rs.uniform(0.01, 0.1, N)
    value, mult = rs.uniform(100.0, 5000.0, N), rs.uniform(0.5, 1.5, N)
    benchmark.group = "pacing value_bid (1M requests)"
    _setup_vec(benchmark, impl != "rtbcore")
    if impl == "rtbcore":
        out = benchmark(value_bid, ctr, cvr, value, 1.5, mult)
    else:
        out = benchmark(np_value_bid, ctr, cvr, value, 1.5, mult, 0.10, 50.0,
                        impl == "numpy_checked")
    np.testing.assert_array_equal(out, np_value_bid(ctr, cvr, value, 1.5, mult))


# ---- scalar should_bid from Python --------------------------------------------------------------


def py_should_bid(spent, budget, cost):
    """The hard cap in pure Python, with the same checks as the Cython scalar path."""
    if not (0.0 <= spent < math.inf):
        raise InvalidInputError(f"spent = {spent!r} must be finite and >= 0")
    if not (0.0 <= budget < math.inf):
        raise InvalidInputError(f"budget = {budget!r} must be finite and >= 0")
    if not (0.0 <= cost < math.inf):
        raise InvalidInputError(f"cost = {cost!r} must be finite and >= 0")
    return spent + cost <= budget


def empty_call(spent, budget, cost):
    return None


def _loop3(f, n):
    k = 0
    for _ in range(n):
        if f(10.0, 100.0, 1.0):
            k += 1
    return k


def _loop5(f, n):
    k = 0
    for _ in range(n):
        if f(80.0, 100.0, 1.0, 43_200.0, 86_400.0):
            k += 1
    return k


@pytest.mark.parametrize("impl", ["LinearPacer", "ThrottlingPacer", "PIDPacer", "pure_python",
                                  "empty_call_floor"])
def test_pacing_should_bid_scalar(benchmark, impl):
    benchmark.group = "pacing should_bid scalar (calls from Python)"
    benchmark.extra_info["items"] = CALLS
    if impl in ("pure_python", "empty_call_floor"):
        benchmark.extra_info["baseline"] = True
    if impl == "LinearPacer":
        k = benchmark(_loop3, LinearPacer(clock=_clock).should_bid, CALLS)
        assert k == CALLS
    elif impl == "ThrottlingPacer":
        k = benchmark(_loop5, ThrottlingPacer(clock=_clock).should_bid, CALLS)
        assert 0.6 * CALLS < k < 0.8 * CALLS          # p = 0.7
    elif impl == "PIDPacer":     # one campaign (scalar budget): the cap, time checked per call
        assert benchmark(_loop5, PIDPacer(100.0, clock=_clock).should_bid, CALLS) == CALLS
    elif impl == "pure_python":
        assert benchmark(_loop3, py_should_bid, CALLS) == CALLS
    else:
        assert benchmark(_loop3, empty_call, CALLS) == 0
