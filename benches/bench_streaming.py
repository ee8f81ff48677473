"""BidQueue and BidRing benches, each beside its baselines in the same run.

Queue (one process):
- ``queue push (per call)``: ``BidQueue.push`` from a Python loop, against ``SimpleQueue.put``
  of the same 4 values as a tuple and against an empty Python method call with 4 arguments (the
  call floor). Target: push >= 50% of the floor's rate. items = calls.
- ``queue block push_many+pop_many``: 100 blocks of 10k BID_DTYPE records through the queue
  (``push_many`` then ``pop_many`` each), against two ``np.copy`` of each block (the memcpy
  floor of moving a block in and out). Target: >= 100M records/s. items = records. (A 10k block
  is 480 KB and stays in cache, like a batch in flight; a single 48 MB block measures the
  machine's memory bandwidth instead.)

Ring (two processes: this one writes, a forked child reads and counts):
- ``ring 2-proc single``: the writer appends one record per ``append`` call; the reader either
  drains what is there (``read(65536)``, what a consumer does), or takes one record per call:
  ``read(1)`` (a numpy view per record) or ``read_one()`` (a plain tuple, one native call).
  Against ``multiprocessing.Queue`` put/get of one tuple per call on both sides. Target: >= 20x.
  items = records.
- ``ring 2-proc blocks``: ``append_many`` of 10k-record blocks, ``read(65536)`` zero-copy views,
  against ``multiprocessing.Queue`` of lists of 1000 tuples and ``faster_fifo.Queue``
  ``put_many``/``get_many`` of 1000 tuples. Target: >= 50M records/s and >= 10x the best peer.
- ``ring hand-off latency``: paced single records (one every 50 us); the reader measures
  ``monotonic_ns`` at receipt minus the timestamp in the record into an HDR histogram; p50 / p99
  are put in ``extra_info`` and printed, beside the same for ``multiprocessing.Queue``.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import queue
import time

import numpy as np
import pytest

from rtbcore import BID_DTYPE, BidQueue, BidRing, make_bids

CALLS = 200_000
BLOCK = 10_000
BLOCK_REPS = 100
RING_SINGLE = 200_000
MPQ_SINGLE = 20_000
RING_BLOCKS = 10_000_000
RING_BLOCK = 10_000
PEER_BLOCKS = 1_000_000
FF_BLOCKS = 200_000
PEER_LIST = 1000
LAT_N = 5_000
LAT_GAP_NS = 50_000

# fork: the child runs these module-level functions without re-importing this file
CTX = mp.get_context("fork")


class Floor:
    def push(self, a, b, c, d):  # noqa: ARG002 - the empty method call is the point
        pass


def _calls(fn, n: int) -> None:
    for i in range(n):
        fn(i, 7, 1.5, 1.0)


@pytest.mark.benchmark(group="queue push (per call)")
def test_queue_push(benchmark):
    benchmark.extra_info["items"] = CALLS

    def setup():
        return (BidQueue(CALLS).push, CALLS), {}

    benchmark.pedantic(_calls, setup=setup, rounds=15, iterations=1)


@pytest.mark.benchmark(group="queue push (per call)")
def test_queue_push_simplequeue_put(benchmark):
    benchmark.extra_info["items"] = CALLS
    benchmark.extra_info["baseline"] = True

    def put_loop(put, n):
        for i in range(n):
            put((i, 7, 1.5, 1.0))

    benchmark.pedantic(put_loop, setup=lambda: ((queue.SimpleQueue().put, CALLS), {}), rounds=15)


@pytest.mark.benchmark(group="queue push (per call)")
def test_queue_push_empty_method_call_floor(benchmark):
    benchmark.extra_info["items"] = CALLS
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(_calls, setup=lambda: ((Floor().push, CALLS), {}), rounds=15)


def _block(n: int) -> np.ndarray:
    ids = np.arange(n, dtype=np.uint64)
    return make_bids(ids, ids % 100, (ids % 1000) * 0.01, 1.0)


@pytest.mark.benchmark(group="queue block push_many+pop_many")
def test_queue_block_push_pop(benchmark):
    block = _block(BLOCK)
    q = BidQueue(BLOCK)
    benchmark.extra_info["items"] = BLOCK * BLOCK_REPS

    def run():
        for _ in range(BLOCK_REPS):
            assert q.push_many(block) == BLOCK
            out = q.pop_many(BLOCK)
        return out

    out = benchmark.pedantic(run, rounds=10, warmup_rounds=1)
    assert out.tobytes() == block.tobytes()


@pytest.mark.benchmark(group="queue block push_many+pop_many")
def test_queue_block_numpy_copy_floor(benchmark):
    block = _block(BLOCK)
    benchmark.extra_info["items"] = BLOCK * BLOCK_REPS
    benchmark.extra_info["baseline"] = True

    def run():
        for _ in range(BLOCK_REPS):
            out = block.copy().copy()
        return out

    benchmark.pedantic(run, rounds=10, warmup_rounds=1)


# --- ring across two processes ---------------------------------------------------------------


def _ring_reader(path: str, n: int, max_n: int, conn) -> None:
    r = BidRing.open(path).reader("bench")
    conn.send("ready")
    got, last = 0, -1
    while got < n:
        b = r.read(max_n, timeout=1.0)
        if len(b):
            got += len(b)
            last = int(b["auction_id"][-1])
    r.commit()
    conn.send((got, last))


def _ring_reader_one(path: str, n: int, _max_n: int, conn) -> None:
    r = BidRing.open(path).reader("bench")
    conn.send("ready")
    read_one = r.read_one
    got, last = 0, -1
    while got < n:
        rec = read_one(1.0)
        if rec is not None:
            got += 1
            last = rec[0]
    r.commit()
    conn.send((got, last))


def _ring_round(n: int, max_n: int):
    path = f"/dev/shm/rtbcore-bench-{os.getpid()}-{time.monotonic_ns()}.ring"
    if not os.path.isdir("/dev/shm"):
        path = f"/tmp/{os.path.basename(path)}"
    ring = BidRing.create(path, capacity=1 << 20)
    ring.reader("bench")
    parent, child = CTX.Pipe()
    # max_n 0: the reader takes one record per read_one call
    target = _ring_reader if max_n else _ring_reader_one
    proc = CTX.Process(target=target, args=(path, n, max_n, child))
    proc.start()
    assert parent.recv() == "ready"
    return ring, proc, parent


def _finish(ring: BidRing | None, proc, conn):
    result = conn.recv()
    proc.join(30)
    conn.close()
    if ring is not None:
        os.remove(ring.path)
        ring.close()
    return result


def _two_process_rounds(benchmark, start, send):
    """Times ``send(writer)`` plus the reader's report in 5 rounds, each against a fresh reader
    process: ``start()`` (not timed) returns ``(writer, process, pipe)``, the writer a
    :class:`BidRing` or a queue. Returns the last report, ``(got, last)``."""
    state = {}

    def setup():
        state["r"] = start()
        return (), {}

    def run():
        writer, proc, conn = state["r"]
        send(writer)
        return _finish(writer if isinstance(writer, BidRing) else None, proc, conn)

    return benchmark.pedantic(run, setup=setup, rounds=5)


@pytest.mark.benchmark(group="ring 2-proc single")
@pytest.mark.parametrize(
    "reader_block",
    [65536, 1, 0],
    ids=["reader_drains", "reader_one_by_one_read1", "reader_one_by_one_read_one"],
)
def test_ring_single(benchmark, reader_block):
    benchmark.extra_info["items"] = RING_SINGLE

    def send(ring):
        append = ring.append
        for i in range(RING_SINGLE):
            while not append(i, 7, 1.5):
                ring.wait_for_space(1, 1.0)

    start = functools.partial(_ring_round, RING_SINGLE, reader_block)
    got, last = _two_process_rounds(benchmark, start, send)
    assert (got, last) == (RING_SINGLE, RING_SINGLE - 1)


def _mpq_reader(q, n: int, conn) -> None:
    conn.send("ready")
    got = last = 0
    while got < n:
        item = q.get()
        if isinstance(item, list):
            got += len(item)
            last = item[-1][0]
        else:
            got += 1
            last = item[0]
    conn.send((got, last))


def _mpq_round(n: int):
    q = CTX.Queue()
    parent, child = CTX.Pipe()
    proc = CTX.Process(target=_mpq_reader, args=(q, n, child))
    proc.start()
    assert parent.recv() == "ready"
    return q, proc, parent


@pytest.mark.benchmark(group="ring 2-proc single")
def test_ring_single_multiprocessing_queue(benchmark):
    benchmark.extra_info["items"] = MPQ_SINGLE
    benchmark.extra_info["baseline"] = True

    def send(q):
        for i in range(MPQ_SINGLE):
            q.put((i, 7, 1.5, 1.0, 0, 0))

    got, last = _two_process_rounds(benchmark, lambda: _mpq_round(MPQ_SINGLE), send)
    assert (got, last) == (MPQ_SINGLE, MPQ_SINGLE - 1)


@pytest.mark.benchmark(group="ring 2-proc blocks")
def test_ring_blocks(benchmark):
    benchmark.extra_info["items"] = RING_BLOCKS
    block = _block(RING_BLOCK)

    def send(ring):
        for _ in range(RING_BLOCKS // RING_BLOCK):
            pos = 0
            while pos < RING_BLOCK:
                k = ring.append_many(block[pos:])
                pos += k
                if k == 0:
                    ring.wait_for_space(1, 1.0)

    got, last = _two_process_rounds(benchmark, lambda: _ring_round(RING_BLOCKS, 65536), send)
    assert (got, last) == (RING_BLOCKS, RING_BLOCK - 1)


@pytest.mark.benchmark(group="ring 2-proc blocks")
def test_ring_blocks_multiprocessing_queue_lists(benchmark):
    benchmark.extra_info["items"] = PEER_BLOCKS
    benchmark.extra_info["baseline"] = True
    chunk = [(i, 7, 1.5, 1.0, 0, 0) for i in range(PEER_LIST)]

    def send(q):
        for _ in range(PEER_BLOCKS // PEER_LIST):
            q.put(chunk)

    got, last = _two_process_rounds(benchmark, lambda: _mpq_round(PEER_BLOCKS), send)
    assert (got, last) == (PEER_BLOCKS, PEER_LIST - 1)


def _ff_reader(q, n: int, conn) -> None:
    conn.send("ready")
    got = last = 0
    while got < n:
        items = q.get_many(max_messages_to_get=PEER_LIST)
        got += len(items)
        last = items[-1][0]
    conn.send((got, last))


@pytest.mark.benchmark(group="ring 2-proc blocks")
def test_ring_blocks_faster_fifo(benchmark):
    faster_fifo = pytest.importorskip("faster_fifo")
    benchmark.extra_info["items"] = FF_BLOCKS
    benchmark.extra_info["baseline"] = True
    chunk = [(i, 7, 1.5, 1.0, 0, 0) for i in range(PEER_LIST)]

    def start():
        q = faster_fifo.Queue(max_size_bytes=64 * 1024 * 1024)
        parent, child = CTX.Pipe()
        proc = CTX.Process(target=_ff_reader, args=(q, FF_BLOCKS, child))
        proc.start()
        assert parent.recv() == "ready"
        return q, proc, parent

    def send(q):
        for _ in range(FF_BLOCKS // PEER_LIST):
            q.put_many(chunk, timeout=10)

    got, last = _two_process_rounds(benchmark, start, send)
    assert (got, last) == (FF_BLOCKS, PEER_LIST - 1)


# --- hand-off latency ------------------------------------------------------------------------


def _hist_summary(lat_ns: list[int]) -> tuple[float, float]:
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, 10_000_000_000, 3)
    for v in lat_ns:
        h.record_value(max(1, v))
    return h.get_value_at_percentile(50) / 1e3, h.get_value_at_percentile(99) / 1e3


def _lat_ring_reader(path: str, n: int, conn) -> None:
    r = BidRing.open(path).reader("bench")
    conn.send("ready")
    lat = []
    while len(lat) < n:
        b = r.read(1, timeout=1.0)
        if len(b):
            lat.append(time.monotonic_ns() - int(b["timestamp_ns"][0]))
    conn.send(_hist_summary(lat))


def _lat_mpq_reader(q, n: int, conn) -> None:
    conn.send("ready")
    lat = []
    for _ in range(n):
        item = q.get()
        lat.append(time.monotonic_ns() - item[5])
    conn.send(_hist_summary(lat))


def _paced(send, n: int) -> None:
    nxt = time.monotonic_ns()
    for i in range(n):
        while time.monotonic_ns() < nxt:
            pass
        send(i, time.monotonic_ns())
        nxt += LAT_GAP_NS


def _report(benchmark, what: str, p50: float, p99: float) -> None:
    benchmark.extra_info["p50_us"] = round(p50, 1)
    benchmark.extra_info["p99_us"] = round(p99, 1)
    print(f"\n{what} hand-off latency: p50 {p50:.1f} us, p99 {p99:.1f} us")


@pytest.mark.benchmark(group="ring hand-off latency")
def test_ring_latency(benchmark):
    benchmark.extra_info["items"] = LAT_N

    def run():
        path = f"/dev/shm/rtbcore-lat-{os.getpid()}-{time.monotonic_ns()}.ring"
        ring = BidRing.create(path, capacity=1 << 16)
        ring.reader("bench")
        parent, child = CTX.Pipe()
        proc = CTX.Process(target=_lat_ring_reader, args=(path, LAT_N, child))
        proc.start()
        assert parent.recv() == "ready"
        _paced(lambda i, ts: ring.append(i, 7, 1.5, 1.0, 0, ts), LAT_N)
        return _finish(ring, proc, parent)

    p50, p99 = benchmark.pedantic(run, rounds=1)
    _report(benchmark, "BidRing", p50, p99)


@pytest.mark.benchmark(group="ring hand-off latency")
def test_ring_latency_multiprocessing_queue(benchmark):
    benchmark.extra_info["items"] = LAT_N
    benchmark.extra_info["baseline"] = True

    def run():
        q = CTX.Queue()
        parent, child = CTX.Pipe()
        proc = CTX.Process(target=_lat_mpq_reader, args=(q, LAT_N, child))
        proc.start()
        assert parent.recv() == "ready"
        _paced(lambda i, ts: q.put((i, 7, 1.5, 1.0, 0, ts)), LAT_N)
        return _finish(None, proc, parent)

    p50, p99 = benchmark.pedantic(run, rounds=1)
    _report(benchmark, "multiprocessing.Queue", p50, p99)


def test_bid_dtype_matches_block_helper() -> None:
    assert _block(3).dtype == BID_DTYPE
