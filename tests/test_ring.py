"""BidRing in one process: files and headers, cursors, modes, bad input, a deque state machine."""

from __future__ import annotations

import os
import stat
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rtbcore import BID_DTYPE, BidRing
from rtbcore.errors import (
    InvalidBidError,
    InvalidInputError,
    QueueClosed,
    RingCorrupt,
    RingOverrun,
    RtbcoreOSError,
)

from oracles import bid_range

bids = bid_range


def test_create_open_header_and_file_mode(path: str) -> None:
    with BidRing.create(path, capacity=1000) as ring:
        assert ring.capacity == 1024  # rounded up to a power of two
        assert ring.mode == "backpressure" and ring.dtype == BID_DTYPE
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path, "rb") as f:
            assert f.read(8) == b"RTBRING\0"
        with pytest.raises(RtbcoreOSError, match="exists"):
            BidRing.create(path)
        other = BidRing.open(path)
        assert other.capacity == 1024 and other.dtype == BID_DTYPE
    with pytest.raises(QueueClosed):
        ring.append(1, 1, 1.0)


def test_default_path_is_under_dev_shm() -> None:
    ring = BidRing.create(capacity=8)
    try:
        if os.path.isdir("/dev/shm"):
            assert ring.path.startswith("/dev/shm/")
        assert os.path.exists(ring.path)
    finally:
        os.remove(ring.path)


def test_read_is_a_zero_copy_read_only_view(path: str) -> None:
    ring = BidRing.create(path, capacity=16)
    r = ring.reader("a")
    b = bids(0, 5)
    assert ring.append_many(b) == 5
    v = r.read(100)
    assert v.tobytes() == b.tobytes()
    assert not v.flags.writeable
    assert np.shares_memory(v, ring._slots)
    # The view stays valid (and unchanged) until the next read acknowledges it.
    v2 = BidRing.open(path).reader("b").read(2)
    assert v2["auction_id"].tolist() == [0, 1]


def test_backpressure_append_returns_how_many_fit(path: str) -> None:
    ring = BidRing.create(path, capacity=8)
    r = ring.reader("slow")
    assert ring.append_many(bids(0, 12)) == 8
    assert ring.append(99, 1, 1.0) is False
    assert r.read(3)["auction_id"].tolist() == [0, 1, 2]
    assert ring.append_many(bids(8, 12)) == 0  # the batch is held until acknowledged
    r.commit()
    assert ring.wait_for_space(3, timeout=0.01)
    assert ring.append_many(bids(8, 12)) == 3
    assert r.read(100)["auction_id"].tolist() == [3, 4, 5, 6, 7]
    assert r.read(100)["auction_id"].tolist() == [8, 9, 10]  # wrapped around


def test_no_reader_means_the_ring_keeps_the_newest(path: str) -> None:
    ring = BidRing.create(path, capacity=4)
    assert ring.append_many(bids(0, 10)) == 10
    r = ring.reader("late", start="oldest")
    assert r.read(100)["auction_id"].tolist() == [6, 7]
    assert r.read(100)["auction_id"].tolist() == [8, 9]
    assert ring.reader("new", start="latest").read(100).size == 0


def test_broadcast_overrun_reports_lost_and_resumes(path: str) -> None:
    ring = BidRing.create(path, capacity=8, mode="broadcast")
    r = ring.reader("r")
    assert ring.append_many(bids(0, 5)) == 5
    assert r.read(2)["auction_id"].tolist() == [0, 1]
    assert ring.append_many(bids(5, 30)) == 25
    with pytest.raises(RingOverrun) as e:
        r.read(100)
    msg, lost, next_seq = e.value.args
    assert (lost, next_seq) == (20, 22) and e.value.lost == 20 and "20 records" in msg
    got = np.concatenate([r.read(100), r.read(100)])
    assert got["auction_id"].tolist() == list(range(22, 30))
    assert r.read(100).size == 0


def test_cursor_is_persistent_and_at_least_once(path: str) -> None:
    ring = BidRing.create(path, capacity=64)
    r = ring.reader("billing")
    ring.append_many(bids(0, 10))
    assert r.read(4)["auction_id"].tolist() == [0, 1, 2, 3]
    assert r.read(4)["auction_id"].tolist() == [4, 5, 6, 7]  # acknowledges 0..4
    del r  # "crash" while holding 4..8
    again = BidRing.open(path)
    assert again.readers() == {"billing": 4}
    r2 = again.reader("billing", start="latest")  # start only applies to new names
    assert r2.read(100)["auction_id"].tolist() == [4, 5, 6, 7, 8, 9]
    with r2:
        pass  # a clean exit acknowledges
    assert again.readers() == {"billing": 10}
    assert again.remove_reader("billing") and again.readers() == {}


def test_replay_and_its_bounds(path: str) -> None:
    ring = BidRing.create(path, capacity=8)
    r = ring.reader("r")
    ring.append_many(bids(0, 6))
    r.read(100)
    r.replay(2)
    assert r.read(100)["auction_id"].tolist() == [2, 3, 4, 5]
    with pytest.raises(InvalidInputError, match="from_seq"):
        r.replay(7)
    r.commit()
    ring.append_many(bids(6, 14))
    assert ring.oldest == 6
    with pytest.raises(RingOverrun) as e:
        r.replay(1)
    assert (e.value.lost, e.value.next_seq) == (5, 6)


def test_seal_ends_the_stream_for_every_handle(path: str) -> None:
    ring = BidRing.create(path, capacity=8)
    r = BidRing.open(path).reader("r")
    ring.append_many(bids(0, 3))
    ring.seal()
    assert BidRing.open(path).sealed
    with pytest.raises(QueueClosed):
        BidRing.open(path).append_many(bids(3, 4))
    assert r.read(100)["auction_id"].tolist() == [0, 1, 2]
    assert r.wait(5.0)  # returns at once: sealed


def test_custom_dtype_ring(path: str) -> None:
    dt = np.dtype([("user", "<u8"), ("score", "<f8")])
    ring = BidRing.create(path, capacity=8, dtype=dt)
    recs = np.array([(1, 0.5), (2, np.nan)], dt)  # not bids: not validated
    assert ring.append_many(recs) == 2
    r = BidRing.open(path, dtype=dt).reader("r")
    got = r.read(10)
    assert got.dtype == dt and got["user"].tolist() == [1, 2]
    with pytest.raises(InvalidInputError, match="dtype"):
        BidRing.open(path, dtype=BID_DTYPE)
    assert BidRing.open(path).dtype == np.dtype("V16")
    with pytest.raises(InvalidInputError, match="append_many"):
        ring.append(1, 1, 1.0)
    with pytest.raises(InvalidInputError, match="dtype"):
        BidRing.create(path + "2", dtype=np.dtype("u1"))


@pytest.mark.parametrize(
    ("field", "value"), [("price", np.nan), ("price", -2.0), ("quality", np.nan), ("kind", 4)]
)
def test_bad_bids_are_refused_whole_and_change_nothing(path: str, field: str, value: float) -> None:
    ring = BidRing.create(path, capacity=8)
    r = ring.reader("r")
    ring.append_many(bids(0, 2))
    b = bids(2, 6)
    b[field][2] = value
    with pytest.raises(InvalidBidError, match=rf"{field}\[2\]"):
        ring.append_many(b)
    assert ring.tail == 2
    assert r.read(100)["auction_id"].tolist() == [0, 1]


@pytest.mark.parametrize(
    "records",
    [[1, 2], np.zeros(2, np.float64), np.zeros((2, 1), BID_DTYPE), np.zeros(2, "V48")],
)
def test_wrong_record_containers_are_refused(path: str, records: object) -> None:
    ring = BidRing.create(path, capacity=8)
    with pytest.raises(InvalidInputError, match="records"):
        ring.append_many(records)  # type: ignore[arg-type]
    assert ring.tail == 0


def test_bad_arguments(path: str) -> None:
    with pytest.raises(InvalidInputError, match="mode"):
        BidRing.create(path, mode="fast")
    with pytest.raises(InvalidInputError, match="capacity"):
        BidRing.create(path, capacity=0)
    with pytest.raises(InvalidInputError, match="capacity"):
        BidRing.create(path, capacity=-5)
    with pytest.raises(TypeError, match="create"):
        BidRing()
    ring = BidRing.create(path, capacity=8, max_readers=1)
    ring.reader("one")
    with pytest.raises(InvalidInputError, match="maximum"):
        ring.reader("two")
    with pytest.raises(InvalidInputError, match="name"):
        ring.reader("x" * 49)
    with pytest.raises(InvalidInputError, match="start"):
        ring.reader("one", start="middle")
    with pytest.raises(InvalidInputError, match="timeout"):
        ring.wait_for_space(1, timeout=float("nan"))


def _resident_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_prefault_makes_the_whole_file_resident_and_keeps_the_records(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    with BidRing.create(path, capacity=1 << 16) as ring:
        size_kib = path.stat().st_size // 1024
        assert ring.append(7, 3, 1.5)
        before = _resident_kib(path)
        assert before < size_kib // 2  # a fresh file: only the header and the first page
        if not ring.prefault():
            pytest.skip("the kernel does not populate mappings (MADV_POPULATE_WRITE)")
        assert _resident_kib(path) >= size_kib - 4
        assert ring.append(8, 4, 2.5)
        got = ring.reader("r").read()
        assert got["auction_id"].tolist() == [7, 8] and got["price"].tolist() == [1.5, 2.5]
    closed = BidRing.create(tmp_path / "closed", capacity=16)
    closed.close()
    with pytest.raises(QueueClosed):
        closed.prefault()


def test_foreign_truncated_and_overwritten_files_are_ring_corrupt(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.write_bytes(b"PK\x03\x04" + bytes(20000))
    with pytest.raises(RingCorrupt, match="magic"):
        BidRing.open(foreign)
    short = tmp_path / "short"
    short.write_bytes(b"RTBRING\0")
    with pytest.raises(RingCorrupt, match="shorter"):
        BidRing.open(short)
    p = tmp_path / "r"
    BidRing.create(p, capacity=64).close()
    data = bytearray(p.read_bytes())
    p.write_bytes(bytes(data[:-100]))
    with pytest.raises(RingCorrupt, match="truncated"):
        BidRing.open(p)
    data[12] = 40  # record size
    p.write_bytes(bytes(data))
    with pytest.raises(RingCorrupt, match="checksum"):
        BidRing.open(p)
    with pytest.raises(RtbcoreOSError):
        BidRing.open(tmp_path / "missing")


def test_dead_writer_slot_is_skipped_after_abandon_after(path: str) -> None:
    ring = BidRing.create(path, capacity=16)
    r = ring.reader("r", abandon_after=0.05)
    ring.append_many(bids(0, 2))
    assert ring._n._reserve_and_die(3) == 3  # a writer dies holding 3 slots
    ring.append_many(bids(5, 7))
    assert r.read(100)["auction_id"].tolist() == [0, 1]
    assert r.read(100).size == 0  # head-of-line until the slots are declared dead
    got = r.read(100, timeout=5.0)
    assert got["auction_id"].tolist() == [5, 6]
    assert ring.abandoned == 3


class RingMachine(RuleBasedStateMachine):
    """A backpressure ring with one reader against collections.deque."""

    @initialize(cap_log=st.integers(0, 4))
    def setup(self, cap_log: int) -> None:
        import tempfile

        self.dir = tempfile.TemporaryDirectory()
        self.ring = BidRing.create(os.path.join(self.dir.name, "m.ring"), capacity=1 << cap_log)
        self.cap = 1 << cap_log
        self.r = self.ring.reader("r")
        self.model: deque[int] = deque()
        self.held = 0  # records of the last read, not yet acknowledged
        self.next = 0

    def teardown(self) -> None:
        if hasattr(self, "dir"):
            self.ring.close()
            self.dir.cleanup()

    @rule(n=st.integers(0, 20), bad=st.booleans())
    def append_many(self, n: int, bad: bool) -> None:
        b = bids(self.next, self.next + n)
        if bad and n:
            b["price"][n - 1] = np.nan
            b["kind"][n - 1] = 0  # a cancel's price is not read
            with pytest.raises(InvalidBidError, match=rf"price\[{n - 1}\] = NaN"):
                self.ring.append_many(b)
            return
        k = self.ring.append_many(b)
        assert k == min(n, self.cap - len(self.model))
        self.model.extend(range(self.next, self.next + k))
        self.next += k

    @rule(n=st.integers(0, 20))
    def read(self, n: int) -> None:
        for _ in range(self.held):
            self.model.popleft()
        got = self.r.read(n)["auction_id"].tolist()
        start = self.r.position - len(got)
        assert len(got) == min(n, len(self.model), self.cap - start % self.cap)
        assert got == list(self.model)[: len(got)]
        self.held = len(got)

    @rule()
    def read_one(self) -> None:
        for _ in range(self.held):
            self.model.popleft()
        rec = self.r.read_one()
        if self.model:
            assert rec is not None and rec[0] == self.model[0]
            assert rec == tuple(bids(rec[0], rec[0] + 1).item())
        else:
            assert rec is None
        self.held = 1 if rec is not None else 0

    @precondition(lambda self: self.held > 0)
    @rule()
    def commit(self) -> None:
        self.r.commit()
        for _ in range(self.held):
            self.model.popleft()
        self.held = 0

    @invariant()
    def counts(self) -> None:
        if hasattr(self, "ring"):
            assert self.ring.tail == self.next
            assert self.ring.readers()["r"] == self.next - len(self.model)


TestRingMachine = RingMachine.TestCase
TestRingMachine.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
