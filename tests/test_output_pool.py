"""The output pool behind large clearing results: a buffer is reused only once nothing
references it, results stay correct while held, and the pool can be sized or turned off."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtbcore
from rtbcore import AuctionBatch, OutputPool, clear_second_price, clear_vcg

PER = 10
N_BIDS = 200_000  # 2.4 MB of per-bid outputs: above the pool's 1 MiB floor


def batch(seed: int, per: int = PER, n_bids: int = N_BIDS) -> AuctionBatch:
    rng = np.random.default_rng(seed)
    n = n_bids // per
    return AuctionBatch(np.arange(n + 1, dtype=np.int64) * per, rng.lognormal(0, 1, n * per),
                        reserve=0.2)


def snapshot(r) -> tuple[np.ndarray, ...]:
    return tuple(np.array(a, copy=True) for a in (r.winner, r.price, r.min_to_win, r.loss_reason))


def same(r, snap) -> bool:
    return all(np.array_equal(a, b, equal_nan=True)
               for a, b in zip((r.winner, r.price, r.min_to_win, r.loss_reason), snap, strict=True))


def test_results_come_from_recycled_buffers():
    pool = rtbcore.output_pool
    b = batch(1)
    r = clear_second_price(b)
    assert r.min_to_win.base is not None  # a view of a pooled buffer
    before = pool.stats()["hits"]
    del r
    r = clear_second_price(b)
    assert pool.stats()["hits"] >= before + 1
    assert r.min_to_win.flags.c_contiguous and r.min_to_win.flags.writeable


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["keep", "drop", "slice", "mv"])),
                min_size=1, max_size=12))
def test_held_results_are_never_overwritten(calls):
    """Interleave calls on different batches while holding some results (whole, as a slice or
    as a memoryview) and dropping others: every held result keeps its own values."""
    held = []
    for seed, how in calls:
        r = clear_second_price(batch(seed))
        snap = snapshot(r)
        if how == "keep":
            held.append((r, snap))
        elif how == "slice":
            part = r.min_to_win[5:-5:3]
            want = snap[2][5:-5:3].copy()
            del r
            held.append((part, want))
        elif how == "mv":
            mv = memoryview(r.loss_reason)
            want = snap[3].copy()
            del r
            held.append((mv, want))
        for obj, want in held:
            if isinstance(obj, np.ndarray):
                assert np.array_equal(obj, want, equal_nan=True)
            elif isinstance(obj, memoryview):
                assert np.array_equal(np.asarray(obj), want)
            else:
                assert same(obj, want)


def test_reused_buffer_gives_the_same_answer_as_a_fresh_one():
    b1, b2 = batch(7), batch(8)
    want = snapshot(clear_second_price(b2))
    for _ in range(3):
        clear_second_price(b1)  # dirty buffers released at once
        assert same(clear_second_price(b2), want)


def test_slot_results_are_pooled_and_correct():
    b = AuctionBatch.from_sizes([10] * 60_000, np.random.default_rng(3).lognormal(0, 1, 600_000))
    ctrs = [1.0, 0.6, 0.3]
    want = clear_vcg(b, ctrs)
    w, p = want.winner.copy(), want.price.copy()
    for _ in range(2):
        got = clear_vcg(b, ctrs)
        assert np.array_equal(got.winner, w) and np.array_equal(got.price, p)
        assert np.array_equal(want.winner, w)  # the first result, still held, unchanged


def test_max_bytes_bounds_the_pool_and_zero_turns_it_off():
    p = OutputPool(max_bytes=8 << 20)
    a = p.empty(3 << 20, np.uint8)  # rounds up to 4 MiB
    b = p.empty(3 << 20, np.uint8)
    c = p.empty(3 << 20, np.uint8)  # no room: a plain array
    assert a.base is not None and b.base is not None and c.base is None
    s = p.stats()
    assert (s["held_bytes"], s["in_use_bytes"], s["bypassed"]) == (8 << 20, 8 << 20, 1)
    del a
    d = p.empty((1 << 20, 2), np.float64)  # 16 MiB: more than max_bytes, plain
    assert d.base is None
    e = p.empty(2 << 20, np.uint8)  # reuses a's buffer
    assert p.stats()["hits"] == 1 and e.base is not None
    del b, e
    p.max_bytes = 0
    assert p.stats()["held_bytes"] == 0
    assert p.empty(4 << 20, np.uint8).base is None
    with pytest.raises(rtbcore.InvalidInputError, match="max_bytes"):
        p.max_bytes = -1


def test_small_results_are_plain_arrays():
    r = clear_second_price(batch(2, n_bids=1000))
    assert r.min_to_win.base is None and r.winner.base is None


def test_clear_frees_only_unheld_buffers():
    p = OutputPool()
    a = p.empty(1 << 21, np.uint8)
    b = p.empty(1 << 21, np.uint8)
    del b
    p.clear()
    s = p.stats()
    assert (s["buffers"], s["in_use_bytes"]) == (1, 2 << 20)
    a[:] = 1
    assert a.sum() == 2 << 20


def test_threads_clearing_at_once_each_get_their_own_outputs():
    batches = [batch(s) for s in range(4)]
    want = [snapshot(clear_second_price(b)) for b in batches]
    errors: list[str] = []

    def work(i: int) -> None:
        for _ in range(20):
            r = clear_second_price(batches[i])
            if not same(r, want[i]):
                errors.append(f"thread {i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
