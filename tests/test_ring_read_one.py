"""RingReader.read_one, the one-record fast path: values and order, at-least-once cursor
semantics shared with read (also across a reader process that exits without acknowledging),
timeouts, sealed rings, custom dtypes, broadcast overruns, bad arguments."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from rtbcore import BID_DTYPE, BidRing
from rtbcore.errors import InvalidInputError, RingOverrun

from oracles import bid_range


def bids(lo: int, hi: int) -> np.ndarray:
    return bid_range(lo, hi, quality_mod=4)


def as_tuples(recs: np.ndarray) -> list[tuple[int, int, float, float, int, int]]:
    return [
        (
            int(r["auction_id"]),
            int(r["bidder_id"]),
            float(r["price"]),
            float(r["quality"]),
            int(r["timestamp_ns"]),
            int(r["kind"]),
        )
        for r in recs
    ]


def test_read_one_returns_each_record_as_a_tuple_in_order(path: str) -> None:
    ring = BidRing.create(path, capacity=8)
    r = ring.reader("r")
    assert r.read_one() is None
    b = bids(0, 20)  # wraps the 8-slot ring twice
    got = []
    for i in range(20):
        assert ring.append_many(b[i : i + 1]) == 1
        rec = r.read_one()
        assert type(rec) is tuple
        got.append(rec)
    assert got == as_tuples(b)
    assert r.position == 20 and r.acknowledged == 19  # the last one is still held
    assert r.read_one() is None
    assert r.acknowledged == 20  # like read(): an empty read_one acknowledges the held record


def test_append_and_read_one_are_single_native_calls(path: str) -> None:
    ring = BidRing.create(path, capacity=8)
    r = ring.reader("r")
    # append: the bound method of the extension type, no Python frame around it
    assert type(ring.append).__name__ == "builtin_function_or_method"
    # read_one: one plain function frame (closure cells, no attribute lookup) around the one
    # native call; that frame is what lets a Ctrl-C right after the call hand the record back
    assert type(r.read_one).__name__ == "function"
    natives = [c.cell_contents for c in r.read_one.__closure__ or ()]
    assert {type(n).__name__ for n in natives} == {"builtin_function_or_method"}
    assert sorted(n.__name__ for n in natives) == ["_unread", "read_one"]
    assert ring.append(5, 6, 2.5, 0.5, 1, 123)
    assert r.read_one() == (5, 6, 2.5, 0.5, 123, 1)


def test_read_one_acknowledges_the_previous_record_and_a_new_attach_redelivers(
    path: str,
) -> None:
    ring = BidRing.create(path, capacity=16)
    ring.append_many(bids(0, 5))
    r = ring.reader("r")
    assert r.read_one()[0] == 0  # type: ignore[index]
    assert r.acknowledged == 0  # held, not acknowledged
    assert r.read_one()[0] == 1  # type: ignore[index]
    assert r.acknowledged == 1  # the previous one is now acknowledged
    # A "crash" before the ack: a fresh attach of the same name gets record 1 again.
    again = BidRing.open(path).reader("r")
    assert again.read_one()[0] == 1  # type: ignore[index]
    r.commit()
    assert ring.readers()["r"] == 2


def test_read_one_mixes_with_read_and_commit(path: str) -> None:
    ring = BidRing.create(path, capacity=16)
    ring.append_many(bids(0, 10))
    r = ring.reader("r")
    assert r.read(3)["auction_id"].tolist() == [0, 1, 2]
    assert r.read_one()[0] == 3  # type: ignore[index]
    assert r.acknowledged == 3  # read_one acknowledged read's batch
    assert r.read(2)["auction_id"].tolist() == [4, 5]
    assert r.acknowledged == 4  # read acknowledged read_one's record
    r.commit()
    assert r.acknowledged == 6
    assert r.read_one()[0] == 6  # type: ignore[index]
    r.replay(2)
    assert [r.read_one()[0] for _ in range(3)] == [2, 3, 4]  # type: ignore[index]
    with r:
        assert r.read_one()[0] == 5  # type: ignore[index]
    assert r.acknowledged == 6  # leaving the with block acknowledged it


def test_read_one_timeout_returns_none_and_waits_for_a_late_record(path: str) -> None:
    ring = BidRing.create(path, capacity=8)
    r = ring.reader("r")
    assert r.read_one(timeout=0.02) is None
    assert r.position == 0 and r.acknowledged == 0
    t = threading.Timer(0.05, lambda: ring.append(42, 1, 3.0))
    t.start()
    try:
        assert r.read_one(timeout=30.0) == (42, 1, 3.0, 1.0, 0, 0)
    finally:
        t.join()


def test_read_one_skips_a_dead_writers_slot_within_its_timeout(path: str) -> None:
    ring = BidRing.create(path, capacity=16)
    r = ring.reader("r", abandon_after=0.05)
    ring._n._reserve_and_die(2)  # a writer died holding 2 slots
    ring.append_many(bids(2, 3))
    assert r.read_one() is None  # head-of-line until the slots are declared dead
    assert r.read_one(timeout=30.0) == as_tuples(bids(2, 3))[0]
    assert ring.abandoned == 2


def test_sealed_ring_drains_then_read_one_returns_none(path: str) -> None:
    ring = BidRing.create(path, capacity=8)
    r = BidRing.open(path).reader("r")
    ring.append_many(bids(0, 2))
    ring.seal()
    assert [r.read_one(timeout=30.0) for _ in range(2)] == as_tuples(bids(0, 2))
    # sealed and drained: None without sleeping out the timeout (a hang would time out pytest)
    assert r.read_one(timeout=1e6) is None
    r.commit()
    assert ring.readers()["r"] == 2


def test_custom_dtype_rings_refuse_read_one_without_moving_the_cursor(path: str) -> None:
    for k, dt in enumerate([np.dtype([("user", "<u8"), ("score", "<f8")]), np.dtype("V48")]):
        p = f"{path}{k}"
        ring = BidRing.create(p, capacity=8, dtype=dt)
        ring.append_many(np.zeros(3, dt))
        r = ring.reader("r")
        assert len(r.read(1)) == 1
        with pytest.raises(InvalidInputError, match="read_one.*use read"):
            r.read_one()
        assert (r.position, r.acknowledged) == (1, 0)  # the held record was not acknowledged
    # A BID_DTYPE reader on a ring whose records are not 48 bytes is refused natively too.
    ring = BidRing.create(path + "n", capacity=8, dtype=np.dtype([("x", "<u8")]))
    with pytest.raises(InvalidInputError, match="48-byte"):
        ring._n.reader("r", "oldest", 2.0).read_one()


def test_bad_timeout_and_removed_reader_are_refused(path: str) -> None:
    ring = BidRing.create(path, capacity=8)
    ring.append_many(bids(0, 2))
    r = ring.reader("r")
    assert r.read_one()[0] == 0  # type: ignore[index]
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(InvalidInputError, match="timeout"):
            r.read_one(timeout=bad)
    assert (r.position, r.acknowledged) == (1, 0)
    ring.remove_reader("r")
    with pytest.raises(InvalidInputError, match="removed"):
        r.read_one()


def test_broadcast_overrun_raises_like_read_and_resumes(path: str) -> None:
    ring = BidRing.create(path, capacity=8, mode="broadcast")
    r1, r2 = ring.reader("one"), ring.reader("two")
    ring.append_many(bids(0, 20))  # laps both readers: 0..12 are gone
    with pytest.raises(RingOverrun) as e1:
        r1.read_one()
    with pytest.raises(RingOverrun) as e2:
        r2.read(1)
    assert (e1.value.lost, e1.value.next_seq) == (e2.value.lost, e2.value.next_seq) == (12, 12)
    assert [r1.read_one() for _ in range(8)] == as_tuples(bids(12, 20))
    assert r1.read_one() is None


PRELUDE = textwrap.dedent(
    """
    import os, sys
    from rtbcore import BidRing
    ring = BidRing.open(sys.argv[1])
    """
)


def run(code: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-P", "-c", PRELUDE + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


ONE_BY_ONE_WRITER = """
    for i in range(int(sys.argv[2])):
        while not ring.append(i, i % 7, (i % 1000) * 0.25, 1.0 + i % 5, i % 3, i * 7919):
            ring.wait_for_space(1, 1.0)
"""


def test_read_one_across_processes_gets_every_record_in_order(tmp_path: Path) -> None:
    n = 20_000
    path = str(tmp_path / "x.ring")
    ring = BidRing.create(path, capacity=256)  # small: the writer often waits for space
    r = ring.reader("r")
    code = PRELUDE + textwrap.dedent(ONE_BY_ONE_WRITER)
    writer = subprocess.Popen(
        [sys.executable, "-P", "-c", code, path, str(n)], stderr=subprocess.PIPE, text=True
    )
    got = []
    while len(got) < n:
        rec = r.read_one(timeout=0.05)
        if rec is not None:
            got.append(rec)
        else:
            assert writer.poll() in (None, 0)
    r.commit()
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    want = [(i, i % 7, (i % 1000) * 0.25, 1.0 + i % 5, i * 7919, i % 3) for i in range(n)]
    assert got == want
    assert ring.readers()["r"] == n


def test_reader_process_exiting_before_ack_gets_its_record_redelivered(path: str) -> None:
    ring = BidRing.create(path, capacity=64)
    ring.append_many(bids(0, 10))
    ring.reader("victim")
    # Reads 4 records one by one, then dies (os._exit: no with-block ack) holding the 4th.
    out = run(
        """
        r = ring.reader("victim")
        print(*[r.read_one()[0] for _ in range(4)], flush=True)
        os._exit(0)
        """,
        path,
    )
    assert out.split() == ["0", "1", "2", "3"]
    assert ring.readers()["victim"] == 3
    r = ring.reader("victim")
    assert [r.read_one()[0] for _ in range(7)] == list(range(3, 10))  # type: ignore[index]


def test_bid_dtype_order_matches_the_tuple() -> None:
    assert BID_DTYPE.names == (
        "auction_id",
        "bidder_id",
        "price",
        "quality",
        "timestamp_ns",
        "kind",
    )
