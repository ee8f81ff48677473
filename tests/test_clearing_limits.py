"""Clearing at the edges: values near the float range, outputs too large to allocate, and arrays
changed by another thread while a call runs. Each case gets a defined answer or a library error,
never an infinity or NaN that is not documented, a panic, or an unannounced huge allocation."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

import rtbcore
from rtbcore import (
    AuctionBatch,
    InvalidBidError,
    InvalidInputError,
    clear_first_price,
    clear_gsp,
    clear_second_price,
    clear_vcg,
)
from rtbcore.clearing import MAX_SLOT_OUTPUT_BYTES

ALL = {
    "first": clear_first_price,
    "second": clear_second_price,
    "gsp": lambda b, **k: clear_gsp(b, [1.0, 0.5], **k),
    "vcg": lambda b, **k: clear_vcg(b, [1.0, 0.5], **k),
}


@pytest.mark.parametrize("rule", ALL)
@pytest.mark.parametrize("per", [3, 9, 40])  # every kernel: short, rank / network, long
def test_an_adjusted_bid_that_overflows_is_an_invalid_bid(rule, per):
    prices = np.full(per, 2.0)
    prices[1] = 1e308  # times quality 2: inf
    prices[2] = 1.5e308  # times quality 1: finite, the winner
    quality = np.ones(per)
    quality[1] = 2.0
    b = AuctionBatch([0, per], prices, quality=quality)
    with pytest.raises(InvalidBidError, match=r"^prices\[1\] = 1e308: price × quality overflows"):
        ALL[rule](b)
    r = ALL[rule](b, on_invalid="skip")
    assert r.n_invalid == 1
    assert np.ravel(r.winner)[0] == 2
    assert np.isfinite(r.price).all()
    if rule in ("first", "second"):
        assert r.loss_reason[1] == rtbcore.clearing.LOSS_INVALID and math.isnan(r.min_to_win[1])
        others = np.delete(r.min_to_win, 1)
        assert np.isfinite(others).all(), others


@pytest.mark.parametrize("rule", ["first", "second"])
def test_prices_near_the_float_range_give_finite_results(rule):
    b = AuctionBatch([0, 3, 5], [1.7e308, 1.6e308, 1e308, 1e308, 5.0], quality=[1, 1, 1.5, 1, 1])
    r = ALL[rule](b)
    assert r.n_invalid == 0
    assert np.isfinite(r.price).all() and np.isfinite(r.min_to_win).all(), r


def test_min_to_win_is_inf_only_when_no_finite_price_can_tie():
    # the loser's quality is 1e-10: to tie 1e308 it would have to bid 1e318
    b = AuctionBatch([0, 2], [1e308, 5.0], quality=[1.0, 1e-10])
    r = clear_first_price(b)
    assert r.winner.tolist() == [0] and r.min_to_win[1] == math.inf
    assert r.min_to_win[0] == 5.0 * 1e-10  # the runner-up's adjusted bid, finite


def test_vcg_with_huge_slot_factors_and_qualities_is_finite():
    b = AuctionBatch([0, 3], [5.0, 3.0, 1.0], quality=[1e300] * 3)
    for ctrs in ([1e10, 5e9], [1e308, 5e307]):
        r = clear_vcg(b, ctrs)
        np.testing.assert_allclose(r.price[0], [2.0, 1.0], rtol=1e-12)


def test_position_output_is_bounded_and_the_size_is_named():
    # 10,000 auctions x 100,000 slots would need 16e9 bytes of output
    b = AuctionBatch.from_sizes(np.full(10_000, 2), np.ones(20_000))
    ctrs = np.linspace(1.0, 0.1, 100_000)
    for clear in (clear_gsp, clear_vcg):
        t0 = time.perf_counter()
        with pytest.raises(InvalidInputError, match=r"^slot_ctrs: 10000 auctions x 100000 slots "
                           r"need 14\.90 GiB of output \(16000000000 bytes"):
            clear(b, ctrs)
        assert time.perf_counter() - t0 < 1.0  # refused before allocating
    assert MAX_SLOT_OUTPUT_BYTES == 4 * 2**30
    # just under the bound is cleared
    small = AuctionBatch.from_sizes([2] * 4, np.ones(8))
    assert clear_gsp(small, np.linspace(1.0, 0.5, 3)).winner.shape == (4, 3)


def test_the_output_bound_can_be_raised(monkeypatch):
    b = AuctionBatch.from_sizes([2] * 4, np.ones(8))
    monkeypatch.setattr(rtbcore.clearing, "MAX_SLOT_OUTPUT_BYTES", 4 * 3 * 16 - 1)
    with pytest.raises(InvalidInputError, match="192 bytes"):
        clear_gsp(b, [1.0, 0.9, 0.8])
    monkeypatch.setattr(rtbcore.clearing, "MAX_SLOT_OUTPUT_BYTES", 4 * 3 * 16)
    assert clear_gsp(b, [1.0, 0.9, 0.8]).winner.shape == (4, 3)


@pytest.mark.parametrize("rule", ALL)
def test_offsets_changed_by_another_thread_raise_invalid_input_not_panic(rule):
    """A thread rewrites the last offsets of a batch (its arrays are used without a copy) while
    the main thread clears it with the GIL released: each call either clears or raises
    InvalidInputError naming the offsets; a PanicException (a BaseException) must never escape.
    The kernel reads the last offsets at the end of a call, so the race is hit within a few
    calls; the test asserts that the kernel itself refused at least once."""
    n = 200_000
    offsets = np.arange(n + 1, dtype=np.int64) * 10
    b = AuctionBatch(offsets, np.ones(n * 10))
    good, bad = int(offsets[n - 1]), 10 * n + 7  # past the end of the bids
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            offsets[n - 1] = bad
            offsets[n - 1] = good

    t = threading.Thread(target=flip)
    t.start()
    calls = in_kernel = 0
    try:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and (calls < 20 or not in_kernel):
            calls += 1
            try:
                ALL[rule](b, on_invalid="skip")
            except InvalidInputError as e:
                assert str(e).startswith("offsets"), e
                in_kernel += "changed while the batch was being cleared" in str(e)
    finally:
        stop.set()
        t.join(timeout=10)
    assert in_kernel > 0, f"the race was not hit in {calls} calls"
