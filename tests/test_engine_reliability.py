"""AuctionEngine reliability: a signal never loses or duplicates a result, a rejection or an
event; close wakes every waiter and a closed, drained engine answers at once; the rejected-bid
bound is configurable and its drops are reported; bad input raises the library's classes.

The interruption tests raise ``KeyboardInterrupt`` from a profile hook at every point where
CPython would raise one for a real Ctrl-C inside the call (after each C call returns, at the
start of each Python function), so every such point is tried deterministically; the chaos group
(tests/chaos/) sends real signals at random times."""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable

import numpy as np
import pytest

from rtbcore import RESULT_DTYPE, AuctionEngine, EventLog
from rtbcore.errors import InvalidInputError, RtbcoreError

LONG = 600_000  # ms: no deadline fires during a test


def _interrupting(k: int) -> tuple[Callable[..., None], list[int]]:
    """A profile hook raising KeyboardInterrupt at the k-th checkpoint while it is installed
    (the return of a C call, or the start of a Python function, in any module: numpy's Python
    helpers that a native call runs count too), once. ``seen[0]`` counts the checkpoints
    passed."""
    seen = [0]

    def hook(frame, event, arg):
        if event not in ("c_return", "call"):
            return
        seen[0] += 1
        if seen[0] == k:
            sys.setprofile(None)
            raise KeyboardInterrupt

    return hook, seen


def _interrupt_everywhere(call: Callable[[], np.ndarray], want: int) -> np.ndarray:
    """Calls ``call`` repeatedly, interrupting the i-th call at its checkpoint 1, 2, 3, ... in
    turn, until ``want`` rows came out or a call passes fewer checkpoints than asked. Returns
    every row the calls returned."""
    got: list[np.ndarray] = []
    n = 0
    k = 1
    deadline = time.monotonic() + 60
    while n < want and time.monotonic() < deadline:
        hook, seen = _interrupting(k)
        sys.setprofile(hook)
        try:
            r = call()
        except KeyboardInterrupt:
            k += 1
            continue
        finally:
            sys.setprofile(None)
        if seen[0] < k:
            k = 1  # every checkpoint of a call was tried: start again
        got.append(r)
        n += r.shape[0]
    return np.concatenate(got) if got else np.empty(0)


def _drain(call: Callable[[], np.ndarray]) -> np.ndarray:
    """Everything ``call`` still returns (held rows come first, then the engine's)."""
    parts = [call()]
    while parts[-1].shape[0]:
        parts.append(call())
    return np.concatenate(parts)


def _wait_for_count(eng: AuctionEngine, counter: str, n: int) -> None:
    """Waits (up to 20 s) until the workers have counted ``n`` in ``stats()[counter]``."""
    t0 = time.monotonic()
    while eng.stats()[counter] < n and time.monotonic() - t0 < 20:
        time.sleep(0.001)


def _closed_auctions(eng: AuctionEngine, n: int) -> None:
    eng.open(np.arange(n), expected_bids=1)
    eng.submit(np.arange(n), np.full(n, 7), np.linspace(1, 2, n))
    _wait_for_count(eng, "closed_all_bids", n)


# ---- a signal after the native call took the rows loses nothing -----------------------------


def test_interrupted_poll_loses_and_duplicates_nothing():
    n = 120
    with AuctionEngine(workers=2, pin=False, tmax_ms=LONG) as eng:
        _closed_auctions(eng, n)
        rows = _interrupt_everywhere(lambda: eng.poll(7, 5), n)
        rest = _drain(lambda: eng.poll(1000))
    ids = np.concatenate([rows["auction_id"], rest["auction_id"]])
    assert sorted(ids.tolist()) == list(range(n))


def test_interrupted_poll_of_position_auctions_keeps_their_rows_together():
    n = 40
    with AuctionEngine(workers=2, pin=False, tmax_ms=LONG, mechanism="gsp",
                       slot_ctrs=[1.0, 0.5, 0.25]) as eng:
        _closed_auctions(eng, n)
        got = []
        # a poll interrupted with max_n = 7 leaves 6 rows held; the next asks for fewer
        for max_n in [7, 2, 5, 3, 9] * 40:
            hook, _ = _interrupting(3)
            sys.setprofile(hook)
            try:
                r = eng.poll(max_n)
            except KeyboardInterrupt:
                continue
            finally:
                sys.setprofile(None)
            assert r.shape[0] % 3 == 0 or r.shape[0] == max_n < 3
            got.append(r)
        got.append(_drain(lambda: eng.poll(1000)))
    r = np.concatenate(got)
    assert r.shape[0] == 3 * n
    assert sorted(zip(r["auction_id"].tolist(), r["slot"].tolist(), strict=True)) == [
        (a, s) for a in range(n) for s in range(3)
    ]


def test_interrupted_poll_rejected_loses_and_duplicates_nothing():
    n = 150
    with AuctionEngine(workers=2, pin=False, tmax_ms=LONG) as eng:
        eng.submit(np.arange(n) + 10_000, np.arange(n), np.ones(n))  # unknown auctions
        _wait_for_count(eng, "rejected_unknown", n)
        rows = _interrupt_everywhere(lambda: eng.poll_rejected(7), n)
        rest = _drain(lambda: eng.poll_rejected(1000))
    ids = np.concatenate([rows["bidder_id"], rest["bidder_id"]])
    assert sorted(ids.tolist()) == list(range(n))


def test_interrupted_event_log_read_loses_and_duplicates_nothing(tmp_path):
    path = tmp_path / "events.ring"
    n = 40
    with AuctionEngine(workers=2, pin=False, tmax_ms=LONG, event_log=path) as eng:
        _closed_auctions(eng, n)
    log = EventLog(path)
    ev = _interrupt_everywhere(lambda: log.read(5, 5), 3 * n)  # started, placed, won
    ev = np.concatenate([ev, _drain(lambda: log.read(1000))])
    log.replay(0)
    every = log.read(1000)
    assert every.shape[0] == ev.shape[0] == 3 * n
    assert sorted(map(repr, ev.tolist())) == sorted(map(repr, every.tolist()))


# ---- close wakes every waiter; a closed, drained engine answers at once ----------------------


def _run(code: str, timeout: float = 30) -> str:
    """Runs ``code`` in a fresh interpreter (a hang is a failure, not a stuck test run), from
    a directory without the source tree, so the installed package is imported."""
    try:
        p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                           text=True, timeout=timeout, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout} s")
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_poll_after_close_returns_at_once():
    out = _run("""
        import time
        from rtbcore import AuctionEngine
        eng = AuctionEngine(workers=2, pin=False, tmax_ms=600_000)
        eng.open([1, 2])
        eng.close()
        assert eng.poll(10, 0).shape[0] == 2       # the shutdown results
        for timeout in (float("inf"), 2000):
            t = time.monotonic()
            assert eng.poll(10, timeout).shape[0] == 0
            assert time.monotonic() - t < 0.5, (timeout, time.monotonic() - t)
        print("ok")
    """, timeout=20)
    assert out.strip() == "ok"


def test_close_from_another_thread_wakes_a_poll_waiting_forever():
    out = _run("""
        import threading, time
        from rtbcore import AuctionEngine
        eng = AuctionEngine(workers=2, pin=False, tmax_ms=600_000)
        eng.open([5])
        got = []
        def wait():
            while True:
                r = eng.poll(10, float("inf"))
                if r.shape[0] == 0:
                    break
                got.extend(r["auction_id"].tolist())
        th = threading.Thread(target=wait)
        th.start()
        time.sleep(0.2)
        t = time.monotonic()
        eng.close()
        th.join(5)
        assert not th.is_alive(), "poll(inf) still blocked after close"
        assert time.monotonic() - t < 2
        assert got == [5], got
        print("ok")
    """, timeout=20)
    assert out.strip() == "ok"


def test_submit_waiting_for_room_is_refused_once_closed():
    out = _run("""
        import threading, time
        import numpy as np
        from rtbcore import AuctionEngine
        from rtbcore.errors import QueueClosed
        eng = AuctionEngine(workers=1, pin=False, tmax_ms=600_000, capacity=1)
        eng.open(np.arange(10_000))
        def close_soon():
            time.sleep(0.2)
            eng.close()
        threading.Thread(target=close_soon).start()
        n = 0
        try:
            for i in range(100_000):
                eng.submit(np.arange(10_000), np.full(10_000, i), np.ones(10_000))
                n += 1
        except QueueClosed:
            pass
        print("ok")
    """, timeout=30)
    assert out.strip() == "ok"


# ---- the rejected-bid bound -----------------------------------------------------------------


def test_rejected_rows_beyond_the_bound_are_reported_as_dropped():
    n = 5000
    with AuctionEngine(workers=2, pin=False, capacity=64) as eng:
        assert eng.rejected_capacity == 1024  # the default: max(capacity, 1024)
        eng.submit(np.full(n, 99), np.arange(n), np.ones(n))
        _wait_for_count(eng, "rejected_unknown", n)
        rows, dropped = eng.poll_rejected_batch(n)
        s = eng.stats()
    assert rows.shape[0] == 1024  # exactly the bound, whatever the number of workers
    assert rows.shape[0] + dropped == n
    assert s["rejected_unreported"] == dropped
    assert len(set(rows["bidder_id"].tolist())) == rows.shape[0]


def test_rejected_capacity_is_configurable_and_drops_are_counted_once():
    with AuctionEngine(workers=3, pin=False, rejected_capacity=10) as eng:
        eng.submit(np.full(100, 5), np.arange(100), np.ones(100))
        _wait_for_count(eng, "rejected_unknown", 100)
        rows, dropped = eng.poll_rejected_batch(4)
        assert (rows.shape[0], dropped) == (4, 90)
        assert eng.poll_rejected(3).shape[0] == 3  # the plain call keeps working
        rows, dropped = eng.poll_rejected_batch(100)
        assert (rows.shape[0], dropped) == (3, 0)  # drops are reported once
        # polled rows make room again
        eng.submit(np.full(20, 5), np.arange(20), np.ones(20))
        _wait_for_count(eng, "rejected_unknown", 120)
        rows, dropped = eng.poll_rejected_batch(100)
        assert (rows.shape[0], dropped) == (10, 10)
    with AuctionEngine(workers=1, pin=False, rejected_capacity=0) as eng:
        eng.submit([1, 2], [1, 2], [1.0, 1.0])
        eng.close()
        rows, dropped = eng.poll_rejected_batch()
        assert (rows.shape[0], dropped) == (0, 2)


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True, 2**64])
def test_bad_rejected_capacity_is_refused(bad):
    with pytest.raises(InvalidInputError, match="rejected_capacity"):
        AuctionEngine(workers=1, pin=False, rejected_capacity=bad)


# ---- bad input: the library's classes, ids printed as integers ------------------------------


def test_ids_beyond_int64_are_printed_as_integers():
    with AuctionEngine(workers=1, pin=False) as eng:
        for call in (lambda: eng.open([2**63]), lambda: eng.open(2**63),
                     lambda: eng.submit([2**63], [1], [1.0]),
                     lambda: eng.submit_one(2**63, 1, 1.0),
                     lambda: eng.submit([1], [2**63], [1.0])):
            with pytest.raises(InvalidInputError) as e:
                call()
            msg = str(e.value)
            assert "9223372036854775808" in msg and "e+18" not in msg and "-9" not in msg, msg


BAD_CALLS: list[tuple[str, Callable[[AuctionEngine], object]]] = [
    ("poll max_n str", lambda e: e.poll("5")),
    ("poll max_n float", lambda e: e.poll(2.5)),
    ("poll max_n huge", lambda e: e.poll(2**70)),
    ("poll timeout str", lambda e: e.poll(5, "1")),
    ("poll timeout None", lambda e: e.poll(5, None)),
    ("poll_rejected str", lambda e: e.poll_rejected("5")),
    ("poll_rejected huge", lambda e: e.poll_rejected(2**70)),
    ("submit timeout str", lambda e: e.submit([1], [1], [1.0], timeout_ms="1")),
    ("submit_one price str", lambda e: e.submit_one(1, 1, "x")),
    ("submit_one quality str", lambda e: e.submit_one(1, 1, 1.0, "x")),
    ("open expected_bids float", lambda e: e.open([1], expected_bids=[1.5])),
    ("open reserve str", lambda e: e.open([1], reserve="x")),
    ("attach reader int", lambda e: e.attach("/nonexistent.ring", reader=5)),
]


@pytest.mark.parametrize("name,call", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_engine_input_raises_a_library_class(name, call):
    with AuctionEngine(workers=1, pin=False) as eng:
        with pytest.raises(RtbcoreError):
            call(eng)
        assert eng.stats()["submitted"] == 0


BAD_SETTINGS = [
    {"reserve": "0.5"},
    {"reserve": None},
    {"increment": "0.01"},
    {"tmax_ms": "80"},
    {"mechanism": 3},
    {"pin": "yes"},
    {"slot_ctrs": "abc"},
    {"event_log_capacity": 2**70},
    {"workers": 2**70},
]


@pytest.mark.parametrize("kwargs", BAD_SETTINGS, ids=[next(iter(k)) for k in BAD_SETTINGS])
def test_bad_engine_settings_raise_a_library_class(kwargs):
    with pytest.raises(InvalidInputError, match=next(iter(kwargs))):
        AuctionEngine(**{"workers": 1, "pin": False, **kwargs})


def test_event_log_bad_arguments_raise_library_classes(tmp_path):
    path = tmp_path / "events.ring"
    with AuctionEngine(workers=1, pin=False, event_log=path):
        pass
    with pytest.raises(InvalidInputError, match="reader"):
        EventLog(path, reader=5)
    log = EventLog(path)
    for call in (lambda: log.read("5"), lambda: log.read(5, "x"), lambda: log.replay(-1),
                 lambda: log.replay("0"), lambda: log.read(2**70), lambda: log.read(5, math.nan)):
        with pytest.raises(RtbcoreError):
            call()


def test_repr_and_stats_print_counts_as_integers():
    with AuctionEngine(workers=1, pin=False, rejected_capacity=7) as eng:
        eng.submit([2**63 - 1], [1], [1.0])
        eng.close()
        assert "rejected_capacity=7" in repr(eng)
        s = eng.stats()
        assert all(type(s[k]) is int for k in ("submitted", "rejected_unknown", "opened"))
        r = eng.poll_rejected()
    assert r.dtype["auction_id"] == np.dtype("<u8") and int(r["auction_id"][0]) == 2**63 - 1
    assert RESULT_DTYPE["auction_id"] == np.dtype("<u8")
