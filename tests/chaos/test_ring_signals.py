"""SIGINT and SIGTERM during every blocking ring call: the call ends promptly with the
signal's exception, and a record it had taken is handed back, so that a reader that goes on
reading gets every record exactly once.

SIGTERM is tested with a handler that raises (its default action ends the process; that case
is kill-like and covered by test_ring_kill.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from chaos.ring_children import spawn

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="futex waits: Linux")

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}

HANDLERS = """
    class Term(Exception):
        pass
    armed = [True]
    def on_signal(signum, frame):
        # Raise only while the call under test runs, so that the test's own bookkeeping is
        # never cut short: what is measured is what the ring does with an interrupted call.
        if armed[0]:
            raise KeyboardInterrupt if signum == signal.SIGINT else Term()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
"""

BLOCKING = {
    "read": ("backpressure", "rd.read(10, timeout=30.0)"),
    "read_broadcast": ("broadcast", "rd.read(10, timeout=30.0)"),
    "read_one": ("backpressure", "rd.read_one(timeout=30.0)"),
    "wait": ("backpressure", "rd.wait(30.0)"),
    "wait_for_space": ("backpressure", "ring.wait_for_space(1, 30.0)"),
}


@pytest.mark.parametrize("signame", SIGNALS)
@pytest.mark.parametrize("call", BLOCKING)
def test_a_blocking_call_ends_promptly_on_a_signal(tmp_path, call: str, signame: str) -> None:
    mode, expr = BLOCKING[call]
    child = spawn(
        HANDLERS
        + f"""
    ring = BidRing.create(sys.argv[1], capacity=8, mode={mode!r})
    rd = ring.reader("a")
    if {call!r} == "wait_for_space":
        ring.append_many(bids(0, 8))  # full: the reader holds every slot
    print("ready", flush=True)
    t0 = time.monotonic()
    try:
        {expr}
        print("returned", flush=True)
    except (KeyboardInterrupt, Term) as e:
        print(type(e).__name__, round(time.monotonic() - t0, 3), flush=True)
    """,
        str(tmp_path / "x.ring"),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        child.send_signal(SIGNALS[signame])
        out, err = child.communicate(timeout=15)
    finally:
        child.kill()
    want = "KeyboardInterrupt" if signame == "SIGINT" else "Term"
    assert out.startswith(want), f"{out}\n{err}"
    assert float(out.split()[1]) < 1.5, f"the call ended {out.split()[1]} s after the signal"


def _report_under_storm(child: subprocess.Popen[str], signum: int) -> Any:
    """Signals ``child`` every 2 ms from its "ready" until it exits; returns the JSON report
    on its last line."""
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        while child.poll() is None:
            child.send_signal(signum)
            time.sleep(0.002)
        out, err = child.communicate(timeout=15)
    finally:
        child.kill()
    assert child.returncode == 0, f"{out}\n{err}"
    return json.loads(out.strip().splitlines()[-1])


STORM_READER = """
    armed[0] = False
    path, how, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mode = "broadcast" if how == "read_broadcast" else "backpressure"
    ring = BidRing.create(path, capacity=4096 if mode == "broadcast" else 64, mode=mode)
    rd = ring.reader("a")

    def produce():
        w = BidRing.open(path)
        i = 0
        while i < n:
            k = w.append_many(bids(i, min(n, i + 7)))
            i += k
            time.sleep(0.0005)  # paced, so that the reader is often blocked in its wait
            if k == 0:
                w.wait_for_space(1, 1.0)

    threading.Thread(target=produce, daemon=True).start()
    got, interrupts = [], 0
    deadline = time.monotonic() + 40
    print("ready", flush=True)
    while len(got) < n and time.monotonic() < deadline:
        armed[0] = True
        try:
            if how == "read_one":
                got.append(rd.read_one(timeout=1.0))
            else:
                got.extend(rd.read(5, timeout=1.0)["auction_id"])
        except (KeyboardInterrupt, Term):
            interrupts += 1
        armed[0] = False
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if how == "read_one":
        got = [r[0] for r in got if r is not None]
    got = [int(x) for x in got]
    print(json.dumps({
        "interrupts": interrupts,
        "n": len(got),
        "duplicates": len(got) - len(set(got)),
        "missing": sorted(set(range(n)) - set(got))[:10],
        "in_order": got == sorted(got),
    }), flush=True)
"""


@pytest.mark.parametrize("signame", SIGNALS)
@pytest.mark.parametrize("how", ["read", "read_one", "read_broadcast"])
def test_a_signal_storm_loses_and_duplicates_nothing(tmp_path, how: str, signame: str) -> None:
    n = 3000
    child = spawn(HANDLERS + STORM_READER, str(tmp_path / "x.ring"), how, str(n))
    r = _report_under_storm(child, SIGNALS[signame])
    assert r["interrupts"] > 10, r  # the storm did interrupt the reads
    assert (r["missing"], r["duplicates"], r["n"], r["in_order"]) == ([], 0, n, True), r


def test_a_writer_interrupted_in_wait_for_space_appends_each_record_once(tmp_path) -> None:
    n = 2000
    child = spawn(
        HANDLERS
        + """
    path, n = sys.argv[1], int(sys.argv[2])
    ring = BidRing.create(path, capacity=16)
    rd = ring.reader("a")
    got = []

    def consume():
        while len(got) < n:
            got.extend(rd.read(3, timeout=1.0)["auction_id"].tolist())
            time.sleep(0.0003)

    armed[0] = False
    t = threading.Thread(target=consume)
    t.start()
    interrupts, i = 0, 0
    print("ready", flush=True)
    while i < n:
        armed[0] = False
        if ring.append(i, 0, 1.0 + (i % 100) * 0.5):
            i += 1
            continue
        armed[0] = True
        try:
            ring.wait_for_space(1, 1.0)
        except (KeyboardInterrupt, Term):
            interrupts += 1
        # disarmed before the loop's back edge, where CPython runs pending handlers: armed
        # there, a signal would raise outside the try and end the child
        armed[0] = False
    t.join(30)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(json.dumps({"interrupts": interrupts, "got": got == list(range(n))}), flush=True)
    """,
        str(tmp_path / "x.ring"),
        str(n),
    )
    r = _report_under_storm(child, signal.SIGINT)
    assert r["got"] and r["interrupts"] > 10, r
