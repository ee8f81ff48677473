"""kill -9 (and an unhandled SIGTERM) of writer and reader processes in the middle of a stream:
the survivors get every committed record exactly once, and a reader that takes over a dead
reader's cursor starts exactly where the dead one had acknowledged."""

from __future__ import annotations

import random
import signal
import sys
import time
from pathlib import Path

import pytest
from chaos.ring_children import spawn

from rtbcore import BidRing

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="futex and flock: Linux")

N = 4000

WRITER = """
    path, producer, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ring = BidRing.open(path)
    rng = np.random.default_rng(seed)
    i = 0
    while i < n:
        k = ring.append_many(bids(i, min(n, i + int(rng.integers(1, 50))), producer))
        i += k
        if k == 0:
            ring.wait_for_space(1, 1.0)
        elif rng.random() < 0.3:
            time.sleep(0.001)
"""

# Writes "seq producer id" for each record it processed, flushed before the next read (which
# acknowledges them), and stops once the parent says the writers are done and it has read up to
# the tail.
READER = """
    path, name, out, done, seed = sys.argv[1:6]
    ring = BidRing.open(path)
    rd = ring.reader(name, abandon_after=0.2)
    rng = np.random.default_rng(int(seed))
    with open(out, "a") as f:
        while True:
            v = rd.read(int(rng.integers(1, 64)), timeout=0.05)
            check(v)
            start = rd.position - len(v)
            for k, (a, b) in enumerate(zip(v["auction_id"].tolist(), v["bidder_id"].tolist())):
                f.write(f"{start + k} {b} {a}\\n")
            f.flush()
            if not len(v) and os.path.exists(done) and rd.lag == 0:
                rd.commit()
                break
            if rng.random() < 0.2:
                time.sleep(0.001)
"""


def lines(path: Path) -> list[tuple[int, int, int]]:
    if not path.exists():
        return []
    return [tuple(map(int, x.split())) for x in path.read_text().splitlines()]  # type: ignore[misc]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill9", "sigterm"])
def test_killed_writers_and_readers_lose_and_duplicate_nothing_for_the_survivors(
    tmp_path: Path, how: signal.Signals
) -> None:
    rng = random.Random(int(how))
    path, done = str(tmp_path / "x.ring"), str(tmp_path / "done")
    ring = BidRing.create(path, capacity=256)
    for name in ("a", "b"):
        ring.reader(name)
    w_keep = spawn(WRITER, path, "1", str(N), "1")
    w_kill = spawn(WRITER, path, "2", str(10**9), "2")  # still writing when it is killed
    out_a1, out_a2, out_b = (tmp_path / f"{x}.txt" for x in ("a1", "a2", "b"))
    r_a1 = spawn(READER, path, "a", str(out_a1), done, "3")
    r_b = spawn(READER, path, "b", str(out_b), done, "4")
    procs = [w_keep, w_kill, r_a1, r_b]
    try:
        time.sleep(rng.uniform(0.2, 0.5))
        w_kill.send_signal(how)
        time.sleep(rng.uniform(0.1, 0.4))
        r_a1.send_signal(how)
        r_a1.wait(10)
        acked = dict(BidRing.open(path).readers())["a"]
        r_a2 = spawn(READER, path, "a", str(out_a2), done, "5")
        procs.append(r_a2)
        assert w_keep.wait(60) == 0, w_keep.communicate()[1]
        w_kill.wait(10)
        Path(done).touch()
        for r in (r_b, r_a2):
            assert r.wait(60) == 0, r.communicate()[1]
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert w_kill.returncode == -how and r_a1.returncode == -how

    # The reader that lived throughout: every committed record once, in sequence order.
    b = lines(out_b)
    seqs = [s for s, _, _ in b]
    assert seqs == sorted(set(seqs))
    keep = [i for _, p, i in b if p == 1]
    assert keep == list(range(N))
    killed = [i for _, p, i in b if p == 2]
    assert killed == list(range(len(killed)))  # a prefix of what the dead writer appended

    # The dead reader's acknowledged records plus its successor's are exactly the same stream.
    a1, a2 = lines(out_a1), lines(out_a2)
    if a2:  # the successor starts at the first committed record the dead one had not acked
        assert a2[0][0] == min(s for s in seqs if s >= acked)
    assert [x for x in a1 if x[0] < acked] + a2 == b
