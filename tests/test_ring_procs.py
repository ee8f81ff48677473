"""BidRing across processes: exactly-once with several producer and reader processes, and
kill -9 of writers and readers at random moments followed by a reopen that finds every
committed record intact and no torn one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rtbcore import BidRing, RingReader
from rtbcore.errors import RingOverrun

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="futex and /dev/shm: Linux")

# Each record carries its own checksum: every field is a function of (producer, i), so a torn
# record (half of one write, half of another) cannot pass check().
PRELUDE = textwrap.dedent(
    """
    import sys, numpy as np
    from rtbcore import BidRing, make_bids
    def block(p, lo, hi):
        i = np.arange(lo, hi, dtype=np.uint64)
        return make_bids(i, p, (i % 1000) * 0.25 + p, 1.0 + (i % 5), i % 3, i * 7919 + p)
    """
)


def check(recs: np.ndarray) -> None:
    i, p = recs["auction_id"], recs["bidder_id"]
    np.testing.assert_array_equal(recs["price"], (i % 1000) * 0.25 + p)
    np.testing.assert_array_equal(recs["quality"], 1.0 + (i % 5))
    np.testing.assert_array_equal(recs["kind"], i % 3)
    np.testing.assert_array_equal(recs["timestamp_ns"], i * 7919 + p)


def read_all(r: RingReader, dtype: np.dtype, batch: int) -> np.ndarray:
    """Copies of every record ``r`` still returns, read ``batch`` at a time; checked."""
    got = []
    while True:
        b = r.read(batch)
        if not len(b):
            break
        got.append(b.copy())
    recs = np.concatenate(got) if got else np.zeros(0, dtype)
    check(recs)
    return recs


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-P", "-c", PRELUDE + textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


PRODUCER = """
    ring = BidRing.open(sys.argv[1])
    p, n = int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(p)
    i = 0
    while i < n:
        k = ring.append_many(block(p, i, min(n, i + int(rng.integers(1, 300)))))
        i += k
        if k == 0:
            ring.wait_for_space(1, timeout=0.05)
"""

READER = """
    ring = BidRing.open(sys.argv[1])
    r = ring.reader(sys.argv[2])
    want, got, seqs = int(sys.argv[3]), [], []
    while sum(map(len, got)) < want:
        b = r.read(1000, timeout=0.05)
        if len(b):
            seqs.append((r.position - len(b), len(b)))
            got.append(b.copy())
    r.commit()
    np.save(sys.argv[4], np.concatenate(got))
    np.save(sys.argv[4] + ".seqs.npy", np.array(seqs))
"""


def test_exactly_once_3_producer_and_2_reader_processes(tmp_path: Path) -> None:
    n, producers = 30_000, 3
    path = str(tmp_path / "mp.ring")
    ring = BidRing.create(path, capacity=4096)
    for name in ("r0", "r1"):
        ring.reader(name)  # registered before anyone writes: nothing can be missed
    outs = [str(tmp_path / f"r{c}.npy") for c in range(2)]
    readers = [spawn(READER, path, f"r{c}", str(n * producers), outs[c]) for c in range(2)]
    writers = [spawn(PRODUCER, path, str(p), str(n)) for p in range(producers)]
    for proc in writers + readers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for out in outs:
        recs = np.load(out)
        assert len(recs) == n * producers
        check(recs)
        for p in range(producers):
            mine = recs["auction_id"][recs["bidder_id"] == p].astype(np.int64)
            # every record of every producer exactly once, in the producer's order
            np.testing.assert_array_equal(mine, np.arange(n))
        seqs = np.load(out + ".seqs.npy")
        np.testing.assert_array_equal(seqs[1:, 0], np.cumsum(seqs[:, 1])[:-1])
    assert ring.tail == n * producers and ring.lost_writes == 0 and ring.abandoned == 0
    assert ring.readers() == {"r0": n * producers, "r1": n * producers}


ENDLESS_WRITER = """
    ring = BidRing.open(sys.argv[1])
    rng = np.random.default_rng(int(sys.argv[2]))
    print("ready", flush=True)
    i = 0
    while True:
        i += ring.append_many(block(0, i, i + int(rng.integers(1, 4000))))
"""


def test_kill_9_writer_at_random_moments_keeps_every_committed_record(tmp_path: Path) -> None:
    rng = random.Random(1234)
    trials = 30
    for t in range(trials):
        path = str(tmp_path / f"k{t}.ring")
        BidRing.create(path, capacity=1 << 15).close()
        w = spawn(ENDLESS_WRITER, path, str(t))
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(w.pid, signal.SIGKILL)
        w.communicate(timeout=30)
        ring = BidRing.open(path)
        tail, oldest = ring.tail, ring.oldest
        dead = ring.abandon_incomplete()  # no writer is alive now
        assert dead < 4000  # at most the one block being written when the kill landed
        r = ring.reader("check")
        recs = read_all(r, ring.dtype, 1 << 16)
        ids = recs["auction_id"].astype(np.int64)
        # One writer: record i sits at sequence number i. Everything committed is there, in
        # order; only the dead writer's last reservation may be missing, at the very end.
        np.testing.assert_array_equal(ids, np.arange(oldest, oldest + len(ids)))
        assert len(ids) + dead == tail - oldest
        assert ring.abandoned == dead


KILLABLE_READER = """
    ring = BidRing.open(sys.argv[1])
    r = ring.reader("victim")
    print("ready", flush=True)
    while True:
        b = r.read(int(np.random.default_rng().integers(1, 500)), timeout=0.01)
        print(r.position - len(b), len(b), flush=True)
"""


def test_kill_9_reader_redelivers_what_it_had_not_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(99)
    path = str(tmp_path / "reader.ring")
    ring = BidRing.create(path, capacity=1 << 12)
    ring.reader("victim")
    written = prev_ack = 0
    for _ in range(6):
        proc = spawn(KILLABLE_READER, path)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + rng.uniform(0.01, 0.05)
        while time.monotonic() < deadline:
            for _ in range(500):
                if ring.append(written, 0, (written % 1000) * 0.25, 1.0 + written % 5,
                               written % 3, written * 7919):
                    written += 1
                else:
                    break
        os.kill(proc.pid, signal.SIGKILL)
        # read() through the text wrapper, not communicate(): readline() may have buffered
        # the first batches' lines along with "ready", and communicate() would skip them
        with proc:
            out = proc.stdout.read()
        # only whole lines: the kill may land mid-print
        batches = [tuple(map(int, line.split())) for line in out.split("\n")[:-1]]
        ack = ring.readers()["victim"]
        if batches:
            # The ack is the start of the batch the reader held when it died, or (killed
            # between a read's acknowledgement and its print) the end of the last one printed.
            last_start, last_n = batches[-1]
            assert last_start <= ack <= last_start + last_n
            assert batches[0][0] == prev_ack  # a reattached reader resumes at its ack
        else:
            assert ack == prev_ack
        prev_ack = ack
    r = ring.reader("victim")
    recs = read_all(r, ring.dtype, 1 << 12)
    # Redelivery starts exactly at the ack and runs, with no gap, to the last record written.
    np.testing.assert_array_equal(recs["auction_id"], np.arange(prev_ack, written))


BROADCAST_WRITER = """
    ring = BidRing.open(sys.argv[1])
    n = int(sys.argv[2])
    i = 0
    while i < n:
        i += ring.append_many(block(1, i, min(n, i + 97)))
"""


def test_broadcast_reader_lapped_by_another_process_sees_overruns_never_garbage(
    tmp_path: Path,
) -> None:
    n = 300_000
    path = str(tmp_path / "bc.ring")
    ring = BidRing.create(path, capacity=256, mode="broadcast")
    r = ring.reader("slow")
    w = spawn(BROADCAST_WRITER, path, str(n))
    while ring.tail < 4 * ring.capacity and w.poll() is None:
        time.sleep(0.001)  # let the writer lap us once for certain
    got, lost, expect = 0, 0, 0
    while expect < n:
        try:
            b = r.read(64, timeout=0.05)
        except RingOverrun as e:
            assert e.next_seq == expect + e.lost  # the loss is exactly the gap skipped
            lost += e.lost
            expect = e.next_seq
            continue
        if len(b):
            check(b)  # a lapped slot is reported, never returned torn
            np.testing.assert_array_equal(b["auction_id"], np.arange(expect, expect + len(b)))
            expect += len(b)
            got += len(b)
        elif w.poll() is not None and r.position >= ring.tail:
            break
    _, err = w.communicate(timeout=60)
    assert w.returncode == 0, err
    assert got + lost == n and lost > 0 and got > 0
