"""BidQueue: semantics, exactly-once under threads, bad input, and a deque state machine."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from rtbcore import BID_DTYPE, KIND_CANCEL, BidQueue
from rtbcore.errors import InvalidBidError, InvalidInputError, QueueClosed

from oracles import bid_range


def bids(lo: int, hi: int, bidder: int = 1) -> np.ndarray:
    return bid_range(lo, hi, bidder=bidder, quality_mod=3)


def test_bid_dtype_is_the_48_byte_rust_record() -> None:
    assert BID_DTYPE.itemsize == 48
    names = ("auction_id", "bidder_id", "price", "quality", "timestamp_ns", "kind")
    assert BID_DTYPE.names == names
    offsets = [BID_DTYPE.fields[n][1] for n in BID_DTYPE.names]
    assert offsets == [0, 8, 16, 24, 32, 40]
    assert [BID_DTYPE.fields[n][0].str for n in BID_DTYPE.names] == [
        "<u8", "<u8", "<f8", "<f8", "<u8", "|u1"
    ]


def test_push_pop_fifo_full_and_refused_count() -> None:
    q = BidQueue(4)
    assert q.capacity == 4 and len(q) == 0
    assert q.push(1, 10, 2.5) is True
    assert q.push(2, 20, 3.5, 0.5, kind=1, timestamp_ns=99) is True
    assert q.push_many(bids(3, 10)) == 2
    assert len(q) == 4
    assert q.push(9, 9, 1.0) is False
    assert q.refused == 5 + 1
    out = q.pop_many(3)
    assert out.dtype == BID_DTYPE
    assert out["auction_id"].tolist() == [1, 2, 3]
    assert out[1].tolist() == (2, 20, 3.5, 0.5, 99, 1)
    assert out[2].tolist() == (3, 1, 1.5, 1.0, 33, 0)
    assert q.pop_many(100)["auction_id"].tolist() == [4]
    assert len(q.pop_many(100)) == 0


def test_capacity_one_queue_never_holds_two() -> None:
    q = BidQueue(1)
    for i in range(4):
        assert q.push(i, 0, 1.0) and not q.push(99, 0, 1.0)
        assert q.push_many(bids(0, 3)) == 0
        assert q.pop_many(5)["auction_id"].tolist() == [i]


def test_push_many_round_trips_every_field() -> None:
    q = BidQueue(1000)
    b = bids(0, 1000)
    assert q.push_many(b) == 1000
    out = q.pop_many(2000)
    assert out.tobytes() == b.tobytes()


def test_close_refuses_pushes_and_pops_drain() -> None:
    q = BidQueue(8)
    q.push_many(bids(0, 5))
    q.close()
    assert q.closed
    with pytest.raises(QueueClosed):
        q.push(1, 1, 1.0)
    with pytest.raises(QueueClosed):
        q.push_many(bids(0, 1))
    assert q.pop_many(10)["auction_id"].tolist() == [0, 1, 2, 3, 4]


def test_non_contiguous_block_is_accepted_in_order() -> None:
    q = BidQueue(100)
    b = bids(0, 20)[::2]
    assert q.push_many(b) == 10
    assert q.pop_many(100)["auction_id"].tolist() == list(range(0, 20, 2))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("price", np.nan, r"price\[3\]"), ("price", -1.0, r"price\[3\]"),
     ("quality", np.inf, r"quality\[3\]"), ("kind", 7, r"kind\[3\]")],
)
def test_bad_record_refuses_the_whole_block(field: str, value: float, match: str) -> None:
    q = BidQueue(100)
    q.push(99, 1, 1.0)
    b = bids(0, 6)
    b[field][3] = value
    with pytest.raises(InvalidBidError, match=match):
        q.push_many(b)
    assert len(q) == 1 and q.refused == 0
    assert q.pop_many(10)["auction_id"].tolist() == [99]


def test_bad_single_push_names_the_field() -> None:
    q = BidQueue(4)
    with pytest.raises(InvalidBidError, match="price"):
        q.push(1, 1, float("nan"))
    with pytest.raises(InvalidBidError, match="kind"):
        q.push(1, 1, 1.0, kind=KIND_CANCEL + 2)
    with pytest.raises(OverflowError):
        q.push(-1, 1, 1.0)
    assert len(q) == 0


@pytest.mark.parametrize(
    "records",
    [
        [1, 2, 3],
        np.zeros(3, np.float64),
        np.zeros((2, 2), BID_DTYPE),
        np.zeros(3, [("auction_id", "<u8"), ("price", "<f8")]),
    ],
)
def test_wrong_records_type_or_dtype_is_refused(records: object) -> None:
    q = BidQueue(4)
    with pytest.raises(InvalidInputError, match="records"):
        q.push_many(records)  # type: ignore[arg-type]
    assert len(q) == 0


def test_bad_capacity_and_max_n() -> None:
    with pytest.raises(InvalidInputError, match="capacity"):
        BidQueue(0)
    q = BidQueue(4)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(InvalidInputError, match="max_n"):
            q.pop_many(bad)  # type: ignore[arg-type]


def test_exactly_once_4_producers_2_consumers() -> None:
    n_per, producers = 20_000, 4
    q = BidQueue(512)
    done = threading.Event()
    got: list[list[np.ndarray]] = [[], []]

    def produce(p: int) -> None:
        b = bids(0, n_per, bidder=p)
        i = 0
        while i < n_per:
            k = q.push_many(b[i : i + 1 + i % 97])
            i += k
            if k == 0:
                # mix single pushes in: the per-call path must be safe too
                if q.push(*b[i].tolist()[:4]):
                    i += 1

    def consume(c: int) -> None:
        while True:
            out = q.pop_many(256)
            if len(out):
                got[c].append(out)
            elif done.is_set() and len(q) == 0:
                return

    ts = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    cs = [threading.Thread(target=consume, args=(c,)) for c in range(2)]
    for t in ts + cs:
        t.start()
    for t in ts:
        t.join()
    done.set()
    for t in cs:
        t.join()
    allrec = np.concatenate([a for g in got for a in g])
    assert len(allrec) == producers * n_per
    keys = allrec["bidder_id"].astype(np.int64) * n_per + allrec["auction_id"].astype(np.int64)
    assert len(np.unique(keys)) == producers * n_per
    # Records are intact (fields consistent with each other) ...
    np.testing.assert_array_equal(allrec["price"], allrec["auction_id"] * 0.5)
    np.testing.assert_array_equal(allrec["timestamp_ns"][allrec["kind"] > 0] % 11, 0)
    # ... and each consumer sees each producer's records in order.
    for g in got:
        if not g:
            continue
        mine = np.concatenate(g)
        for p in range(producers):
            seq = mine["auction_id"][mine["bidder_id"] == p].astype(np.int64)
            assert np.all(np.diff(seq) > 0)


class QueueMachine(RuleBasedStateMachine):
    """BidQueue against collections.deque with a capacity."""

    @initialize(cap=st.integers(1, 12))
    def setup(self, cap: int) -> None:
        self.q = BidQueue(cap)
        self.model: deque[tuple] = deque()
        self.cap = cap
        self.next = 0
        self.closed = False

    def _rec(self) -> tuple:
        self.next += 1
        return (self.next, self.next % 5, self.next * 0.25, 1.0, 0, 0)

    @rule()
    def push(self) -> None:
        r = self._rec()
        if self.closed:
            with pytest.raises(QueueClosed):
                self.q.push(*r[:4])
            return
        ok = self.q.push(*r[:4])
        assert ok == (len(self.model) < self.cap)
        if ok:
            self.model.append(r)

    @rule(n=st.integers(0, 15), bad=st.booleans())
    def push_many(self, n: int, bad: bool) -> None:
        recs = [self._rec() for _ in range(n)]
        arr = np.array(recs, dtype=BID_DTYPE)
        if bad and n:
            arr["price"][n // 2] = np.nan
            with pytest.raises(InvalidBidError):
                self.q.push_many(arr)
            return
        if self.closed:
            with pytest.raises(QueueClosed):
                self.q.push_many(arr)
            return
        k = self.q.push_many(arr)
        assert k == min(n, self.cap - len(self.model))
        self.model.extend(recs[:k])

    @rule(n=st.integers(0, 15))
    def pop_many(self, n: int) -> None:
        out = self.q.pop_many(n)
        want = [self.model.popleft() for _ in range(min(n, len(self.model)))]
        assert [tuple(r) for r in out.tolist()] == want

    @rule()
    def close(self) -> None:
        self.q.close()
        self.closed = True

    @invariant()
    def same_length(self) -> None:
        if hasattr(self, "q"):
            assert len(self.q) == len(self.model)


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
