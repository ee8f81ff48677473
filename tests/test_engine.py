"""AuctionEngine: results against a pure-Python clearing oracle in any arrival order, updates and
cancels against a pure-Python model of the engine, rejections, shutdown, bad input, Ctrl-C."""

from __future__ import annotations

import math
import os
import signal
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtbcore
from rtbcore import NO_BIDDER, RESULT_DTYPE, AuctionEngine
from rtbcore.engine import (
    CLOSED_BY_ALL_BIDS,
    CLOSED_BY_DEADLINE,
    CLOSED_BY_SHUTDOWN,
    KIND_CANCEL,
    KIND_DECLINE,
    KIND_PLACE,
    KIND_UPDATE,
    REJECT_LATE,
    REJECT_UNKNOWN,
)
from rtbcore.errors import InvalidBidError, InvalidInputError, QueueClosed

from oracles import oracle_engine

LONG = 600_000  # ms: no deadline fires during a test


def _assert_poll_interrupted(eng: AuctionEngine, timer: threading.Timer, timeout_ms: int) -> None:
    """Starts ``timer`` (which sends SIGINT) and checks that a poll waiting up to ``timeout_ms``
    raises KeyboardInterrupt promptly. Python's own SIGINT handler is installed for the check
    (what a program's Ctrl-C meets), whatever an earlier test in the process left there."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        timer.start()
        t = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            eng.poll(timeout_ms=timeout_ms)
        assert time.monotonic() - t < 5.0
        timer.join()
    finally:
        signal.signal(signal.SIGINT, before)


def drain(eng: AuctionEngine, n: int | None = None, timeout_s: float = 20.0) -> np.ndarray:
    """Every row the engine has (after close), or until n rows arrived."""
    parts = []
    got = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        r = eng.poll(timeout_ms=50)
        parts.append(r)
        got += r.shape[0]
        if n is not None and got >= n:
            break
        if n is None and r.shape[0] == 0 and eng.closed:
            break
    out = np.concatenate(parts) if parts else np.empty(0, RESULT_DTYPE)
    return np.sort(out, order=["auction_id", "slot"])


PRICES = st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.25])
QUALS = st.sampled_from([0.5, 1.0, 2.0])
AUCTION = st.dictionaries(st.integers(0, 30), st.tuples(PRICES, QUALS), max_size=10)
MECHS = st.sampled_from(["first_price", "second_price", "gsp", "vcg"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    auctions=st.lists(AUCTION, min_size=1, max_size=8),
    mech=MECHS,
    reserve=st.sampled_from([0.0, 0.75, 1.5]),
    increment=st.sampled_from([0.0, 0.01]),
    workers=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_results_equal_the_oracle_in_any_arrival_order(
    auctions, mech, reserve, increment, workers, seed
):
    ctrs = [1.0, 0.6, 0.25] if mech in ("gsp", "vcg") else None
    if mech == "vcg":
        reserve, increment = 0.0, 0.0  # VCG's reserve rule is the clearing issue's to settle
    ids = np.arange(len(auctions), dtype=np.int64) * 1_000_003 + 5
    rows = [(ids[a], b, p, q) for a, bids in enumerate(auctions) for b, (p, q) in bids.items()]
    rng = np.random.default_rng(seed)
    rng.shuffle(rows)
    arr = np.array(rows, dtype=[("a", "i8"), ("b", "i8"), ("p", "f8"), ("q", "f8")])
    eng = AuctionEngine(workers=workers, pin=False, mechanism=mech, reserve=reserve,
                        increment=increment, tmax_ms=LONG, slot_ctrs=ctrs)
    with eng:
        eng.open(ids)
        assert eng.submit(arr["a"], arr["b"], arr["p"], quality=arr["q"]) == len(rows)
    got = drain(eng)
    k = len(ctrs) if ctrs else 1
    assert got.shape[0] == len(auctions) * k
    for a, bids in enumerate(auctions):
        want = oracle_engine(mech, bids, reserve, increment, ctrs)
        mine = got[a * k:(a + 1) * k]
        for s, (w, price, mtw) in enumerate(want):
            row = mine[s]
            assert (row["auction_id"], row["slot"]) == (ids[a], s)
            assert row["winner_bidder"] == w
            assert row["price"] == pytest.approx(price, rel=1e-12, abs=1e-12)
            if w != NO_BIDDER:
                assert row["min_to_win"] == pytest.approx(mtw, rel=1e-12, abs=1e-12)
            else:
                assert math.isnan(row["min_to_win"])
            assert row["n_bids"] == len(bids)
            assert row["closed_by"] == CLOSED_BY_SHUTDOWN


# ---- updates and cancels against a pure-Python model of the engine --------------------------


class EngineModel:
    """Per-auction state in submission order: place/update upsert, cancel kills, decline kills
    and answers, a bidder counts as answered from its first place/update/decline, the auction
    closes when `expected` answered. A bid after a decline updates the declined answer."""

    def __init__(self, expected):
        self.expected = expected
        self.bids = {a: {} for a in expected}
        self.live = {a: set() for a in expected}
        self.answered = {a: set() for a in expected}
        self.closed_by = {}
        self.late = self.unknown = self.placed = self.updated = self.cancelled = 0
        self.cancel_without_bid = 0
        self.declined = 0

    def apply(self, a, b, p, kind):
        if a not in self.expected:
            self.unknown += 1
            return
        if a in self.closed_by:
            self.late += 1
            return
        if kind == KIND_CANCEL:
            if b in self.live[a]:
                self.live[a].discard(b)
                self.cancelled += 1
            else:
                self.cancel_without_bid += 1
            return
        if kind == KIND_DECLINE:
            self.declined += 1
            self.live[a].discard(b)
            self.bids[a].setdefault(b, 0.0)
            self.answered[a].add(b)
        elif b in self.bids[a]:
            self.updated += 1
        else:
            self.placed += 1
            self.answered[a].add(b)
        if kind != KIND_DECLINE:
            self.bids[a][b] = p
            self.live[a].add(b)
        e = self.expected[a]
        if e and len(self.answered[a]) >= e:
            self.closed_by[a] = CLOSED_BY_ALL_BIDS

    def final(self, a):
        return {b: (self.bids[a][b], 1.0) for b in self.live[a]}

def assert_follows_the_model(eng: AuctionEngine, got: np.ndarray, model: EngineModel) -> None:
    """Each result row is the second price of the model's final bids; the counters agree."""
    for row in got:
        a = int(row["auction_id"])
        w, price, _ = oracle_engine("second_price", model.final(a), 0.0, 0.0)[0]
        assert (row["winner_bidder"], row["price"]) == (w, price)
        assert row["n_bids"] == len(model.live[a])
        assert row["closed_by"] == model.closed_by.get(a, CLOSED_BY_SHUTDOWN)
    s = eng.stats()
    assert (s["bids_placed"], s["bids_updated"], s["bids_cancelled"]) == (
        model.placed, model.updated, model.cancelled)
    assert s["cancel_without_bid"] == model.cancel_without_bid
    assert s["bids_declined"] == model.declined
    assert (s["rejected_late"], s["rejected_unknown"]) == (model.late, model.unknown)


EVENT = st.tuples(st.integers(0, 4), st.integers(0, 5), PRICES, st.sampled_from([0, 1, 2, 3]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(EVENT, max_size=60),
    expected=st.lists(st.integers(0, 4), min_size=4, max_size=4),
    split=st.integers(0, 60),
    workers=st.integers(1, 3),
)
def test_updates_and_cancels_follow_the_model(events, expected, split, workers):
    # auctions 0..3 are opened, 4 never is
    model = EngineModel({a: e for a, e in enumerate(expected)})
    for a, b, p, k in events:
        model.apply(a, b, p, k)
    eng = AuctionEngine(workers=workers, pin=False, mechanism="second_price", increment=0.0,
                        tmax_ms=LONG)
    with eng:
        eng.open(np.arange(4), expected_bids=np.array(expected))
        # two blocks: per-auction order must survive the block boundary
        for part in (events[:split], events[split:]):
            if part:
                arr = np.array(part, dtype=np.float64)
                eng.submit(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2],
                           kinds=arr[:, 3].astype(np.uint8))
    got = drain(eng)
    assert got["auction_id"].tolist() == [0, 1, 2, 3]
    assert_follows_the_model(eng, got, model)
    rej = eng.poll_rejected()
    assert rej.shape[0] == model.late + model.unknown
    assert (rej["loss_reason"] == 2).all()
    assert int((rej["cause"] == REJECT_LATE).sum()) == model.late


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_large_auctions_with_updates_and_cancels_follow_the_model(seed):
    # hundreds of bidders per auction: an auction's bid storage grows (16 -> 1024 bids), the
    # bidder filter saturates and the tag scan has to find every earlier bidder
    rng = np.random.default_rng(seed)
    na, n = 40, 30_000
    expected = {a: int(rng.choice([0, 0, 5, 50, 300, 700])) for a in range(na)}
    model = EngineModel(expected)
    a = rng.integers(0, na + 2, n)  # na and na + 1 are never opened
    b = rng.integers(0, 900, n)
    p = np.round(rng.uniform(0, 5, n), 2)
    k = rng.choice([0, 1, 2], n, p=[0.6, 0.25, 0.15]).astype(np.uint8)
    for x in zip(a.tolist(), b.tolist(), p.tolist(), k.tolist(), strict=True):
        model.apply(*x)
    with AuctionEngine(workers=1 + seed, pin=False, increment=0.0, tmax_ms=LONG) as eng:
        eng.open(np.arange(na), expected_bids=np.array([expected[i] for i in range(na)]))
        cuts = [0, *sorted(rng.integers(0, n, 4).tolist()), n]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            eng.submit(a[lo:hi], b[lo:hi], p[lo:hi], kinds=k[lo:hi])
    got = drain(eng)
    assert sorted(got["auction_id"].tolist()) == list(range(na))
    assert_follows_the_model(eng, got, model)


# ---- closing: expected bids, deadline, shutdown ----------------------------------------------


def test_closes_when_expected_bidders_answered_and_reports_latency():
    with AuctionEngine(workers=2, pin=False, increment=0.0, tmax_ms=LONG) as eng:
        eng.open([10, 11], expected_bids=[2, 3])
        eng.submit([10, 11, 10, 11], [1, 1, 2, 2], [3.0, 1.0, 2.0, 1.0])
        r = drain(eng, n=1, timeout_s=10)
        assert r["auction_id"].tolist() == [10]
        assert (r["winner_bidder"][0], r["price"][0], r["closed_by"][0]) == (1, 2.0, 1)
        assert r["last_bid_to_result_ns"][0] > 0
        s = eng.stats()  # a polled row is already counted (counters publish before rows)
        assert s["last_bid_to_result_count"] == 1 and s["last_bid_to_result_p99_ns"] > 0
        assert (s["results"], s["closed_all_bids"]) == (1, 1)
        # auction 11 lives on the other worker, which may not have applied its queued `open`
        # yet: stats() is a snapshot of what the workers have applied, so wait for it
        deadline = time.monotonic() + 10
        while eng.stats()["open_auctions"] != 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert eng.stats()["open_auctions"] == 1
    rest = drain(eng)
    assert rest["auction_id"].tolist() == [11] and rest["closed_by"][0] == CLOSED_BY_SHUTDOWN


def test_deadline_closes_and_later_bids_are_late():
    with AuctionEngine(workers=2, pin=False, tmax_ms=LONG) as eng:
        eng.open([1, 2], tmax_ms=[5, 5])
        eng.submit([1], [7], [1.0])
        r = drain(eng, n=2, timeout_s=10)
        assert r["closed_by"].tolist() == [CLOSED_BY_DEADLINE] * 2
        assert (r["open_to_close_ns"] >= 5_000_000).all()
        assert r["winner_bidder"].tolist() == [7, NO_BIDDER]
        eng.submit([1, 2, 3], [8, 8, 8], [1.0, 1.0, 1.0])
    s = eng.stats()
    assert (s["rejected_late"], s["rejected_unknown"]) == (2, 1)
    rej = np.sort(eng.poll_rejected(), order="auction_id")
    assert rej["cause"].tolist() == [REJECT_LATE, REJECT_LATE, REJECT_UNKNOWN]
    assert rej["loss_reason"].tolist() == [2, 2, 2]
    assert rej["bidder_id"].tolist() == [8, 8, 8]


def test_shutdown_clears_every_open_auction_and_refuses_more_input():
    eng = AuctionEngine(workers=3, pin=False, tmax_ms=LONG)
    ids = np.arange(5000, dtype=np.int64)
    eng.open(ids)
    eng.submit(ids, ids % 7, np.full(5000, 2.0))
    eng.close()
    eng.close()  # idempotent
    r = drain(eng)
    assert r["auction_id"].tolist() == ids.tolist()
    assert (r["closed_by"] == CLOSED_BY_SHUTDOWN).all()
    assert (r["winner_bidder"] == ids % 7).all() and (r["n_bids"] == 1).all()
    with pytest.raises(QueueClosed):
        eng.submit([1], [1], [1.0])
    with pytest.raises(QueueClosed):
        eng.open([1])
    assert eng.stats()["live_threads"] == 0


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_more_workers_than_cores_pinned_and_no_thread_leak():
    before = _threads()
    n = (os.cpu_count() or 2) * 3
    with AuctionEngine(workers=n, pin=True, tmax_ms=LONG) as eng:
        assert _threads() == before + n
        ids = np.arange(3000, dtype=np.int64)
        eng.open(ids, expected_bids=2)
        eng.submit(np.repeat(ids, 2), np.tile([1, 2], 3000), np.tile([1.0, 2.0], 3000))
        r = drain(eng, n=3000)
        assert r.shape[0] == 3000 and (r["winner_bidder"] == 2).all()
        s = eng.stats()
        assert s["workers"] == n
        assert s["pinned"] + s["pin_failures"] == n  # every worker either pinned or reported
        assert (s["pin_error"] is None) == (s["pin_failures"] == 0)
    assert _threads() == before


def test_engines_started_and_closed_repeatedly_leave_no_threads():
    before = _threads()
    for _ in range(20):
        eng = AuctionEngine(workers=3, pin=False)
        eng.open([1])
        eng.close()
    del eng
    assert _threads() == before


def test_submit_one_and_cancel():
    with AuctionEngine(workers=1, pin=False, reserve=0.5, increment=0.0, tmax_ms=LONG) as eng:
        eng.open(5)
        assert eng.submit_one(5, 1, 3.0) is True
        assert eng.submit_one(5, 2, 2.0, quality=2.0) is True
        assert eng.cancel(5, 1) is True
        assert eng.cancel(5, 9) is True
    (row,) = drain(eng)
    # alone after the cancel: pays the reserve
    assert (row["winner_bidder"], row["price"], row["n_bids"]) == (2, 0.5, 1)
    s = eng.stats()
    assert (s["bids_cancelled"], s["cancel_without_bid"]) == (1, 1)


def test_position_auction_rows_are_never_split_by_poll():
    with AuctionEngine(workers=2, pin=False, mechanism="gsp", slot_ctrs=[1.0, 0.5, 0.2],
                       tmax_ms=LONG) as eng:
        assert eng.mechanism == "gsp"
        eng.open(np.arange(10))
        eng.submit(np.arange(10), np.arange(10), np.ones(10))
    for _ in range(10):
        r = eng.poll(max_n=4)
        assert r.shape[0] == 3
        assert r["auction_id"].tolist() == [r["auction_id"][0]] * 3
        assert r["slot"].tolist() == [0, 1, 2]
        assert r["winner_bidder"].tolist() == [r["auction_id"][0], NO_BIDDER, NO_BIDDER]


def test_duplicate_open_is_counted_and_ignored():
    with AuctionEngine(workers=2, pin=False, tmax_ms=LONG) as eng:
        eng.open([1, 1, 2])
    assert drain(eng).shape[0] == 2
    assert eng.stats()["open_duplicate"] == 1


def test_capacity_bounds_the_intake_and_submit_waits():
    with AuctionEngine(workers=1, pin=False, capacity=1000, tmax_ms=LONG) as eng:
        eng.open(np.arange(100), expected_bids=50)
        a = np.repeat(np.arange(100), 50)
        b = np.tile(np.arange(50), 100)
        for s in range(0, 5000, 900):
            eng.submit(a[s:s + 900], b[s:s + 900], np.ones(a[s:s + 900].size))
        r = drain(eng, n=100)
        assert r.shape[0] == 100 and (r["closed_by"] == CLOSED_BY_ALL_BIDS).all()
        assert eng.stats()["queued"] == 0


# ---- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([1, 2], [1, 2], [1.0, math.nan]), {}, r"prices\[1\]"),
        (([1, 2], [1, 2], [1.0, -0.5]), {}, r"prices\[1\]"),
        (([1, 2], [1, 2], [1.0, math.inf]), {}, r"prices\[1\]"),
        (([1, -2], [1, 2], [1.0, 1.0]), {}, r"auction_ids\[1\]"),
        (([1, 2], [1, -2], [1.0, 1.0]), {}, r"bidder_ids\[1\]"),
        (([1, 2], [1, 2, 3], [1.0, 1.0]), {}, r"bidder_ids"),
        (([1, 2], [1, 2], [1.0]), {}, r"prices"),
        (([1.0, 2.0], [1, 2], [1.0, 1.0]), {}, r"auction_ids: expected integers.* float64"),
        (([1, 2], [b"a", b"b"], [1.0, 1.0]), {}, r"bidder_ids: expected integers, got dtype"),
        (([1, 2], [1, 2], ["x", "y"]), {}, r"prices: expected numbers, got dtype"),
        (([1, 2], [1, 2], [1.0, 1.0]), {"quality": [1.0, 0.0]}, r"quality\[1\]"),
        (([1, 2], [1, 2], [1.0, 1.0]), {"quality": [1.0]}, r"quality"),
        (([1, 2], [1, 2], [1.0, 1.0]), {"kinds": [0, 7]}, r"kinds\[1\]"),
        ((np.array([1, 2**63], dtype=np.uint64), [1, 2], [1.0, 1.0]), {}, r"auction_ids\[1\]"),
        (([[1, 2]], [1, 2], [1.0, 1.0]), {}, r"auction_ids: expected a 1-D"),
    ],
)
def test_malformed_blocks_are_refused_whole(args, kwargs, match):
    with AuctionEngine(workers=2, pin=False, tmax_ms=LONG) as eng:
        eng.open([1, 2])
        with pytest.raises(InvalidInputError, match=match):
            eng.submit(*args, **kwargs)
        assert eng.stats()["submitted"] == 0
    r = drain(eng)
    assert (r["n_bids"] == 0).all()


def test_bad_bid_values_raise_invalid_bid_error():
    with AuctionEngine(workers=1, pin=False) as eng:
        with pytest.raises(InvalidBidError, match=r"prices\[0\] = NaN"):
            eng.submit([1], [1], [math.nan])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"workers": 0}, "workers"),
        ({"workers": 2.5}, "workers"),
        ({"mechanism": "dutch"}, "mechanism"),
        ({"mechanism": "vcg"}, "slot_ctrs"),
        ({"mechanism": "first_price", "slot_ctrs": [1.0]}, "slot_ctrs"),
        ({"mechanism": "gsp", "slot_ctrs": [0.5, 1.0]}, "slot_ctrs"),
        ({"reserve": -1.0}, "reserve"),
        ({"reserve": math.nan}, "reserve"),
        ({"increment": -0.1}, "increment"),
        ({"tmax_ms": 0}, "tmax_ms"),
        ({"tmax_ms": math.nan}, "tmax_ms"),
        ({"tmax_ms": 1e300}, "tmax_ms"),
        ({"capacity": 0}, "capacity"),
    ],
)
def test_bad_engine_settings(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        AuctionEngine(pin=False, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"auction_ids": [1, -1]}, r"auction_ids\[1\]"),
        ({"auction_ids": [1.5]}, r"auction_ids: expected integers"),
        ({"auction_ids": [1, 2], "reserve": [0.1, math.nan]}, r"reserve\[1\]"),
        ({"auction_ids": [1, 2], "reserve": [0.1]}, r"reserve"),
        ({"auction_ids": [1, 2], "tmax_ms": [5, -1]}, r"tmax_ms\[1\]"),
        ({"auction_ids": [1, 2], "tmax_ms": [5, 1e300]}, r"tmax_ms\[1\]"),
        ({"auction_ids": [1, 2], "expected_bids": [1, -1]}, r"expected_bids\[1\]"),
    ],
)
def test_bad_open_is_refused_whole(kwargs, match):
    with AuctionEngine(workers=1, pin=False) as eng:
        with pytest.raises(InvalidInputError, match=match):
            eng.open(**kwargs)
    assert eng.stats()["opened"] == 0


def test_bad_scalars_for_one_bid():
    with AuctionEngine(workers=1, pin=False) as eng:
        with pytest.raises(InvalidInputError, match="price"):
            eng.submit_one(1, 1, math.nan)
        with pytest.raises(InvalidInputError, match="bidder_id"):
            eng.submit_one(1, -1, 1.0)
        with pytest.raises(InvalidInputError, match="auction_id"):
            eng.cancel(1.5, 1)


# ---- Ctrl-C during poll ----------------------------------------------------------------------


def test_ctrl_c_during_poll_is_prompt_and_loses_no_result():
    with AuctionEngine(workers=2, pin=False, tmax_ms=LONG) as eng:
        eng.open([1, 2], expected_bids=1)
        eng.submit([1, 2], [1, 1], [1.0, 2.0])
        # wait until both results exist inside the engine, without taking them
        t0 = time.monotonic()
        while eng.stats()["results"] < 2 and time.monotonic() - t0 < 10:
            time.sleep(0.001)
        first = eng.poll(max_n=1)
        assert first.shape[0] == 1
        second = eng.poll(max_n=1)
        assert second.shape[0] == 1  # nothing else pending now
        eng.open([3])  # closes only at shutdown: the next poll would wait its full timeout
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        _assert_poll_interrupted(eng, timer, 30_000)
        eng.open([4], expected_bids=1)
        eng.submit([4], [9], [1.0])
        r = drain(eng, n=1)
        assert r["auction_id"].tolist() == [4]


def test_result_published_while_ctrl_c_is_pending_is_not_lost():
    """A timer thread sends SIGINT and then closes an auction, while the main thread waits in
    poll: the poll raises KeyboardInterrupt (promptly) and the row is not lost with it."""
    with AuctionEngine(workers=2, pin=False, tmax_ms=LONG) as eng:
        for a in range(10):
            eng.open([a], expected_bids=1)

            def fire(a=a):
                os.kill(os.getpid(), signal.SIGINT)
                eng.submit([a], [3], [1.0])

            timer = threading.Timer(0.02, fire)
            _assert_poll_interrupted(eng, timer, 10_000)
            got = drain(eng, n=1)
            assert got["auction_id"].tolist() == [a]
            assert got["winner_bidder"].tolist() == [3]
        assert eng.poll().shape[0] == 0


def test_public_names():
    assert "AuctionEngine" in rtbcore.__all__
    assert RESULT_DTYPE.itemsize == 56
    assert KIND_PLACE == 0 and KIND_UPDATE == 1 and KIND_CANCEL == 2
    assert REJECT_UNKNOWN == 2
    assert repr(AuctionEngine(workers=1, pin=False)).startswith("AuctionEngine(workers=1")


def test_many_threads_submitting_and_polling_at_once():
    """8 submitter threads share every auction (distinct bidders per thread) while 2 threads
    poll: every auction closes once, on its last expected bidder, with the right winner."""
    n_threads, n_auctions, per_thread = 8, 2000, 3
    expected = n_threads * per_thread
    rng = np.random.default_rng(5)
    prices = rng.lognormal(0, 0.5, (n_threads, n_auctions, per_thread))
    eng = AuctionEngine(workers=3, pin=False, increment=0.0, tmax_ms=LONG, capacity=5000)
    eng.open(np.arange(n_auctions), expected_bids=expected)
    got: list[np.ndarray] = []
    lock = threading.Lock()
    done = threading.Event()

    def submitter(t: int) -> None:
        order = np.random.default_rng(t).permutation(n_auctions * per_thread)
        a = (order // per_thread).astype(np.int64)
        b = (t * per_thread + order % per_thread).astype(np.int64)
        p = prices[t].reshape(-1)[order]
        for s in range(0, a.size, 700):
            eng.submit(a[s:s + 700], b[s:s + 700], p[s:s + 700])

    def poller() -> None:
        while not done.is_set():
            r = eng.poll(max_n=500, timeout_ms=20)
            with lock:
                got.append(r)

    threads = [threading.Thread(target=submitter, args=(t,)) for t in range(n_threads)]
    pollers = [threading.Thread(target=poller) for _ in range(2)]
    for th in threads + pollers:
        th.start()
    for th in threads:
        th.join()
    t0 = time.monotonic()
    while eng.stats()["results"] < n_auctions and time.monotonic() - t0 < 20:
        time.sleep(0.005)
    done.set()
    for th in pollers:
        th.join()
    eng.close()
    got.append(drain(eng))
    r = np.sort(np.concatenate(got), order="auction_id")
    assert r["auction_id"].tolist() == list(range(n_auctions))
    assert (r["closed_by"] == CLOSED_BY_ALL_BIDS).all() and (r["n_bids"] == expected).all()
    flat = prices.transpose(1, 0, 2).reshape(n_auctions, expected)  # column = bidder id
    np.testing.assert_array_equal(r["winner_bidder"], flat.argmax(axis=1))
    second = np.sort(flat, axis=1)[:, -2]
    np.testing.assert_allclose(r["price"], second)


def test_submit_records_equals_submit_and_names_bad_fields():
    from rtbcore import make_bids

    rng = np.random.default_rng(3)
    a = np.repeat(np.arange(50), 4)
    b = np.tile(np.arange(4), 50)
    p = rng.uniform(0.5, 2, a.size)
    k = np.where(rng.random(a.size) < 0.2, KIND_CANCEL, KIND_PLACE).astype(np.uint8)
    outs = []
    for use_records in (False, True):
        with AuctionEngine(workers=2, pin=False, tmax_ms=LONG) as eng:
            eng.open(np.arange(50))
            if use_records:
                assert eng.submit_records(make_bids(a, b, p, kind=k)) == a.size
            else:
                assert eng.submit(a, b, p, kinds=k) == a.size
        outs.append(drain(eng)[["auction_id", "winner_bidder", "price", "n_bids"]])
    np.testing.assert_array_equal(outs[0], outs[1])
    with AuctionEngine(workers=1, pin=False) as eng:
        bad = make_bids([1, 2], [1, 2], [1.0, np.nan])
        with pytest.raises(InvalidBidError, match=r"records.price\[1\]"):
            eng.submit_records(bad)
        with pytest.raises(InvalidInputError, match="BID_DTYPE"):
            eng.submit_records(np.zeros(3))
        assert eng.stats()["submitted"] == 0


@pytest.mark.parametrize("bad", [math.nan, -1.0])
def test_bad_timeouts_are_refused(bad):
    with AuctionEngine(workers=1, pin=False) as eng:
        with pytest.raises(InvalidInputError, match="timeout_ms"):
            eng.poll(timeout_ms=bad)
        with pytest.raises(InvalidInputError, match="timeout_ms"):
            eng.submit([1], [1], [1.0], timeout_ms=bad)
        assert eng.stats()["submitted"] == 0


def test_infinite_timeout_waits_until_a_result():
    with AuctionEngine(workers=1, pin=False, tmax_ms=LONG) as eng:
        eng.open([1], expected_bids=1)
        threading.Timer(0.05, eng.submit, ([1], [2], [1.0])).start()
        r = eng.poll(timeout_ms=math.inf)
        assert r["auction_id"].tolist() == [1]
        assert eng.submit([1], [3], [1.0], timeout_ms=math.inf) == 1
