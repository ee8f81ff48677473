"""A ring file that shrinks or is replaced while it is mapped: every process survives, every
later call raises RingCorrupt, and arrays read earlier hold zero bytes instead of crashing.

Each scenario runs in a child interpreter (see ring_children.py): without the guard the child
dies with SIGBUS and the test fails with its exit status.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from chaos.ring_children import explain, run, spawn

from rtbcore import BidRing

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SIGBUS handling: Linux")

SETUP = """
    path, other = sys.argv[1], sys.argv[2]
    ring = BidRing.create(path, capacity=64)
    ring.append_many(bids(1, 41))
    rd = ring.reader("a")
    view = rd.read(10)
    assert view["auction_id"].tolist() == list(range(1, 11))
"""

# Ways another process changes the file under the mapping.
SHRINK = {
    "truncate": "os.truncate(path, 4096)",
    "truncate_from_another_process": (
        "subprocess.run([sys.executable, '-c', f'import os; os.truncate({path!r}, 4096)'],"
        " check=True)"
    ),
    "truncate_to_zero": "os.truncate(path, 0)",
    "cp_smaller_ring": (
        "BidRing.create(other, capacity=8).close(); shutil.copyfile(other, path)"
    ),
    "cp_same_size_ring": (
        "BidRing.create(other, capacity=64).close(); shutil.copyfile(other, path)"
    ),
}

# Every call on the ring, a reader of it, and the engine, after the change.
CALLS = {
    "read": "rd.read(64)",
    "read_with_timeout": "rd.read(64, timeout=5.0)",
    "read_one": "rd.read_one()",
    "read_one_with_timeout": "rd.read_one(timeout=5.0)",
    "commit": "rd.commit()",
    "wait": "rd.wait(5.0)",
    "replay": "rd.replay(0)",
    "append": "ring.append(1, 1, 1.0)",
    "append_many": "ring.append_many(bids(0, 5))",
    "wait_for_space": "ring.wait_for_space(1, 5.0)",
    "new_reader": "ring.reader('b')",
    "other_handle_read": "BidRing.open(path).reader('a').read(64)",
}


@pytest.mark.parametrize("shrink", SHRINK)
@pytest.mark.parametrize("call", CALLS)
def test_every_call_raises_ring_corrupt_and_earlier_views_read_zeros(
    tmp_path, shrink: str, call: str
) -> None:
    p = run(
        SETUP
        + f"""
    {SHRINK[shrink]}
    t0 = time.monotonic()
    try:
        {CALLS[call]}
    except RingCorrupt as e:
        print("RingCorrupt", round(time.monotonic() - t0, 3), e)
    else:
        print("no error")
    # The view handed out before the change: readable, zero bytes, never a crash.
    print("view", int(view["auction_id"].sum()), int(view.view(np.uint8).sum()))
    # And the handle stays refused.
    for again in (lambda: rd.read(1), lambda: ring.append(1, 1, 1.0)):
        try:
            again()
        except RingCorrupt:
            print("still corrupt")
    """,
        str(tmp_path / "x.ring"),
        str(tmp_path / "other.ring"),
    )
    assert p.returncode == 0, explain(p)
    first = p.stdout.splitlines()[0]
    if call == "other_handle_read" and shrink.startswith("cp_"):
        # A handle opened after the copy maps the ring that is in the file now: a valid one.
        assert first == "no error", explain(p)
        return
    assert first.startswith("RingCorrupt"), explain(p)
    assert float(first.split()[1]) < 2.0, "a blocking call noticed the change late"
    if call != "other_handle_read":
        assert "shrank" in first or "changed" in first, first
        assert "view 0 0" in p.stdout, explain(p)
        assert p.stdout.count("still corrupt") == 2, explain(p)


def test_a_reader_blocked_in_another_thread_is_woken_with_ring_corrupt(tmp_path) -> None:
    p = run(
        """
    path = sys.argv[1]
    ring = BidRing.create(path, capacity=64)
    rd = ring.reader("a")
    out = []
    def consume():
        try:
            rd.read(64, timeout=30.0)
            out.append("returned")
        except RingCorrupt as e:
            out.append(f"RingCorrupt {e}")
    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", f"import os; os.truncate({path!r}, 4096)"], check=True)
    t.join(10)
    print(out, round(time.monotonic() - t0, 2))
    """,
        str(tmp_path / "x.ring"),
    )
    assert p.returncode == 0, explain(p)
    assert "RingCorrupt" in p.stdout, explain(p)
    assert float(p.stdout.split()[-1]) < 2.0, explain(p)


WRITER = """
    ring = BidRing.open(sys.argv[1])
    i = 0
    print("ready", flush=True)
    try:
        while True:
            i += ring.append_many(bids(i, i + 50))
            ring.wait_for_space(50, 1.0)
    except RingCorrupt:
        print("writer RingCorrupt", flush=True)
"""

READER = """
    rd = BidRing.open(sys.argv[1]).reader("r")
    n = 0  # the reader starts at the first record and the writer wrote auction id = position
    print("ready", flush=True)
    try:
        while True:
            recs = rd.read(100, timeout=1.0)
            got = recs.view(np.uint8).reshape(len(recs), -1)
            want = bids(n, n + len(recs)).view(np.uint8).reshape(len(recs), -1)
            if not np.array_equal(got, want):
                # The file shrank after read() returned: the zero-copy view's lost pages now
                # read as zeros (documented), never as other bytes, and the next call says so.
                assert not got[got != want].any(), "torn or foreign record"
                rd.read(1)
                raise AssertionError("a view read zeros but the ring was not reported corrupt")
            n += len(recs)
    except RingCorrupt:
        print("reader RingCorrupt", flush=True)
"""


def test_writer_and_reader_processes_survive_a_third_that_truncates(tmp_path) -> None:
    path = str(tmp_path / "x.ring")
    BidRing.create(path, capacity=1024).reader("r")
    procs = [spawn(WRITER, path), spawn(READER, path)]
    try:
        for q in procs:
            assert q.stdout is not None and q.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        os.truncate(path, 8192)
        outs = [q.communicate(timeout=20) for q in procs]
    finally:
        for q in procs:
            q.kill()
    assert [q.returncode for q in procs] == [0, 0], outs
    assert [o.strip() for o, _ in outs] == ["writer RingCorrupt", "reader RingCorrupt"], outs


def test_an_attached_engine_survives_and_reports_the_corrupt_ring(tmp_path) -> None:
    p = run(
        """
    path = sys.argv[1]
    ring = BidRing.create(path, capacity=256)
    with AuctionEngine(workers=1, pin=False, tmax_ms=600_000) as eng:
        eng.open(np.arange(10), expected_bids=2)
        eng.attach(ring, reader="engine")
        ring.append_many(bids(0, 10))
        deadline = time.monotonic() + 10
        while eng.stats()["attach_records"] < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.truncate(path, 4096)
        deadline = time.monotonic() + 10
        while eng.stats()["attach_errors"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        s = eng.stats()
        print("errors", s["attach_errors"] > 0, s["attach_records"])
        print("last", s["attach_last_error"])
        eng.submit_one(3, 1, 2.0)
    print("closed")
    """,
        str(tmp_path / "x.ring"),
    )
    assert p.returncode == 0, explain(p)
    assert "errors True 10" in p.stdout, explain(p)
    assert "shrank" in p.stdout, explain(p)
    assert "closed" in p.stdout, explain(p)


# --- faults outside our mappings keep their old meaning ------------------------------------

FOREIGN_FAULT = """
    import mmap
    junk = sys.argv[1] + ".junk"
    with open(junk, "wb") as f:
        f.write(b"x" * 8192)
    f = open(junk, "r+b")
    mm = mmap.mmap(f.fileno(), 8192)
    os.truncate(junk, 0)
    print("touching", flush=True)
    mm[100]
    print("survived a foreign SIGBUS")
"""


@pytest.mark.parametrize("faulthandler_first", [True, False])
def test_a_sigbus_outside_ring_mappings_still_ends_the_process(
    tmp_path, faulthandler_first: bool
) -> None:
    enable = "import faulthandler; faulthandler.enable()" if faulthandler_first else "pass"
    p = run(
        f"""
    {enable}
    ring = BidRing.create(sys.argv[1] + ".ring", capacity=8)
    """
        + FOREIGN_FAULT,
        str(tmp_path / "x"),
    )
    assert p.returncode == -signal.SIGBUS, explain(p)
    assert "touching" in p.stdout and "survived" not in p.stdout
    # An earlier handler (Python's faulthandler here) is still run for faults that are not ours.
    assert ("Fatal Python error: Bus error" in p.stderr) == faulthandler_first, explain(p)


def test_a_handler_installed_after_the_ring_still_lets_the_ring_survive(tmp_path) -> None:
    p = run(
        SETUP
        + """
    import faulthandler
    faulthandler.enable()
    os.truncate(path, 4096)
    try:
        rd.read(64)
    except RingCorrupt:
        print("RingCorrupt")
    # Opening another ring puts our handler first again: no report from faulthandler.
    other_ring = BidRing.create(other, capacity=8)
    r2 = other_ring.reader("x")
    os.truncate(other, 4096)
    try:
        r2.read(1)
    except RingCorrupt:
        print("RingCorrupt again")
    """,
        str(tmp_path / "x.ring"),
        str(tmp_path / "other.ring"),
    )
    assert p.returncode == 0, explain(p)
    assert "RingCorrupt\nRingCorrupt again" in p.stdout, explain(p)
