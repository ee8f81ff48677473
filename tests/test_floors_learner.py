"""The exchange server's floor learner (Rust, rtbcore_core::floors) against
rtbcore.FloorOptimizer fed price-only feedback: the same random logs, with exploration, must
give bit-identical floors and identical explored lookups."""

from __future__ import annotations

import numpy as np
import pytest
from _rtbcore import _FloorLearner
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore import FloorOptimizer, InvalidInputError


@st.composite
def setups(draw: st.DrawFn) -> dict:
    k = draw(st.integers(2, 12))
    steps = np.array(draw(st.lists(st.floats(0.01, 2.0), min_size=k, max_size=k)))
    grid = np.cumsum(steps) - (steps[0] if draw(st.booleans()) else 0.0)
    return {
        "segments": draw(st.integers(1, 4)),
        "grid": grid,
        "half_life": draw(st.sampled_from([0.5, 3.0, 50.0, 10_000.0])),
        "explore": draw(st.sampled_from([0.0, 0.05, 0.3, 1.0])),
        "explore_steps": draw(st.integers(0, 5)),
        "min_fill": draw(st.sampled_from([0.0, 0.3, 0.9])),
        "min_weight": draw(st.sampled_from([0.0, 1.0, 3.0])),
        "initial": float(draw(st.sampled_from([0.0, float(grid[k // 2]), 0.77]))),
        "seed": draw(st.integers(0, 2**64 - 1)),
    }


def both(s: dict) -> tuple[FloorOptimizer, _FloorLearner]:
    opt = FloorOptimizer(**s)
    kw = {k: v for k, v in s.items() if k not in ("segments", "grid")}
    return opt, _FloorLearner(s["segments"], np.asarray(s["grid"], dtype=np.float64), **kw)


@settings(max_examples=300, deadline=None)
@given(setups(), st.data())
def test_same_floors_and_lookups_as_the_optimizer(s: dict, data: st.DataObject) -> None:
    opt, rust = both(s)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
    grid = s["grid"]
    for _ in range(data.draw(st.integers(1, 8))):
        n = data.draw(st.integers(0, 300))
        seg = rng.integers(0, s["segments"], n).astype(np.int64)
        explore = data.draw(st.booleans())
        f_py = opt.lookup(seg, explore=explore).copy()
        f_rs = rust.lookup(seg, explore)
        np.testing.assert_array_equal(f_rs, f_py)
        # the applied floor: mostly the looked-up one, sometimes another grid point or a value
        # off the grid (which teaches nothing but moves the clock)
        floor = f_py.copy()
        other = rng.random(n) < 0.2
        floor[other] = np.where(rng.random(other.sum()) < 0.5,
                                grid[rng.integers(0, len(grid), other.sum())],
                                rng.random(other.sum()) * grid[-1])
        value = rng.random(n) * grid[-1] * 1.2
        sold = value >= floor
        price = np.where(sold, np.maximum(floor, value * rng.random(n)), np.nan)
        opt.update(seg, floor, price, sold)
        rust.update(seg, floor, price, sold)
        np.testing.assert_array_equal(rust.floors, opt.floors)
        assert np.array_equal(rust.floors.view(np.uint64), opt.floors.view(np.uint64))


def test_a_learner_exploring_finds_the_revenue_maximising_floor() -> None:
    """Two bidders with U[0, 1] values in a second-price auction: revenue r + ... peaks at
    r = 0.5; learning from the price alone, the learner gets there from 0."""
    grid = np.round(np.arange(0, 1.0001, 0.05), 10)
    rust = _FloorLearner(1, grid, half_life=5000.0, explore=0.2, explore_steps=4, min_fill=0.0,
                         min_weight=50.0, initial=0.0, seed=7)
    rng = np.random.default_rng(3)
    key = np.zeros(1, dtype=np.int64)
    for _ in range(40):
        n = 500
        f = rust.lookup(np.zeros(n, dtype=np.int64), True)
        v = np.sort(rng.random((n, 2)), axis=1)
        sold = v[:, 1] >= f
        price = np.where(sold, np.maximum(v[:, 0], f), np.nan)
        rust.update(np.zeros(n, dtype=np.int64), f, price, sold)
    assert 0.35 <= rust.floors[key[0]] <= 0.65, rust.floors


def test_bad_rows_and_settings_name_the_field() -> None:
    grid = np.array([0.0, 1.0])
    kw = dict(half_life=10.0, explore=0.0, explore_steps=1, min_fill=0.0, min_weight=1.0,
              initial=0.0, seed=0)
    rust = _FloorLearner(2, grid, **kw)
    with pytest.raises(InvalidInputError, match=r"key\[1\] = 2"):
        rust.update(np.array([0, 2]), np.zeros(2), np.zeros(2), np.ones(2, dtype=bool))
    with pytest.raises(InvalidInputError, match=r"price\[0\] = NaN"):
        rust.update(np.array([0]), np.zeros(1), np.array([np.nan]), np.ones(1, dtype=bool))
    with pytest.raises(InvalidInputError, match="key"):
        rust.lookup(np.array([5]), True)
    with pytest.raises(InvalidInputError, match="explore"):
        _FloorLearner(1, grid, **{**kw, "explore": 2.0})
    with pytest.raises(InvalidInputError, match="grid"):
        _FloorLearner(1, np.array([1.0, 0.5]), **kw)
    assert rust.add_key() == 2 and rust.floors.shape == (3,)
