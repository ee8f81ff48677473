"""Clearing kernels against brute-force pure-Python oracles, plus mechanism-design properties.

The oracles (tests/oracles.py) are written from the definitions, independently of the kernels:
- single slot: sort the eligible bids, apply the rule;
- VCG: the payment is the externality (others' best welfare without the bidder minus their
  welfare with it), by enumerating every assignment of bidders to slots; with a reserve the
  seller holds k reserve bids (phantom competitors) and, for any qualities, the payment equals
  Myerson's integral ``b x(b) - integral_0^b x(z) dz`` of the bidder's own allocation curve;
- truthfulness: no unilateral deviation raises a bidder's utility (second price, VCG).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtbcore
from rtbcore import (
    AuctionBatch,
    clear_first_price,
    clear_gsp,
    clear_second_price,
    clear_vcg,
)

from oracles import (
    eligible,
    oracle_gsp,
    oracle_single,
    oracle_vcg_externality,
    oracle_vcg_myerson,
    valid,
)

# ---- strategies ------------------------------------------------------------------------------

PRICE = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0]),  # ties and zero bids
    st.floats(0.01, 10.0, allow_nan=False),
)
QUALITY = st.one_of(st.sampled_from([0.5, 1.0, 2.0]), st.floats(0.1, 3.0))
BAD_PRICE = st.sampled_from([math.nan, math.inf, -math.inf, -1.0])
BAD_QUALITY = st.sampled_from([math.nan, math.inf, 0.0, -0.5])


@st.composite
def batches(draw, max_auctions=6, max_bids=7, with_quality=None, invalid=False, reserve=None):
    n = draw(st.integers(0, max_auctions))
    sizes = [draw(st.integers(0, max_bids)) for _ in range(n)]
    m = sum(sizes)
    prices = [draw(PRICE) for _ in range(m)]
    use_q = draw(st.booleans()) if with_quality is None else with_quality
    quality = [draw(QUALITY) for _ in range(m)] if use_q else None
    if invalid and m:
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, m - 1))
            if quality is not None and draw(st.booleans()):
                quality[i] = draw(BAD_QUALITY)
            else:
                prices[i] = draw(BAD_PRICE)
    if reserve is None:
        if draw(st.booleans()):
            res = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
        else:
            res = [draw(st.sampled_from([0.0, 0.25, 1.0, 2.5])) for _ in range(n)]
    else:
        res = reserve
    return AuctionBatch.from_sizes(sizes, prices, quality, reserve=res)


def segments(b: AuctionBatch):
    q = b.quality if b.quality is not None else np.ones(b.n_bids)
    for a in range(b.n_auctions):
        s, e = int(b.offsets[a]), int(b.offsets[a + 1])
        r = b.reserve if isinstance(b.reserve, float) else float(b.reserve[a])
        yield a, s, list(b.prices[s:e]), list(q[s:e]), r


# ---- single slot vs the oracle ---------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(b=batches(invalid=False), rule=st.sampled_from(["first", "second"]),
       inc=st.sampled_from([0.0, 0.01, 0.5]))
def test_single_slot_matches_oracle(b, rule, inc):
    r = clear_first_price(b) if rule == "first" else clear_second_price(b, increment=inc)
    assert r.winner.shape == (b.n_auctions,) and r.winner.dtype == np.int64
    assert r.price.dtype == np.float64 and r.loss_reason.dtype == np.int32
    assert r.min_to_win.shape == (b.n_bids,) and r.n_invalid == 0
    for a, s, p, q, res in segments(b):
        w, price, mtw, reason = oracle_single(p, q, res, rule, inc)
        assert r.winner[a] == (s + w if w >= 0 else -1)
        assert r.price[a] == pytest.approx(price, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(r.min_to_win[s : s + len(p)], mtw, rtol=1e-12, atol=1e-12)
        assert list(r.loss_reason[s : s + len(p)]) == reason


@settings(max_examples=200, deadline=None)
@given(b=batches(invalid=True), rule=st.sampled_from(["first", "second"]))
def test_skip_treats_invalid_bids_as_ineligible_and_counts_them(b, rule):
    if rule == "first":
        r = clear_first_price(b, on_invalid="skip")
    else:
        r = clear_second_price(b, increment=0.01, on_invalid="skip")
    n_bad = 0
    for a, s, p, q, res in segments(b):
        w, price, mtw, reason = oracle_single(p, q, res, rule, 0.01)
        n_bad += reason.count(3)
        assert r.winner[a] == (s + w if w >= 0 else -1)
        assert r.price[a] == pytest.approx(price, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(r.min_to_win[s : s + len(p)], mtw, rtol=1e-12, atol=1e-12)
        assert list(r.loss_reason[s : s + len(p)]) == reason
    assert r.n_invalid == n_bad == int((r.loss_reason == 3).sum())
    if n_bad:
        with pytest.raises(rtbcore.InvalidBidError):
            clear_first_price(b)


@settings(max_examples=200, deadline=None)
@given(b=batches(), inc=st.sampled_from([0.0, 0.01]))
def test_second_price_properties(b, inc):
    r = clear_second_price(b, increment=inc)
    q = b.quality if b.quality is not None else np.ones(b.n_bids)
    for a, s, p, qq, res in segments(b):
        w = int(r.winner[a])
        if w < 0:
            assert r.price[a] == 0.0
            assert all(not eligible(p[i], qq[i], res) for i in range(len(p)))
            continue
        adj = b.prices[s : s + len(p)] * q[s : s + len(p)]
        elig = [i for i in range(len(p)) if eligible(p[i], qq[i], res)]
        top = max(adj[i] for i in elig)
        assert adj[w - s] == top and w - s == min(i for i in elig if adj[i] == top)
        assert r.price[a] <= b.prices[w]
        assert r.price[a] >= res
        floor = r.min_to_win[w]  # the winner's min_to_win is its floor: max(reserve, adj_2 / q_w)
        assert r.price[a] == pytest.approx(min(b.prices[w], floor + inc))
        # the winner's own bid does not move its price: raise it and clear again
        raised = b.prices.copy()
        raised[w] = b.prices[w] * 3 + 1
        r2 = clear_second_price(
            AuctionBatch(b.offsets, raised, b.quality, reserve=b.reserve), increment=inc
        )
        assert r2.winner[a] == w
        assert r2.min_to_win[w] == floor
        if r.price[a] < b.prices[w]:
            assert r2.price[a] == r.price[a]


@settings(max_examples=150, deadline=None)
@given(b=batches(), data=st.data())
def test_truthfulness_second_price(b, data):
    """Bidding one's value is a dominant strategy in second price (increment 0)."""
    if b.n_bids == 0:
        return
    i = data.draw(st.integers(0, b.n_bids - 1))
    v = float(b.prices[i])
    a = int(np.searchsorted(b.offsets, i, side="right")) - 1

    def utility(z):
        p = b.prices.copy()
        p[i] = z
        r = clear_second_price(
            AuctionBatch(b.offsets, p, b.quality, reserve=b.reserve), increment=0.0
        )
        return v - r.price[a] if r.winner[a] == i else 0.0

    truthful = utility(v)
    for z in data.draw(st.lists(PRICE, min_size=1, max_size=5)):
        assert utility(z) <= truthful + 1e-9


# ---- position auctions -----------------------------------------------------------------------

CTRS = st.lists(st.floats(0.05, 1.0), min_size=1, max_size=3).map(
    lambda xs: sorted(xs, reverse=True)
)


@settings(max_examples=200, deadline=None)
@given(b=batches(max_bids=6), ctrs=CTRS, inc=st.sampled_from([0.0, 0.01]))
def test_gsp_matches_oracle(b, ctrs, inc):
    r = clear_gsp(b, ctrs, increment=inc)
    k = len(ctrs)
    assert r.winner.shape == (b.n_auctions, k) and r.price.shape == (b.n_auctions, k)
    for a, s, p, q, res in segments(b):
        for slot, (i, price) in enumerate(oracle_gsp(p, q, res, ctrs, inc)):
            assert r.winner[a, slot] == (s + i if i >= 0 else -1)
            assert r.price[a, slot] == pytest.approx(price, rel=1e-12, abs=1e-12)


@settings(max_examples=120, deadline=None)
@given(b=batches(max_auctions=3, max_bids=5, reserve=0.0), ctrs=CTRS)
def test_vcg_is_the_externality_without_reserve(b, ctrs):
    assert_vcg_is_the_externality(b, ctrs)


@settings(max_examples=120, deadline=None)
@given(b=batches(max_auctions=3, max_bids=5, with_quality=False), ctrs=CTRS)
def test_vcg_with_reserve_is_the_externality_with_reserve_bids(b, ctrs):
    assert_vcg_is_the_externality(b, ctrs)


def assert_vcg_is_the_externality(b, ctrs):
    r = clear_vcg(b, ctrs)
    for a, s, p, q, res in segments(b):
        for slot, (i, price) in enumerate(oracle_vcg_externality(p, q, res, ctrs)):
            assert r.winner[a, slot] == (s + i if i >= 0 else -1)
            assert r.price[a, slot] == pytest.approx(price, rel=1e-9, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(b=batches(max_auctions=3, max_bids=6), ctrs=CTRS)
def test_vcg_equals_myerson_payment_with_reserve_and_quality(b, ctrs):
    r = clear_vcg(b, ctrs)
    for a, s, p, q, res in segments(b):
        for slot in range(len(ctrs)):
            i = int(r.winner[a, slot])
            if i < 0:
                continue
            expected = oracle_vcg_myerson(p, q, res, ctrs, i - s)
            assert r.price[a, slot] == pytest.approx(expected, rel=1e-9, abs=1e-9)
            assert res - 1e-12 <= r.price[a, slot] <= b.prices[i]


def test_issue_formula_is_not_truthful_with_reserve_but_ours_is():
    """Why the reserve floors each threshold: bids 10, 1 for slots (1.0, 0.5), reserve 3.
    The unfloored formula charges the top bid max(3, (0.5*1 + 0.5*0)/1) = 3 per unit, yet it would
    keep slot 1 by bidding 3 and pays the floor on both increments: total 0.5*3 + 0.5*3 = 3."""
    b = AuctionBatch([0, 2], [10.0, 1.0], reserve=3.0)
    r = clear_vcg(b, [1.0, 0.5])
    assert list(r.winner[0]) == [0, -1]
    assert r.price[0, 0] == pytest.approx(3.0)
    # a case where the two differ: bids 10, 4, reserve 3 -> slot 1 thresholds: 4 (keep slot 1)
    # and 3 (keep slot 2, floored): 0.5*4 + 0.5*3 = 3.5, the unfloored formula says 0.5*4 = 2 -> 3
    b = AuctionBatch([0, 2], [10.0, 4.0], reserve=3.0)
    r = clear_vcg(b, [1.0, 0.5])
    assert r.price[0, 0] == pytest.approx(3.5)
    assert r.price[0, 1] == pytest.approx(3.0)
    assert oracle_vcg_myerson([10.0, 4.0], [1.0, 1.0], 3.0, [1.0, 0.5], 0) == pytest.approx(3.5)


@settings(max_examples=120, deadline=None)
@given(b=batches(max_auctions=2, max_bids=5), ctrs=CTRS, data=st.data())
def test_truthfulness_vcg(b, ctrs, data):
    """No unilateral deviation raises a bidder's utility (value per unit = its bid)."""
    if b.n_bids == 0:
        return
    i = data.draw(st.integers(0, b.n_bids - 1))
    v = float(b.prices[i])
    qi = 1.0 if b.quality is None else float(b.quality[i])
    a = int(np.searchsorted(b.offsets, i, side="right")) - 1

    def utility(z):
        p = b.prices.copy()
        p[i] = z
        r = clear_vcg(AuctionBatch(b.offsets, p, b.quality, reserve=b.reserve), ctrs)
        slots = np.flatnonzero(r.winner[a] == i)
        if slots.size == 0:
            return 0.0
        s = int(slots[0])
        return ctrs[s] * qi * (v - r.price[a, s])

    truthful = utility(v)
    for z in data.draw(st.lists(PRICE, min_size=1, max_size=5)):
        assert utility(z) <= truthful + 1e-9


@settings(max_examples=100, deadline=None)
@given(b=batches(invalid=True), ctrs=CTRS)
def test_slots_skip_invalid(b, ctrs):
    g = clear_gsp(b, ctrs, on_invalid="skip")
    v = clear_vcg(b, ctrs, on_invalid="skip")
    n_bad = 0
    for a, s, p, q, res in segments(b):
        n_bad += sum(not valid(p[i], q[i]) for i in range(len(p)))
        for slot, (i, price) in enumerate(oracle_gsp(p, q, res, ctrs, 0.0)):
            assert g.winner[a, slot] == (s + i if i >= 0 else -1)
            assert g.price[a, slot] == pytest.approx(price, rel=1e-12, abs=1e-12)
        for slot in range(len(ctrs)):
            i = int(v.winner[a, slot])
            assert i == g.winner[a, slot]
            if i >= 0:
                exp = oracle_vcg_myerson(p, q, res, ctrs, i - s)
                assert v.price[a, slot] == pytest.approx(exp, rel=1e-9, abs=1e-9)
    assert g.n_invalid == v.n_invalid == n_bad


# ---- edge cases ------------------------------------------------------------------------------


def test_empty_batch():
    b = AuctionBatch([0], [])
    r = clear_second_price(b)
    assert r.winner.shape == (0,) and r.min_to_win.shape == (0,) and r.n_invalid == 0
    s = clear_vcg(b, [1.0, 0.5])
    assert s.winner.shape == (0, 2) and s.price.shape == (0, 2)


def test_auctions_with_zero_one_and_two_bids():
    b = AuctionBatch([0, 0, 1, 3], [2.0, 2.0, 1.0], reserve=0.5)
    r = clear_second_price(b, increment=0.01)
    assert list(r.winner) == [-1, 0, 1]
    assert r.price[0] == 0.0
    assert r.price[1] == pytest.approx(0.51)  # alone: reserve + increment
    assert r.price[2] == pytest.approx(1.01)
    assert list(r.loss_reason) == [0, 0, 102]
    assert list(r.min_to_win) == pytest.approx([0.5, 1.0, 1.01])
    f = clear_first_price(b)
    assert list(f.price) == [0.0, 2.0, 2.0]
    assert f.min_to_win[2] == 2.0


def test_no_sale_min_to_win_is_the_reserve_and_reasons():
    b = AuctionBatch([0, 3], [0.0, 0.4, 0.2], reserve=0.5)
    r = clear_second_price(b)
    assert r.winner[0] == -1 and r.price[0] == 0.0
    assert list(r.min_to_win) == [0.5, 0.5, 0.5]
    assert list(r.loss_reason) == [100, 100, 100]


def test_zero_price_is_below_floor_zero_quality_invalid():
    b = AuctionBatch([0, 3], [0.0, 1.0, 2.0], quality=[1.0, 1.0, 0.0])
    r = clear_second_price(b, on_invalid="skip")
    assert list(r.loss_reason) == [100, 0, 3]
    assert r.n_invalid == 1 and math.isnan(r.min_to_win[2])
    with pytest.raises(rtbcore.InvalidBidError, match=r"quality\[2\]"):
        clear_second_price(b)


def test_second_price_winner_never_pays_above_its_bid():
    b = AuctionBatch([0, 2], [1.0, 1.0], reserve=0.0)
    r = clear_second_price(b, increment=0.5)
    assert r.winner[0] == 0 and r.price[0] == 1.0


def test_bidders_map_winners():
    b = AuctionBatch([0, 2, 3], [1.0, 2.0, 0.1], bidders=[7, 8, 9], reserve=0.5)
    assert list(clear_first_price(b).bidder) == [8, -1]
    assert clear_first_price(AuctionBatch([0, 1], [1.0])).bidder is None
    assert clear_gsp(b, [1.0, 0.5]).bidder.tolist() == [[8, 7], [-1, -1]]


def test_large_random_batch_matches_oracle_on_a_sample():
    rng = np.random.default_rng(3)
    sizes = rng.integers(0, 30, 2000)
    prices = rng.lognormal(0, 0.7, int(sizes.sum()))
    quality = rng.uniform(0.2, 2.0, prices.size)
    reserve = rng.choice([0.0, 0.5, 1.0], sizes.size)
    b = AuctionBatch.from_sizes(sizes, prices, quality, reserve=reserve)
    r = clear_second_price(b)
    for a, s, p, q, res in segments(b):
        if a % 37:
            continue
        w, price, mtw, reason = oracle_single(p, q, res, "second", 0.01)
        assert r.winner[a] == (s + w if w >= 0 else -1)
        assert r.price[a] == pytest.approx(price, rel=1e-12)
        assert list(r.loss_reason[s : s + len(p)]) == reason


def test_float32_and_non_contiguous_inputs_are_converted():
    p64 = np.array([1.0, 3.0, 2.0, 0.5])
    base = AuctionBatch([0, 4], p64, reserve=0.25)
    b32 = AuctionBatch(np.array([0, 4], dtype=np.int32), p64.astype(np.float32), reserve=0.25)
    strided = np.zeros(8)
    strided[::2] = p64
    bst = AuctionBatch([0, 4], strided[::2], quality=np.ones(8)[::2], reserve=0.25)
    for b in (b32, bst):
        assert b.prices.dtype == np.float64 and b.prices.flags.c_contiguous
        r, r0 = clear_second_price(b), clear_second_price(base)
        assert r.winner.tolist() == r0.winner.tolist()
        assert r.price.tolist() == r0.price.tolist()
    assert base.prices is p64  # float64 contiguous: no copy


def test_threads_clear_concurrently_with_same_results():
    import threading

    rng = np.random.default_rng(5)
    b = AuctionBatch.from_sizes(np.full(20_000, 10), rng.random(200_000), reserve=0.2)
    ref = clear_second_price(b)
    out: list = [None] * 4

    def work(j):
        out[j] = clear_second_price(b)

    ts = [threading.Thread(target=work, args=(j,)) for j in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in out:
        assert np.array_equal(r.winner, ref.winner) and np.array_equal(r.price, ref.price)


@settings(max_examples=80, deadline=None)
@given(b=batches(max_auctions=4, max_bids=45, invalid=False), ctrs=CTRS)
def test_long_segments_match_oracle(b, ctrs):
    """Segments of 16+ bids take the SIMD lanes of the top-2 scan; check them too."""
    r = clear_second_price(b, increment=0.01)
    g = clear_gsp(b, ctrs)
    for a, s, p, q, res in segments(b):
        w, price, mtw, reason = oracle_single(p, q, res, "second", 0.01)
        assert r.winner[a] == (s + w if w >= 0 else -1)
        assert r.price[a] == pytest.approx(price, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(r.min_to_win[s : s + len(p)], mtw, rtol=1e-12, atol=1e-12)
        for slot, (i, gp) in enumerate(oracle_gsp(p, q, res, ctrs, 0.0)):
            assert g.winner[a, slot] == (s + i if i >= 0 else -1)
            assert g.price[a, slot] == pytest.approx(gp, rel=1e-12, abs=1e-12)
