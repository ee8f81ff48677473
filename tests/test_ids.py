"""IdMap: string <-> uint64 interning, vectorised and thread-safe, and the engine taking strings."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore import AuctionEngine, IdMap
from rtbcore.errors import InvalidBidError, InvalidInputError, StateError

words = st.text(min_size=0, max_size=6)


@settings(max_examples=100, deadline=None)
@given(blocks=st.lists(st.lists(words, max_size=30), max_size=6))
def test_ids_are_first_sight_order_and_round_trip(blocks):
    m = IdMap()
    seen: dict[str, int] = {}  # the oracle: a dict filled one key at a time
    for block in blocks:
        got = m.ids(np.array(block, dtype=object) if block else [])
        for k in block:
            seen.setdefault(k, len(seen))
        assert got.dtype == np.uint64 and got.tolist() == [seen[k] for k in block]
        if block:
            assert m.keys(got).tolist() == block
    assert len(m) == len(seen)
    assert [m.id(k, insert=False) for k in seen] == list(seen.values())
    copy = pickle.loads(pickle.dumps(m))
    assert [copy.key(i) for i in range(len(copy))] == list(seen)


def test_threads_interning_the_same_strings_agree():
    m = IdMap()
    keys = [f"req-{i % 500}" for i in range(5000)]
    out: list[np.ndarray] = []

    def work(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(keys)
        out.append(m.ids(order)[np.argsort(order, kind="stable")])

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(m) == 500
    for o in out:
        np.testing.assert_array_equal(o, out[0])
    assert sorted(m.keys(np.arange(500)).tolist()) == sorted(set(keys))


def test_bad_keys_and_ids_are_named():
    m = IdMap(["a", "b"])
    with pytest.raises(InvalidInputError, match=r"keys\[1\]"):
        m.ids(np.array(["x", 3], dtype=object))
    with pytest.raises(InvalidInputError, match="'zz' is not in the IdMap"):
        m.ids(["a", "zz"], insert=False)
    with pytest.raises(InvalidInputError, match=r"ids\[1\] = 2"):
        m.keys([0, 2])
    with pytest.raises(InvalidInputError, match="key"):
        m.id(b"a")  # type: ignore[arg-type]
    assert len(m) == 2  # nothing was added by a refused call
    with pytest.raises(StateError, match="twice"):
        IdMap.from_state({**m.to_state(), "keys": ["a", "a"]})


def test_the_engine_takes_string_ids():
    with AuctionEngine(workers=2, pin=False, mechanism="first_price", reserve=0.0,
                       tmax_ms=60_000) as eng:  # fmt: skip
        eng.open(["req-a", "req-b"], expected_bids=2)
        eng.submit(["req-a", "req-a", "req-b"], ["dsp-1", "dsp-2", "dsp-2"], [1.0, 2.0, 3.0])
        assert eng.decline("req-b", "dsp-9") == 1
        rows, t0 = [], time.monotonic()
        while sum(r.shape[0] for r in rows) < 2 and time.monotonic() - t0 < 10:
            rows.append(eng.poll(timeout_ms=50))
        r = np.concatenate(rows)
    r = r[np.argsort(r["auction_id"])]
    assert eng.auction_id_map.keys(r["auction_id"]).tolist() == ["req-a", "req-b"]
    assert eng.bidder_id_map.keys(r["winner_bidder"]).tolist() == ["dsp-2", "dsp-2"]


def test_every_record_carries_ids_as_uint64_and_no_bidder_is_never_an_id() -> None:
    from rtbcore.records import (
        BID_DTYPE,
        EVENT_DTYPE,
        EVENT_NO_BIDDER,
        NO_BIDDER,
        OUTCOME_DTYPE,
        REJECTED_DTYPE,
        RESULT_DTYPE,
    )
    u8 = np.dtype("<u8")
    for dt, fields in ((BID_DTYPE, ("auction_id", "bidder_id")),
                       (EVENT_DTYPE, ("auction_id", "bidder_id")),
                       (RESULT_DTYPE, ("auction_id", "winner_bidder")),
                       (REJECTED_DTYPE, ("auction_id", "bidder_id")),
                       (OUTCOME_DTYPE, ("auction_id", "bidder_id"))):
        for f in fields:
            assert dt[f] == u8, (dt, f)
    assert IdMap().ids(["a", "b"]).dtype == u8
    assert NO_BIDDER == EVENT_NO_BIDDER == 2**64 - 1
    # the largest valid id round-trips through the engine; NO_BIDDER is refused as an id
    big = 2**63 - 1
    with AuctionEngine(workers=1, pin=False, tmax_ms=600_000, outcomes=True) as eng:
        eng.open(np.array([big], dtype=np.uint64), expected_bids=1)
        eng.submit(np.array([big], dtype=np.uint64), np.array([big], dtype=np.uint64), [1.0])
        with pytest.raises(InvalidBidError, match=r"bidder_ids\[0\] = 18446744073709551615"):
            eng.submit(np.array([big], dtype=np.uint64), np.array([NO_BIDDER], dtype=np.uint64),
                       [1.0])
    rows = eng.poll()
    assert rows["auction_id"].tolist() == [big] and rows["winner_bidder"].tolist() == [big]
    outs = eng.poll_outcomes()
    assert outs["bidder_id"].tolist() == [big]
