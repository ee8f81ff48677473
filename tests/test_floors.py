"""Price floors: the Myerson reserve against theory and a sort oracle, replay against the closed
form of second-price revenue with n uniform bidders, and the online optimizer against a
brute-force oracle of its learning rule."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore import (
    AuctionBatch,
    AuctionLog,
    FloorOptimizer,
    InvalidInputError,
    clear_second_price,
    myerson_reserve,
    replay,
)
from rtbcore.floors import top_two


def sort_oracle(x: np.ndarray) -> tuple[float, float]:
    """The definition: the smallest r among the samples maximising r * #{x >= r}."""
    best_r, best = 0.0, 0.0
    xs = sorted(float(v) for v in x)
    n = len(xs)
    for i, v in enumerate(xs):
        if i and xs[i - 1] == v:
            continue
        rev = v * (n - i)
        if rev > best:
            best_r, best = v, rev
    return best_r, best


def uniform_revenue(n: int, r: float) -> float:
    """Expected second-price revenue with n iid U[0,1] bidders and reserve r (Myerson: the
    expected virtual value of the winner), (n-1)/(n+1) - 2n r^(n+1)/(n+1) + r^n."""
    return (n - 1) / (n + 1) - 2 * n * r ** (n + 1) / (n + 1) + r**n


def uniform_log(rng: np.random.Generator, n_auctions: int, n_bidders: int) -> AuctionLog:
    prices = rng.random(n_auctions * n_bidders)
    return AuctionLog.from_sizes(
        np.full(n_auctions, n_bidders), prices, np.zeros(n_auctions, dtype=np.int64)
    )


# ---- myerson_reserve -------------------------------------------------------------------------


def test_myerson_two_uniform_bidders_is_one_half():
    x = np.random.default_rng(0).random(200_000)
    assert abs(myerson_reserve(x) - 0.5) < 0.02


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 1.0, 2.0, 3.5]) | st.floats(0, 50),
                min_size=1, max_size=60))
def test_myerson_matches_sort_oracle(xs):
    x = np.array(xs, dtype=np.float64)
    r = myerson_reserve(x)
    want_r, want = sort_oracle(x)
    assert r * np.count_nonzero(x >= r) == pytest.approx(want, rel=1e-12, abs=0)
    assert r == want_r


@pytest.mark.parametrize("kind", ["uniform", "lognormal", "ties", "outlier", "tiny"])
def test_myerson_pruned_path_matches_sort_oracle(kind):
    # above 4096 positive samples the kernel buckets and sorts only the candidate buckets
    rng = np.random.default_rng(len(kind))
    n = 60_000
    x = {
        "uniform": rng.random(n),
        "lognormal": rng.lognormal(0.0, 2.0, n),
        "ties": np.round(rng.random(n) * 20) / 20,
        "outlier": np.concatenate([rng.random(n), [1e300, 0.0, 0.0]]),
        "tiny": rng.random(n) * 1e-300,
    }[kind]
    s = np.sort(x)
    rev = s * (s.size - np.searchsorted(s, s, "left"))
    want = rev.max()
    r = myerson_reserve(x)
    assert r * np.count_nonzero(x >= r) == pytest.approx(want, rel=1e-12)
    assert r == s[np.flatnonzero(rev == want)[0]]


def test_myerson_bad_input():
    for bad, where in (([1.0, np.nan], "samples[1]"), ([-1.0], "samples[0]"),
                       ([0.5, 2.0, np.inf], "samples[2]")):
        with pytest.raises(InvalidInputError, match=rf"^{re.escape(where)} = "):
            myerson_reserve(bad)
    for bad in ([], [[1.0, 2.0]], np.array([True, False]), "1.0"):
        with pytest.raises(InvalidInputError, match="^samples"):
            myerson_reserve(bad)
    assert myerson_reserve([0.0, 0.0]) == 0.0


# ---- replay against theory -------------------------------------------------------------------


def test_replay_lift_of_the_optimal_reserve_two_uniform_bidders():
    log = uniform_log(np.random.default_rng(1), 200_000, 2)
    base = replay(log, 0.0)
    best = replay(log, myerson_reserve(log.batch.prices))
    assert abs(best.lift(base) - 0.25) < 0.03
    assert base.fill_rate == 1.0 and abs(best.fill_rate - 0.75) < 0.01


@pytest.mark.parametrize("n", [2, 3, 5, 10])
@pytest.mark.parametrize("r", [0.0, 0.5, 0.8])
def test_replay_matches_the_closed_form(n, r):
    m = 100_000
    log = uniform_log(np.random.default_rng(n * 10 + int(r * 10)), m, n)
    res = replay(log, r)
    per = res.price
    se = per.std() / math.sqrt(m)
    assert abs(per.mean() - uniform_revenue(n, r)) < 4 * se + 1e-12
    # fill: P(max >= r) = 1 - r^n
    assert abs(res.fill_rate - (1 - r**n)) < 4 * math.sqrt(r**n * (1 - r**n) / m) + 1e-12


def test_replay_first_price_and_policies_agree_on_one_log():
    rng = np.random.default_rng(2)
    seg = rng.integers(0, 3, 5000)
    sizes = rng.integers(0, 5, 5000)
    log = AuctionLog.from_sizes(sizes, rng.random(int(sizes.sum())), seg, segments=4)
    per_seg = np.array([0.1, 0.3, 0.5, 0.9])
    a = replay(log, per_seg, chunk=777)
    b = replay(log, lambda s, i: per_seg[s])
    assert a.revenue == b.revenue and np.array_equal(a.price, b.price)
    direct = clear_second_price(log.chunk(0, 5000, per_seg[seg]), 0.0)
    assert np.array_equal(a.price, direct.price)
    assert a.by_segment["auctions"].sum() == 5000 and a.by_segment["auctions"][3] == 0
    assert a.series["end"][-1] == 5000 and a.series["revenue"].sum() == pytest.approx(a.revenue)
    f = replay(log, 0.0, rule="first")
    top, _, idx = log.top_two
    assert f.revenue == pytest.approx(top[idx >= 0].sum())
    assert "segment" in a.table()


def test_replay_bad_policy():
    log = uniform_log(np.random.default_rng(3), 10, 2)
    for bad in (-1.0, [0.1, 0.2], [np.nan], True):
        with pytest.raises(InvalidInputError, match="^policy"):
            replay(log, bad)
    with pytest.raises(InvalidInputError, match="^rule"):
        replay(log, 0.0, rule="third")


# ---- the online optimizer against a brute-force oracle ---------------------------------------


def oracle_sums(grid, lam, n_keys, rows, mode):
    """Decayed (weight, revenue, fill) per key and candidate, straight from the definitions."""
    K = len(grid)
    W, R, F = np.zeros((n_keys, K)), np.zeros((n_keys, K)), np.zeros((n_keys, K))
    for key, f, p, sold, b1, b2 in rows:
        W[key] *= lam
        R[key] *= lam
        F[key] *= lam
        for k, fk in enumerate(grid):
            if mode == 0:
                if b1 <= 0:
                    continue
                filled = b1 >= fk
                rev = max(b2, fk) if filled else 0.0
            elif mode == 1:
                if math.isnan(b1) and f <= 0 or fk < f:
                    continue
                filled = not math.isnan(b1) and b1 >= fk
                low = 0.0 if math.isnan(b2) else b2
                rev = max(low, fk) if filled else 0.0
            else:
                if fk != f or (not sold and f <= 0):
                    continue
                filled, rev = bool(sold), (p if sold else 0.0)
            W[key, k] += 1
            R[key, k] += rev
            F[key, k] += filled
    return W, R, F


def oracle_floor(grid, W, R, F, min_weight, min_fill, initial):
    known = [k for k in range(len(grid)) if W[k] > 1e-9 and W[k] >= min_weight]
    if not known:
        return initial, True
    ok = [k for k in known if F[k] >= min_fill * W[k] * (1 - 1e-12)]
    if not ok:
        return grid[known[0]], True
    revs = sorted((R[k] / W[k] for k in ok), reverse=True)
    best = max(ok, key=lambda k: (R[k] / W[k], -k))
    unique = len(revs) == 1 or revs[0] - revs[1] > 1e-9 * max(1.0, revs[0])
    return grid[best], unique


prices = st.sampled_from([0.0, 0.2, 0.35, 0.5, 0.75, 1.0, 1.6]) | st.floats(0, 2)


@st.composite
def rows(draw, mode):
    n = draw(st.integers(1, 40))
    out = []
    for _ in range(n):
        key = draw(st.integers(0, 2))
        f = draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]) if mode == 2 else prices)
        x, y = draw(prices), draw(prices)
        b1, b2 = max(x, y), min(x, y)
        if mode == 1:
            if draw(st.booleans()):
                b2 = math.nan
            if draw(st.integers(0, 4)) == 0:
                b1 = b2 = math.nan
        sold = bool(not math.isnan(b1) and b1 > 0 and b1 >= f) if mode != 2 else draw(
            st.booleans())
        p = (max(b2 if not math.isnan(b2) else 0.0, f) if mode != 2 else draw(prices)) \
            if sold else 0.0
        if sold and mode != 2:
            p = min(p, b1)
        out.append((key, f, p, sold, b1, b2))
    return out


@pytest.mark.parametrize("mode", [0, 1, 2])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_optimizer_matches_the_oracle(mode, data):
    grid = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    rs = data.draw(rows(mode))
    half = data.draw(st.sampled_from([1.0, 3.0, 1e6]))
    min_fill = data.draw(st.sampled_from([0.0, 0.5, 0.9]))
    opt = FloorOptimizer(3, grid=grid, half_life=half, min_fill=min_fill, min_weight=1.0,
                         initial=0.25, explore=0.0)
    cols = list(zip(*rs, strict=True))
    key, f, p, sold = (np.array(c) for c in cols[:4])
    b1, b2 = np.array(cols[4], dtype=float), np.array(cols[5], dtype=float)
    if mode == 2:
        opt.update(key, f, p, sold.astype(bool))
    else:
        opt.update(key, f, p, sold.astype(bool), b1, b2,
                   seen="all" if mode == 0 else "above_floor")
    W, R, F = oracle_sums(grid, 0.5 ** (1 / half), 3, rs, mode)
    for k in range(3):
        est = opt.estimates(k)
        np.testing.assert_allclose(est["weight"], W[k], rtol=1e-9, atol=1e-9)
        has = W[k] > 1e-9
        np.testing.assert_allclose(est["revenue"][has], R[k][has] / W[k][has], rtol=1e-9,
                                   atol=1e-9)
        np.testing.assert_allclose(est["fill"][has], F[k][has] / W[k][has], rtol=1e-9,
                                   atol=1e-9)
        want, unique = oracle_floor(grid, W[k], R[k], F[k], 1.0, min_fill, 0.25)
        if unique:
            assert opt.floors[k] == want


def test_optimizer_online_lift_and_floor_two_uniform_bidders():
    log = uniform_log(np.random.default_rng(4), 200_000, 2)
    opt = FloorOptimizer(1, grid=np.linspace(0, 1, 101), half_life=50_000)
    res = replay(log, opt)
    assert abs(opt.floors[0] - 0.5) <= 0.03
    assert abs(res.lift(replay(log, 0.0)) - 0.25) < 0.03


def test_optimizer_learns_from_bids_above_the_floor():
    log = uniform_log(np.random.default_rng(5), 200_000, 2)
    opt = FloorOptimizer(1, grid=np.linspace(0, 1, 101), half_life=50_000, explore=0.2,
                         explore_steps=10)
    replay(log, opt, feedback="above_floor")
    assert abs(opt.floors[0] - 0.5) <= 0.06


def test_optimizer_learns_from_prices_alone():
    # a price-only row informs one candidate, so learning is a bandit's: slower and noisier
    # (each candidate needs min_weight explored auctions before it is trusted)
    log = uniform_log(np.random.default_rng(5), 200_000, 2)
    opt = FloorOptimizer(1, grid=np.linspace(0, 1, 101), half_life=50_000, explore=0.3,
                         explore_steps=20, min_weight=200)
    res = replay(log, opt, feedback="price")
    assert 0.3 <= opt.floors[0] <= 0.7
    assert res.lift(replay(log, 0.0)) > 0.1


def test_min_fill_guard_is_respected():
    log = uniform_log(np.random.default_rng(6), 100_000, 2)
    opt = FloorOptimizer(1, grid=np.linspace(0, 1, 101), min_fill=0.95, explore=0.0)
    res = replay(log, opt)
    est = opt.estimates(0)
    k = int(np.searchsorted(est["floor"], opt.floors[0]))
    assert est["fill"][k] >= 0.95
    # the guard: P(max of 2 U[0,1] >= f) >= 0.95 means f <= sqrt(0.05) = 0.2236
    assert opt.floors[0] <= 0.23 and res.fill_rate >= 0.95


def test_decay_follows_a_drifting_market():
    rng = np.random.default_rng(7)
    n = 60_000
    prices = np.concatenate([rng.random(2 * n), 2 * rng.random(2 * n)])  # values double
    log = AuctionLog.from_sizes(np.full(2 * n, 2), prices, np.zeros(2 * n, dtype=np.int64))
    opt = FloorOptimizer(1, grid=np.linspace(0, 2, 201), half_life=5_000, explore=0.0)
    replay(log, opt)
    assert abs(opt.floors[0] - 1.0) <= 0.06
    slow = FloorOptimizer(1, grid=np.linspace(0, 2, 201), half_life=1e9, explore=0.0)
    replay(log, slow)
    assert slow.floors[0] < 0.9  # without decay it still averages the two markets


def test_lazy_per_bidder_reserves():
    # bidder 0 values U[0,1], bidder 1 values U[0,3]: one reserve cannot suit both
    rng = np.random.default_rng(8)
    n = 100_000
    prices = np.empty(2 * n)
    prices[0::2], prices[1::2] = rng.random(n), 3 * rng.random(n)
    bidders = np.tile([0, 1], n)
    offsets = np.arange(0, 2 * n + 1, 2)
    log = AuctionLog(offsets, prices, np.zeros(n, dtype=np.int64), bidders=bidders)
    lazy = FloorOptimizer(1, bidders=2, grid=np.linspace(0, 3, 61), explore=0.0)
    single = FloorOptimizer(1, grid=np.linspace(0, 3, 61), explore=0.0)
    lr, sr = replay(log, lazy), replay(log, single)
    f = lazy.floors[0]  # segment 0: one reserve per bidder
    assert f[1] > f[0] + 0.5 and lr.revenue > sr.revenue
    # the lazy outcome: clearing with the top bidder's reserve
    b = log.chunk(0, 10)
    _, _, idx = top_two(b)
    want = f[bidders[idx]]
    assert np.array_equal(lazy.lazy_reserve(b, np.zeros(10, dtype=np.int64), explore=False),
                          want)


def test_lookup_explores_near_the_floor_and_is_seeded():
    grid = np.linspace(0, 1, 101)
    opt = FloorOptimizer(2, grid=grid, explore=0.1, explore_steps=3, initial=0.5, seed=3)
    seg = np.zeros(200_000, dtype=np.int64)
    f = opt.lookup(seg)
    moved = f != 0.5
    assert abs(moved.mean() - 0.1) < 0.005
    assert np.all(np.abs(f[moved] - 0.5) <= 0.03 + 1e-12) and np.all(np.isin(f, grid))
    assert np.array_equal(FloorOptimizer(2, grid=grid, explore=0.1, explore_steps=3,
                                         initial=0.5, seed=3).lookup(seg), f)
    assert np.all(opt.lookup(seg, explore=False) == 0.5)


def test_bad_rows_leave_the_optimizer_unchanged():
    opt = FloorOptimizer(2, grid=[0.0, 0.5, 1.0], min_weight=1.0, explore=0.0)
    opt.update([0, 1], [0.0, 0.0], [0.3, 0.2], [True, True], [0.9, 0.4], [0.3, 0.2])
    before = (opt.floors, opt.estimates(0), opt.estimates(1))
    cases = [
        (dict(segment=[0, 2]), r"^segment\[1\] = 2: must be in \[0, 2\)"),
        (dict(floor=[0.0, -1.0]), r"^floor\[1\] = -1.0"),
        (dict(top=[0.9, np.nan]), r"^top\[1\] = nan"),
        (dict(second=[0.95, 0.1]), r"^second\[0\] = 0.95: must be <= top"),
        (dict(price=[0.95, 0.1]), r"^price\[0\] = 0.95: must be <= top"),
        (dict(sold=[1, 0]), "^sold: expected booleans"),
    ]
    for change, msg in cases:
        kw = dict(segment=[0, 1], floor=[0.0, 0.0], price=[0.3, 0.2], sold=[True, False],
                  top=[0.9, 0.4], second=[0.3, 0.2])
        kw.update(change)
        with pytest.raises(InvalidInputError, match=msg):
            opt.update(**kw)
    with pytest.raises(InvalidInputError, match="^top, second"):
        opt.update([0], [0.0], [0.3], [True], top=[0.4])
    with pytest.raises(InvalidInputError, match=r"^segment\[0\] = 5"):
        opt.lookup([5])
    assert np.array_equal(opt.floors, before[0])
    for k in (0, 1):
        for name in ("weight", "revenue", "fill"):
            np.testing.assert_array_equal(opt.estimates(k)[name], before[1 + k][name])


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(segments=0), "^segments"),
        (dict(grid=[0.0]), "^grid"),
        (dict(grid=[0.0, 0.5, 0.5]), r"^grid\[2\]"),
        (dict(grid=[-1.0, 0.5]), r"^grid\[0\]"),
        (dict(half_life=0.0), "^half_life"),
        (dict(explore=1.5), "^explore"),
        (dict(min_fill=-0.1), "^min_fill"),
        (dict(seed=-1), "seed"),
    ],
)
def test_optimizer_bad_arguments(kw, msg):
    args = {"segments": 2, **kw}
    with pytest.raises(InvalidInputError, match=msg):
        FloorOptimizer(**args)


def test_observe_matches_update_from_the_batch():
    rng = np.random.default_rng(9)
    sizes = rng.integers(0, 4, 1000)
    batch = AuctionBatch.from_sizes(sizes, rng.random(int(sizes.sum())), reserve=0.3)
    seg = rng.integers(0, 2, 1000)
    r = clear_second_price(batch, 0.0)
    a = FloorOptimizer(2, explore=0.0, min_weight=1.0)
    a.observe(batch, seg, r, 0.3)
    top, second, idx = top_two(batch)
    q = idx >= 0
    b = FloorOptimizer(2, explore=0.0, min_weight=1.0)
    b.update(seg[q], 0.3, r.price[q], r.winner[q] >= 0, top[q], second[q])
    for k in (0, 1):
        np.testing.assert_array_equal(a.estimates(k)["revenue"], b.estimates(k)["revenue"])



def test_top_two_names_an_invalid_bid():
    with pytest.raises(InvalidInputError, match=r"^prices\[1\] = nan: must be finite"):
        top_two(AuctionBatch([0, 2], [1.0, np.nan]))
    with pytest.raises(InvalidInputError, match=r"^quality\[0\] = 0.0: must be finite and > 0"):
        top_two(AuctionBatch([0, 2], [1.0, 2.0], quality=[0.0, 1.0]))
    top, second, idx = top_two(AuctionBatch([0, 3, 3], [1.0, 3.0, 2.0], quality=[1.0, 1.0, 2.0]))
    # ranked by adjusted bid: 2.0 * 2 = 4 first; it pays 3.0 / 2 without a floor
    assert top.tolist() == [2.0, 0.0] and second.tolist() == [1.5, 0.0]
    assert idx.tolist() == [2, -1]


def test_decay_survives_rescaling():
    # half-life 1 auction: the stored scale passes 1e100 every ~330 auctions and is rescaled
    rng = np.random.default_rng(10)
    n = 2000
    grid = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    b = np.sort(rng.random((n, 2)) * 2, axis=1)
    rows = [(0, 0.0, float(b[i, 0]), True, float(b[i, 1]), float(b[i, 0])) for i in range(n)]
    opt = FloorOptimizer(1, grid=grid, half_life=1.0, min_weight=1.0)
    opt.update(np.zeros(n, dtype=np.int64), 0.0, b[:, 0], True, b[:, 1], b[:, 0])
    W, R, F = oracle_sums(grid, 0.5, 1, rows, 0)
    est = opt.estimates(0)
    np.testing.assert_allclose(est["weight"], W[0], rtol=1e-9)
    np.testing.assert_allclose(est["revenue"], R[0] / W[0], rtol=1e-9)
    np.testing.assert_allclose(est["fill"], F[0] / W[0], rtol=1e-9)


@pytest.mark.parametrize("explore", [5e-324, 1e-300, 1e-18, 3.9e-18, 1e-17, 5e-17, 2e-16])
def test_a_tiny_explore_share_explores_almost_never_and_never_crashes(explore: float) -> None:
    """log(1 - explore) rounds to 0 (or to a tiny number) here, which once made the gap to
    the next explored auction overflow an int64 and index out of bounds; the expected gap,
    1 / explore, is far beyond any run, so lookups give the floor itself."""
    opt = FloorOptimizer(3, explore=explore, initial=1.0, seed=11)
    seg = np.arange(200_000, dtype=np.int64) % 3
    for _ in range(3):
        out = opt.lookup(seg)
        np.testing.assert_array_equal(out, opt.floors[seg])
