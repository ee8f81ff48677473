"""A ring file records its record type, and reads refuse bad timeouts alike.

- A ring of another record type is never read as bids: ``open`` without a dtype gives the
  file's own, ``open`` with another dtype is refused naming both, and so is an engine attach.
- ``read(timeout=...)``, ``read_one``, ``wait`` and ``wait_for_space`` refuse the same bad
  timeouts; ``wait_for_space`` refuses a count that can never fit.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtbcore import BID_DTYPE, EVENT_DTYPE, AuctionEngine, BidRing
from rtbcore.errors import InvalidInputError, RingCorrupt

from oracles import bid_range


def test_a_ring_of_another_type_is_not_read_as_bids(path: str) -> None:
    ring = BidRing.create(path, capacity=8, dtype="V48")
    ring.append_many(np.full(2, b"\xff" * 48, dtype="V48"))
    other = BidRing.open(path)
    assert other.dtype == np.dtype("V48") and other.record_type == "numpy:|V48"
    with pytest.raises(InvalidInputError, match="BID_DTYPE"):
        other.reader("r").read_one()
    with pytest.raises(InvalidInputError, match=r'dtype: .*"numpy:\|V48".*not "rtbcore\.bid"'):
        BidRing.open(path, dtype=BID_DTYPE)
    assert BidRing.open(path, dtype="V48").reader("r2").read(8).shape == (2,)


def test_an_engine_refuses_to_attach_a_ring_of_another_type(path: str) -> None:
    BidRing.create(path, capacity=8, dtype="V48")
    with AuctionEngine(workers=1, pin=False) as eng:
        with pytest.raises(InvalidInputError, match="rtbcore.bid"):
            eng.attach(path)


def test_event_and_custom_dtypes_round_trip_and_refuse_each_other(tmp_path) -> None:
    events = str(tmp_path / "events.ring")
    BidRing.create(events, capacity=8, dtype=EVENT_DTYPE)
    assert BidRing.open(events).dtype == EVENT_DTYPE
    assert BidRing.open(events, dtype=EVENT_DTYPE).record_type == "rtbcore.event"
    with pytest.raises(InvalidInputError, match="rtbcore.event"):
        BidRing.open(events, dtype=BID_DTYPE)
    bids = str(tmp_path / "bids.ring")
    BidRing.create(bids, capacity=8)
    assert BidRing.open(bids).record_type == "rtbcore.bid"
    with pytest.raises(InvalidInputError, match="rtbcore.bid"):
        BidRing.open(bids, dtype=EVENT_DTYPE)
    a = np.dtype([("user", "<u8"), ("score", "<f8")])
    b = np.dtype([("user", "<u8"), ("value", "<f8")])  # same size, other fields
    custom = str(tmp_path / "custom.ring")
    BidRing.create(custom, capacity=8, dtype=a)
    assert BidRing.open(custom, dtype=a).dtype == a
    with pytest.raises(InvalidInputError, match="value"):
        BidRing.open(custom, dtype=b)


def test_a_file_of_the_previous_format_is_refused_with_the_reason(path: str) -> None:
    BidRing.create(path, capacity=8).close()
    with open(path, "r+b") as f:
        f.seek(8)
        f.write((1).to_bytes(4, "little"))
    with pytest.raises(RingCorrupt, match="version 1.*older rtbcore"):
        BidRing.open(path)


@pytest.mark.parametrize("bad", [float("nan"), -3, -1e-9, float("inf"), True, "1"])
def test_every_read_refuses_the_same_bad_timeouts(path: str, bad: object) -> None:
    ring = BidRing.create(path, capacity=8)
    ring.append_many(bid_range(0, 3))
    r = ring.reader("r")
    assert r.read(1)["auction_id"].tolist() == [0]
    calls = [
        lambda: r.read(1, timeout=bad),
        lambda: r.read_one(timeout=bad),
        lambda: r.wait(bad),
        lambda: ring.wait_for_space(1, timeout=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="timeout"):
            call()
        # a refused call leaves the reader as it was: record 0 held, nothing acknowledged
        assert (r.position, r.acknowledged) == (1, 0)
    assert r.read(5)["auction_id"].tolist() == [1, 2]


def test_wait_for_space_refuses_a_count_that_can_never_fit(path: str) -> None:
    ring = BidRing.create(path, capacity=8)
    with pytest.raises(InvalidInputError, match="can never fit"):
        ring.wait_for_space(10**6, timeout=0.01)
    with pytest.raises(InvalidInputError, match="can never fit"):
        ring.wait_for_space(9)
    assert ring.wait_for_space(8, timeout=0.01)
    assert ring.wait_for_space(0)
