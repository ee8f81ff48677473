"""Chaos: real SIGINT / SIGTERM storms during every blocking or row-taking engine call (poll,
poll_rejected, submit waiting for room, EventLog.read), and close from another thread while a
poll waits forever. Each run asserts that nothing was lost and nothing was duplicated.

Each scenario runs in a fresh interpreter (bounded in time) while this process sends it the
signal every 0-1 ms, from outside, so a signal can land at any instruction (a thread of the
child would send them only where its main thread lets go of the GIL). The child's SIGINT /
SIGTERM handler raises only while the call under test is running (``ARMED``), so a signal
landing in the harness's own bookkeeping cannot lose rows the library already returned; every
signal landing anywhere inside the call, including right after the native part took its rows,
raises."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zlib

import pytest

HARNESS = textwrap.dedent("""
    import json, os, random, signal, sys, threading, time
    import numpy as np
    from rtbcore import AuctionEngine, EventLog

    SIG = getattr(signal, sys.argv[1])
    ARMED = [False]
    RAISED = [0]

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        if ARMED[0]:
            RAISED[0] += 1
            raise KeyboardInterrupt if signum == signal.SIGINT else Interrupted

    signal.signal(SIG, handler)

    STOP = (KeyboardInterrupt, Interrupted)

    def start_storm():
        print("storm", flush=True)   # the parent starts signalling

    def open_and_close(eng, n, step, bidders, pause):
        # auctions 0..n-1 in bursts of `step`, each closed by its one bid (bidder id % bidders)
        for s in range(0, n, step):
            ids = np.arange(s, s + step)
            eng.open(ids, expected_bids=1)
            eng.submit(ids, ids % bidders, np.ones(step))
            time.sleep(pause)

    def stop_storm(_):
        print("calm", flush=True)    # the parent stops and acknowledges on stdin
        sys.stdin.readline()
        ARMED[0] = False
""")


def _take_under_storm(call: str, part: str, done: str) -> str:
    """Scenario code: starts ``feeder`` and the storm, then takes rows with ``call`` into
    ``parts`` (``part`` of each) until a take returns none and ``done`` holds, or 20 s pass.
    ``call`` is written into the loop so that it is called directly, as a caller would."""
    return f"""
        th = start_storm()
        feeder.start()
        parts = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            try:  # called directly, as a caller would: `rows = eng.poll(...)`
                ARMED[0] = True
                r = {call}
                ARMED[0] = False
            except STOP:
                ARMED[0] = False
                r = None
            if r is not None:
                parts.append({part})
                if r.shape[0] == 0 and ({done}):
                    break
        stop_storm(th)
        feeder.join()
"""


SCENARIOS = {
    # a feeder closes N auctions in bursts while the main thread polls (7, 5): most polls find
    # rows ready, some wait
    "poll": """
        N = 20000
        eng = AuctionEngine(workers=2, pin=False, tmax_ms=600_000)
        feeder = threading.Thread(target=open_and_close, args=(eng, N, 400, 7, 0.002))
    """
    + _take_under_storm(
        "eng.poll(7, 5)",
        'r["auction_id"]',
        'not feeder.is_alive() and eng.stats()["results"] == N',
    )
    + """
        while (x := eng.poll(N)).shape[0]:   # held rows first, then the rest
            parts.append(x["auction_id"])
        got = np.concatenate(parts).tolist()
        out = {"got": len(got), "unique": len(set(got)), "want": N,
               "exact": sorted(got) == list(range(N))}
    """,
    # rejections of bids for unknown auctions, polled 7 at a time
    "poll_rejected": """
        N = 3000
        eng = AuctionEngine(workers=2, pin=False, rejected_capacity=N)
        def feed():
            for s in range(0, N, 30):
                b = np.arange(s, s + 30)
                eng.submit(np.full(30, 10**9), b, np.ones(30))
                time.sleep(0.0005)
        feeder = threading.Thread(target=feed)
    """
    + _take_under_storm(
        "eng.poll_rejected(7)",
        'r["bidder_id"]',
        'not feeder.is_alive() and eng.stats()["rejected_unknown"] == N',
    )
    + """
        while (x := eng.poll_rejected(N)).shape[0]:
            parts.append(x["bidder_id"])
        got = np.concatenate(parts).tolist()
        out = {"got": len(got), "unique": len(set(got)), "want": N,
               "exact": sorted(got) == list(range(N)),
               "dropped": eng.stats()["rejected_unreported"]}
    """,
    # blocks of 5 auctions x 400 bids against a capacity of 500: each submit waits for room
    "submit": """
        PER, AUCTIONS, BLOCKS = 400, 5, 150
        eng = AuctionEngine(workers=2, pin=False, tmax_ms=600_000, capacity=500)
        eng.open(np.arange(AUCTIONS * BLOCKS), expected_bids=PER)
        th = start_storm()
        returned, interrupted = [], []
        for k in range(BLOCKS):
            ids = np.repeat(np.arange(k * AUCTIONS, (k + 1) * AUCTIONS), PER)
            bidders = np.tile(np.arange(PER), AUCTIONS)
            try:  # called directly, as a caller would: `rows = eng.poll(...)`
                ARMED[0] = True
                got = eng.submit(ids, bidders, np.ones(ids.size))
                ARMED[0] = False
            except STOP:
                ARMED[0] = False
                got = None
            (returned if got is not None else interrupted).append(k)
        stop_storm(th)
        eng.close()
        rows = []
        while (r := eng.poll(10**6, 0)).shape[0]:
            rows.append(r)
        r = np.concatenate(rows)
        n_bids = dict(zip(r["auction_id"].tolist(), r["n_bids"].tolist()))
        whole = all(n_bids[a] == PER for k in returned
                    for a in range(k * AUCTIONS, (k + 1) * AUCTIONS))
        # an interrupted submit queued its block whole or not at all
        all_or_nothing = all(len({n_bids[a] for a in range(k * AUCTIONS, (k + 1) * AUCTIONS)}
                                 ) == 1 and n_bids[k * AUCTIONS] in (0, PER)
                             for k in interrupted)
        s = eng.stats()
        applied = sum(n_bids.values())
        out = {"exact": r.shape[0] == AUCTIONS * BLOCKS and whole and all_or_nothing
                        and applied == s["submitted"] == s["bids_placed"]
                        and s["rejected_late"] + s["rejected_unknown"] == 0,
               "returned": len(returned), "interrupted": len(interrupted),
               "applied": applied, "submitted": s["submitted"]}
    """,
    # a follower reads the event log 5 at a time while the engine writes it
    "event_log": """
        N = 1500
        path = os.path.join(sys.argv[4], "events.ring")
        eng = AuctionEngine(workers=2, pin=False, tmax_ms=600_000, event_log=path)
        log = EventLog(path)
        feeder = threading.Thread(target=open_and_close, args=(eng, N, 30, 5, 0.0005))
    """
    + _take_under_storm(
        "log.read(5, 5)",
        "r",
        'not feeder.is_alive() and eng.stats()["events_logged"] == 3 * N',
    )
    + """
        eng.close()
        while (x := log.read(10 * N)).shape[0]:
            parts.append(x)
        got = np.concatenate(parts)
        log.replay(0)
        every = log.read(10 * N)
        key = lambda e: sorted(map(repr, e[["auction_id", "kind", "bidder_id"]].tolist()))
        out = {"got": int(got.shape[0]), "want": 3 * N, "logged": int(every.shape[0]),
               "exact": got.shape[0] == every.shape[0] == 3 * N and key(got) == key(every)}
    """,
    # results arrive while the main thread waits in poll(7, inf); another thread closes the
    # engine with auctions still open; the loop must end (the poll returns empty once drained)
    "close_during_poll": """
        N = 4000
        eng = AuctionEngine(workers=2, pin=False, tmax_ms=600_000)
        eng.open(np.arange(N), expected_bids=1)
        def feed_then_close():
            for s in range(0, N // 2, 40):   # half close by their bid, half at shutdown
                ids = np.arange(s, s + 40)
                eng.submit(ids, ids % 7, np.ones(40))
                time.sleep(0.0005)
            eng.close()
        feeder = threading.Thread(target=feed_then_close)
    """
    + _take_under_storm(
        'eng.poll(7, float("inf"))',
        'r["auction_id"]',
        "True",
    )
    + """
        ended = bool(parts) and parts[-1].shape[0] == 0
        late = eng.poll(N)["auction_id"]   # must be empty: the loop ended only once drained
        got = np.concatenate(parts).tolist()
        out = {"got": len(got), "unique": len(set(got)), "want": N, "ended": ended,
               "late": int(late.shape[0]),
               "exact": ended and late.shape[0] == 0 and sorted(got) == list(range(N))}
    """,
}


def _storm(p: subprocess.Popen, sig: int, seed: int, calm: threading.Event) -> None:
    rng = random.Random(seed)
    while not calm.is_set() and p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(rng.uniform(0, 0.001))


def _run(scenario: str, sig: str, seed: int, timeout: float = 60) -> dict:
    code = HARNESS + textwrap.dedent(SCENARIOS[scenario]) + (
        "\nout['signals'] = RAISED[0]\nprint(json.dumps(out), flush=True)\n"
    )
    calm = threading.Event()
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, subprocess.Popen(
        [sys.executable, "-c", code, sig, scenario, str(seed), tmp], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp,
    ) as p:
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        storm = threading.Thread(target=_storm, args=(p, getattr(signal, sig), seed, calm))
        try:
            for line in p.stdout:
                lines.append(line)
                if line.strip() == "storm":
                    storm.start()
                elif line.strip() == "calm":
                    calm.set()
                    storm.join()
                    p.stdin.write("\n")
                    p.stdin.flush()
            err = p.stderr.read()
            p.wait()
        finally:
            calm.set()
            killer.cancel()
            if storm.is_alive():
                storm.join()
    if p.returncode == -signal.SIGKILL:
        pytest.fail(f"{scenario} under {sig}: killed after {timeout} s (a call hung)")
    assert p.returncode == 0, err[-3000:]
    return json.loads(lines[-1])


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_signal_storm_loses_and_duplicates_nothing(scenario, sig):
    out = _run(scenario, sig, seed=zlib.crc32(f"{scenario} {sig}".encode()))
    assert out["exact"], out
    assert out["signals"] > 0, f"no signal landed inside the calls: {out}"


def test_numpy_api_is_bound_at_import_so_no_python_runs_inside_a_row_taking_call():
    """The native module binds NumPy's C API when it is imported. Bound lazily, the first
    array a call returns would run Python code (NumPy's version check) inside that call, where
    a pending KeyboardInterrupt fails the binding and panics. Here the version check raises
    after import, as a signal landing there would."""
    script = textwrap.dedent("""
        import numpy as np, numpy.lib
        from rtbcore import AuctionEngine

        def interrupted(*a, **k):
            raise KeyboardInterrupt
        numpy.lib.NumpyVersion = interrupted
        eng = AuctionEngine(workers=1, pin=False, rejected_capacity=8)
        eng.submit(np.full(3, 10**9), np.arange(3), np.ones(3))
        for _ in range(500):
            if eng.stats()["rejected_unknown"] == 3:
                break
            eng.poll(1, 0.01)
        print(sorted(eng.poll_rejected(8)["bidder_id"].tolist()))
        eng.close()
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=tempfile.gettempdir(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[0, 1, 2]"
