"""The engine's event log (every event, in order per auction, followed by another process,
replayable) and two-process ingress: ``eng.attach(ring)`` fed by a child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rtbcore import EVENT_DTYPE, EVENT_KINDS, AuctionEngine, EventLog
from rtbcore.engine import KIND_CANCEL, KIND_PLACE, KIND_UPDATE
from rtbcore.errors import InvalidInputError
from rtbcore.records import EVENT_NO_BIDDER, EVENT_NO_SLOT, EVENT_NOT_CLOSED

NAMES = {v: k for k, v in EVENT_KINDS.items()}


def _events_by_auction(ev: np.ndarray) -> dict[int, list[tuple[str, int]]]:
    out: dict[int, list[tuple[str, int]]] = {}
    for e in ev:
        out.setdefault(int(e["auction_id"]), []).append(
            (EVENT_KINDS[int(e["kind"])], int(e["bidder_id"]))
        )
    return out


def test_event_log_holds_every_event_in_order_per_auction(tmp_path):
    path = tmp_path / "events.ring"
    with AuctionEngine(workers=2, pin=False, reserve=0.5, increment=0.0, tmax_ms=600_000,
                       event_log=path) as eng:
        eng.open([1, 2, 3], expected_bids=[0, 2, 0])
        eng.submit([1, 2, 1, 1, 2, 1], [10, 10, 11, 10, 11, 11], [1.0, 2.0, 3.0, 4.0, 0.1, 0.0],
                   kinds=[KIND_PLACE, KIND_PLACE, KIND_PLACE, KIND_UPDATE, KIND_PLACE,
                          KIND_CANCEL])
    assert eng.stats()["events_logged"] == 13 and eng.stats()["event_log_dropped"] == 0
    log = EventLog(path)
    ev = log.read()
    assert ev.dtype == EVENT_DTYPE and ev.shape[0] == 13
    by = _events_by_auction(ev)
    none = EVENT_NO_BIDDER
    assert by[1] == [("AuctionStarted", none), ("BidPlaced", 10), ("BidPlaced", 11),
                     ("BidUpdated", 10), ("BidCancelled", 11), ("AuctionWon", 10)]
    assert by[2] == [("AuctionStarted", none), ("BidPlaced", 10), ("BidPlaced", 11),
                     ("AuctionWon", 10), ("AuctionLost", 11)]
    assert by[3] == [("AuctionStarted", none), ("AuctionLost", none)]
    won2 = ev[(ev["auction_id"] == 2) & (ev["kind"] == NAMES["AuctionWon"])][0]
    assert (won2["clearing_price"], won2["min_to_win"], won2["closed_by"]) == (0.5, 0.5, 1)
    assert (won2["price"], won2["quality"], won2["slot"], won2["loss_reason"]) == (2.0, 1.0, 0, 0)
    lost2 = ev[(ev["auction_id"] == 2) & (ev["kind"] == NAMES["AuctionLost"])][0]
    assert (lost2["price"], lost2["loss_reason"], lost2["slot"]) == (0.1, 100, EVENT_NO_SLOT)
    assert np.isnan(lost2["clearing_price"]) and lost2["reserve"] == 0.5
    start1 = ev[(ev["auction_id"] == 1) & (ev["kind"] == NAMES["AuctionStarted"])][0]
    assert (start1["reserve"], start1["tmax_ns"], start1["expected_bids"]) == (0.5, 6 * 10**11, 0)
    start2 = ev[(ev["auction_id"] == 2) & (ev["kind"] == NAMES["AuctionStarted"])][0]
    assert start2["expected_bids"] == 2 and np.isnan(start2["price"])
    assert (start2["closed_by"], start2["loss_reason"]) == (EVENT_NOT_CLOSED, -1)
    cancel = ev[ev["kind"] == NAMES["BidCancelled"]][0]
    assert (cancel["bidder_id"], cancel["price"]) == (11, 3.0)  # the bid it withdrew
    # replay from the start gives the same events again
    assert log.read().shape[0] == 0
    log.replay(0)
    assert log.read().tobytes() == ev.tobytes()  # byte for byte (NaN marks "none")


def test_follower_process_sees_every_close(tmp_path):
    path = tmp_path / "events.ring"
    n = 300
    child = textwrap.dedent(f"""
        import sys
        from rtbcore import EventLog, EVENT_KINDS
        log = EventLog({str(path)!r}, reader="follower")
        closes = placed = 0
        for ev in log.follow(timeout_ms=100, idle_polls=100):
            kinds = ev["kind"]
            closes += int((kinds == 20).sum())
            placed += int((kinds == 17).sum())
            if closes >= {n}:
                break
        print(closes, placed)
    """)
    with AuctionEngine(workers=2, pin=False, tmax_ms=600_000, event_log=path) as eng:
        proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                                cwd=tmp_path)  # not the source tree: the installed package
        rng = np.random.default_rng(0)
        for s in range(0, n, 50):
            ids = np.arange(s, s + 50)
            eng.open(ids, expected_bids=4)
            a = np.repeat(ids, 4)
            o = rng.permutation(a.size)
            eng.submit(a[o], np.tile(np.arange(4), 50)[o], rng.uniform(1, 2, a.size)[o])
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    closes, placed = map(int, out.split())
    assert (closes, placed) == (n, 4 * n)


def test_event_log_bad_arguments(tmp_path):
    with pytest.raises(InvalidInputError, match="event_log_capacity"):
        AuctionEngine(pin=False, event_log=tmp_path / "x.ring", event_log_capacity=0)
    with pytest.raises(InvalidInputError, match="start"):
        EventLog(tmp_path / "x.ring", start="middle")
    with pytest.raises(Exception, match="x.ring"):
        EventLog(tmp_path / "x.ring")  # no such log yet
    with AuctionEngine(workers=1, pin=False) as eng:
        with pytest.raises(InvalidInputError, match="ring"):
            eng.attach(42)
        with pytest.raises(InvalidInputError, match="start"):
            eng.attach(tmp_path / "x.ring", start="middle")


def test_attach_consumes_a_ring_written_by_another_process(tmp_path):
    """Two-process ingress: a child process appends bids to a BidRing (with backpressure), the
    engine attached to it clears every auction."""
    import rtbcore

    path = tmp_path / "bids.ring"
    ring = rtbcore.BidRing.create(path, capacity=1024)
    n = 400
    writer = textwrap.dedent(f"""
        import numpy as np
        from rtbcore import BidRing, make_bids
        ring = BidRing.open({str(path)!r})
        a = np.repeat(np.arange({n}), 5)
        b = np.tile(np.arange(5), {n})
        recs = make_bids(a, b, 1.0 + b)
        off = 0
        while off < recs.size:
            off += ring.append_many(recs[off:off + 100])
            ring.wait_for_space(1, timeout=0.05)
    """)
    with AuctionEngine(workers=2, pin=False, increment=0.0, tmax_ms=600_000) as eng:
        eng.open(np.arange(n), expected_bids=5)
        eng.attach(ring, reader="engine")
        proc = subprocess.run([sys.executable, "-c", writer], cwd=tmp_path, timeout=60)
        assert proc.returncode == 0
        got = []
        while sum(r.shape[0] for r in got) < n:
            r = eng.poll(timeout_ms=5_000)
            assert r.shape[0], "the engine stopped producing results"
            got.append(r)
        s = eng.stats()
    r = np.concatenate(got)
    assert sorted(r["auction_id"].tolist()) == list(range(n))
    assert (r["winner_bidder"] == 4).all() and (r["price"] == 4.0).all()
    assert (s["attached"], s["attach_records"], s["attach_invalid"]) == (1, 5 * n, 0)
    ring.close()


def test_event_log_file_records_its_record_type(tmp_path):
    """The event log is a ring tagged ``rtbcore.event``: opened without a dtype it reads as
    events, opened as bids (or attached as a bid source) it is refused, naming both types."""
    from rtbcore import BID_DTYPE, BidRing

    path = str(tmp_path / "events.ring")
    with AuctionEngine(workers=1, pin=False, event_log=path) as eng:
        eng.open([1], expected_bids=1)
        eng.submit([1], [2], [1.0])
        while eng.poll(timeout_ms=50).shape[0] == 0:
            pass
    with BidRing.open(path) as ring:
        assert ring.dtype == EVENT_DTYPE
    with pytest.raises(InvalidInputError, match="rtbcore.event") as e:
        BidRing.open(path, dtype=BID_DTYPE)
    assert "rtbcore.bid" in str(e.value)
    with AuctionEngine(workers=1, pin=False) as eng:
        with pytest.raises(InvalidInputError, match="rtbcore.event"):
            eng.attach(path)
