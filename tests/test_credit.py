"""CreditPool: unit tests, bad input (pool unchanged), and 4 threads sharing one pool."""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
import pytest

from rtbcore import CreditPool
from rtbcore.errors import InvalidInputError

from oracles import FakeClock


def snapshot(pool: CreditPool) -> tuple:
    return (pool.credits, pool.next_bump_at, pool.last_tick, tuple(sorted(pool.stats().items())))


def make(**kw) -> CreditPool:
    args = dict(initial=10, cap=20, bid_cost=1, win_credit=3, loss_credit=0.5, bump=4,
                bump_every=60.0, clock=FakeClock())
    args.update(kw)
    return CreditPool(**args)


# ---- basics --------------------------------------------------------------------------------


def test_defaults_match_the_issue():
    pool = CreditPool(50, 100, clock=FakeClock())
    assert (pool.credits, pool.cap, pool.bid_cost, pool.win_credit) == (50, 100, 1, 10)
    assert (pool.loss_credit, pool.bump, pool.bump_every) == (0, 100, 60.0)


def test_try_bid_takes_the_cost_and_refuses_when_it_cannot_pay():
    pool = make(initial=3, bid_cost=1.5)
    assert pool.try_bid() is True
    assert pool.credits == 1.5
    assert pool.try_bid() is True
    assert pool.credits == 0
    assert pool.try_bid() is False
    assert pool.credits == 0
    assert pool.stats()["granted"] == 2 and pool.stats()["refused"] == 1


def test_try_bids_grants_what_the_pool_can_pay_and_counts_the_rest():
    pool = make(initial=10, bid_cost=3)
    assert pool.try_bids(2) == 2
    assert pool.credits == 4
    assert pool.try_bids(5) == 1
    assert pool.credits == 1
    assert pool.try_bids(0) == 0
    assert pool.stats()["granted"] == 3 and pool.stats()["refused"] == 4


def test_try_bids_equals_successive_try_bid_with_fractional_costs():
    # 0.1 is not exact in binary; the pool's fixed point makes batch == sequential anyway.
    a, b = make(initial=1, cap=1, bid_cost=0.1), make(initial=1, cap=1, bid_cost=0.1)
    singles = sum(a.try_bid() for _ in range(15))
    assert singles == b.try_bids(15) == 10
    assert a.credits == b.credits == 0


def test_free_bids_are_always_granted():
    pool = make(initial=0, bid_cost=0)
    assert pool.try_bid() is True
    assert pool.try_bids(10**6) == 10**6
    assert pool.credits == 0


def test_wins_and_losses_add_credit_up_to_the_cap_and_count_what_the_cap_refused():
    pool = make(initial=10, cap=20, win_credit=3, loss_credit=0.5)
    pool.record_win()
    assert pool.credits == 13
    pool.record_loss(4)
    assert pool.credits == 15
    pool.record_win(2)
    assert pool.credits == 20  # 21 -> capped
    assert pool.stats()["discarded"] == pytest.approx(1.0)
    pool.record_win(10**18)  # no overflow
    assert pool.credits == 20
    s = pool.stats()
    assert (s["wins"], s["losses"]) == (3 + 10**18, 4)


def test_tick_applies_due_bumps_additively_and_catches_up_missed_ones():
    clock = FakeClock(100.0)
    pool = make(initial=0, cap=20, bump=4, bump_every=60.0, clock=clock)
    assert pool.next_bump_at == 160.0
    assert pool.tick(159.9) == 0 and pool.credits == 0
    assert pool.tick(160.0) == 1 and pool.credits == 4  # adds 4; does not fill to the cap
    assert pool.tick(160.0) == 0 and pool.credits == 4  # the same bump is not applied twice
    assert pool.next_bump_at == 220.0
    assert pool.tick(400.0) == 4 and pool.credits == 20  # 4 missed bumps: 4 + 16, at the cap
    assert pool.stats()["bumps"] == 5
    assert pool.stats()["discarded"] == 0
    assert pool.tick(460.0) == 1 and pool.credits == 20
    assert pool.stats()["discarded"] == 4


def test_tick_without_argument_reads_the_injected_clock():
    clock = FakeClock(0.0)
    pool = make(initial=0, bump=4, bump_every=10.0, clock=clock)
    clock.t = 25.0
    assert pool.tick() == 2
    assert pool.credits == 8
    assert pool.last_tick == 25.0


def test_bumps_can_be_switched_off():
    pool = make(initial=0, bump_every=math.inf)
    assert pool.tick(1e15) == 0 and pool.credits == 0
    assert pool.next_bump_at == math.inf


def test_the_pool_never_reads_the_clock_on_its_own():
    calls = []

    def clock():
        calls.append(1)
        return 0.0

    pool = make(initial=5, clock=clock)
    pool.try_bid()
    pool.try_bids(3)
    pool.record_win()
    pool.try_bid_block(np.ones(4))
    pool.tick(1.0)
    assert len(calls) == 1  # construction only


def test_block_decides_in_order_like_successive_bids():
    pool = make(initial=5)
    mask = pool.try_bid_block(np.array([2.0, 4.0, 1.0, 0.0, 3.0, 2.0]))
    assert mask.dtype == np.bool_
    assert mask.tolist() == [True, False, True, True, False, True]
    assert pool.credits == 0
    assert pool.stats()["granted"] == 4 and pool.stats()["refused"] == 2
    assert pool.try_bid_block([]).shape == (0,)
    assert pool.try_bid_block([1, 2]).tolist() == [False, False]  # ints accepted


def test_repr_and_the_class_is_the_public_one():
    pool = make()
    assert "CreditPool(credits=10" in repr(pool)
    assert type(pool).__module__ == "rtbcore.credit"
    with pytest.raises(AttributeError):
        pool.anything = 1  # __slots__: no per-instance dict on the hot path


# ---- bad input: a clear InvalidInputError naming the argument, the pool unchanged ----------


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(initial=-1), "initial"),
        (dict(initial=math.nan), "initial"),
        (dict(initial="5"), "initial"),
        (dict(initial=None), "initial"),
        (dict(cap=math.nan), "cap"),
        (dict(cap=5, initial=10), "cap"),
        (dict(bid_cost=-0.5), "bid_cost"),
        (dict(bid_cost=math.nan), "bid_cost"),
        (dict(bid_cost=math.inf), "bid_cost"),
        (dict(win_credit=-1), "win_credit"),
        (dict(loss_credit=math.nan), "loss_credit"),
        (dict(bump=-3), "bump"),
        (dict(bump_every=0), "bump_every"),
        (dict(bump_every=-1.0), "bump_every"),
        (dict(bump_every=math.nan), "bump_every"),
        (dict(clock=5), "clock"),
        (dict(clock=lambda: math.nan), "clock()"),
        (dict(initial=1e13, cap=1e13), "initial"),
    ],
)
def test_bad_construction_names_the_argument(kw, needle):
    with pytest.raises(InvalidInputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        make(**kw)


def test_re_init_with_bad_arguments_leaves_the_pool_unchanged():
    pool = make()
    pool.try_bids(3)
    before = snapshot(pool)
    with pytest.raises(InvalidInputError, match="cap"):
        pool.__init__(10, 5)
    assert snapshot(pool) == before


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, 2**70, True])
@pytest.mark.parametrize("method", ["try_bids", "record_win", "record_loss"])
def test_bad_counts_are_refused_and_leave_the_pool_unchanged(method, bad):
    pool = make()
    pool.try_bids(2)
    before = snapshot(pool)
    with pytest.raises(InvalidInputError, match=r"\bn\b"):
        getattr(pool, method)(bad)
    assert snapshot(pool) == before


def test_numpy_integer_counts_are_accepted():
    pool = make(initial=10)
    assert pool.try_bids(np.int64(4)) == 4
    pool.record_win(np.int32(1))
    assert pool.credits == 9


@pytest.mark.parametrize(
    "bad, needle",
    [
        (99.0, "before the previous tick"),
        (math.nan, "now must be finite"),
        (math.inf, "now must be finite"),
        ("200", "now must be a real"),
    ],
)
def test_bad_tick_times_are_refused_and_leave_the_pool_unchanged(bad, needle):
    pool = make(initial=0, clock=FakeClock(0.0))
    pool.tick(100.0)
    before = snapshot(pool)
    with pytest.raises(InvalidInputError, match=needle):
        pool.tick(bad)
    assert snapshot(pool) == before


def test_a_clock_going_backwards_is_refused():
    clock = FakeClock(50.0)
    pool = make(clock=clock)
    clock.t = 49.0
    before = snapshot(pool)
    with pytest.raises(InvalidInputError, match="time must not go backwards"):
        pool.tick()
    assert snapshot(pool) == before


@pytest.mark.parametrize(
    "costs, needle",
    [
        (np.array([1.0, np.nan, 1.0]), r"costs\[1\] is NaN"),
        (np.array([1.0, 1.0, -2.0]), r"costs\[2\] must be >= 0"),
        (np.array([1.0, 1e300]), r"costs\[1\] is too large"),
        (np.ones((2, 2)), "costs must be 1-D"),
        (np.float64(1.0), "costs must be 1-D"),
        (["a", "b"], "costs must be a 1-D array of real numbers"),
        ([1.0, None], r"costs\[1\] is NaN"),  # numpy reads None as NaN
    ],
)
def test_bad_cost_blocks_are_refused_whole_and_leave_the_pool_unchanged(costs, needle):
    pool = make(initial=10)
    before = snapshot(pool)
    with pytest.raises(InvalidInputError, match=needle):
        pool.try_bid_block(costs)
    assert snapshot(pool) == before  # not even the valid first request was granted


def test_block_fills_a_preallocated_mask():
    pool = make(initial=3)
    out = np.ones(4, dtype=np.bool_)
    res = pool.try_bid_block(np.array([1.0, 5.0, 2.0, 1.0]), out=out)
    assert res is out
    assert out.tolist() == [True, False, True, False]


@pytest.mark.parametrize(
    "out, needle",
    [
        (np.zeros(3, dtype=np.bool_), r"out has shape \(3,\) but costs has 4 entries"),
        (np.zeros((4, 1), dtype=np.bool_), "out has shape"),
        (np.zeros(4, dtype=np.uint8), "out must have dtype bool"),
        ([False] * 4, "out must be a numpy bool array"),
        (np.zeros(8, dtype=np.bool_)[::2], "C-contiguous"),
        (np.zeros(4, dtype=np.bool_).copy(order="C").view(), None),  # fine: control
    ],
)
def test_mismatched_or_unusable_out_arrays_are_refused(out, needle):
    pool = make(initial=10)
    costs = np.ones(4)
    before = snapshot(pool)
    if needle is None:
        assert pool.try_bid_block(costs, out=out).all()
        return
    with pytest.raises(InvalidInputError, match=needle):
        pool.try_bid_block(costs, out=out)
    assert snapshot(pool) == before


def test_read_only_or_overlapping_out_is_refused():
    pool = make(initial=10)
    ro = np.zeros(2, dtype=np.bool_)
    ro.flags.writeable = False
    with pytest.raises(InvalidInputError, match="writable"):
        pool.try_bid_block(np.ones(2), out=ro)
    costs = np.zeros(2)
    alias = costs.view(np.bool_)[:2]
    with pytest.raises(InvalidInputError, match="overlap"):
        pool.try_bid_block(costs, out=alias)
    assert pool.credits == 10


def test_non_contiguous_and_integer_cost_arrays_are_decided_correctly():
    pool = make(initial=6)
    costs = np.arange(12, dtype=np.int64)[::3]  # 0, 3, 6, 9 - a strided view
    assert pool.try_bid_block(costs).tolist() == [True, True, False, False]
    assert pool.credits == 3


# ---- threads --------------------------------------------------------------------------------


@pytest.fixture
def fast_switching():
    """Make CPython switch threads as often as it can, so a race would have a chance to show."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _run(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a bidder thread hung"


def test_four_threads_are_granted_exactly_what_the_credits_allowed(fast_switching):
    initial, per_thread = 100_000, 40_000  # 160k attempts for 100k credits
    pool = CreditPool(initial, initial, bid_cost=1, bump_every=math.inf, clock=FakeClock())
    granted = [0] * 4
    low = [math.inf] * 4
    start = threading.Barrier(4)

    def bidder(i: int) -> None:
        start.wait()
        g = 0
        lo = math.inf
        try_bid = pool.try_bid
        for k in range(per_thread):
            if try_bid():
                g += 1
            if k % 512 == 0:
                lo = min(lo, pool.credits)
        granted[i] = g
        low[i] = lo

    _run([threading.Thread(target=bidder, args=(i,)) for i in range(4)])
    assert sum(granted) == initial
    assert pool.credits == 0
    assert min(low) >= 0
    s = pool.stats()
    assert s["granted"] == initial and s["refused"] == 4 * per_thread - initial


def test_four_threads_mixing_every_operation_keep_the_books_exact(fast_switching):
    # Bidders use all three forms while a notifier credits wins and a timer ticks bumps.
    # Invariant: initial + credits brought in == credits spent + credits left (+ discarded: 0
    # here because the cap is out of reach), and credits were never seen negative.
    clock = FakeClock(0.0)
    pool = CreditPool(5_000, 10**9, bid_cost=2, win_credit=5, bump=7, bump_every=1.0, clock=clock)
    spent = [0] * 3
    seen_negative = []
    start = threading.Barrier(5)

    def bidder(i: int) -> None:
        start.wait()
        s = 0
        for k in range(6_000):
            form = k % 3
            if form == 0:
                s += 2 * pool.try_bid()
            elif form == 1:
                s += 2 * pool.try_bids(3)
            else:
                s += 2 * int(pool.try_bid_block(np.full(4, 2.0)).sum())
            if pool.credits < 0:
                seen_negative.append(pool.credits)
        spent[i] = s

    def notifier() -> None:
        start.wait()
        for _ in range(3_000):
            pool.record_win(1)

    def timer() -> None:
        start.wait()
        for k in range(1, 2_001):
            pool.tick(float(k))

    threads = [threading.Thread(target=bidder, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=notifier), threading.Thread(target=timer)]
    _run(threads)
    s = pool.stats()
    assert not seen_negative
    assert s["wins"] == 3_000 and s["bumps"] == 2_000 and s["discarded"] == 0
    brought = 5_000 + 5 * 3_000 + 7 * 2_000
    assert brought == sum(spent) + pool.credits
    assert 2 * s["granted"] == sum(spent)


def test_a_pool_pickles_with_its_state_and_clock():
    import pickle

    pool = make()
    pool.try_bids(7)
    pool.record_win(2)
    copy = pickle.loads(pickle.dumps(pool))
    assert copy.stats() == pool.stats() and copy.credits == pool.credits
    assert copy.next_bump_at == pool.next_bump_at and type(copy.clock) is FakeClock
    # a clock that does not pickle is not dropped silently
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(make(clock=lambda: 0.0))


def test_the_pool_source_never_releases_the_gil():
    # The thread-safety argument (see CreditPool's docstring) is that no update can be
    # interleaved because the GIL is held throughout; a `with nogil` block would break it.
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "credit.pxi"
    code = "\n".join(line.split("#")[0] for line in src.read_text().splitlines())
    assert "with nogil" not in code and "with gil" not in code
    assert "PyEval_SaveThread" not in code and "Py_BEGIN_ALLOW_THREADS" not in code
