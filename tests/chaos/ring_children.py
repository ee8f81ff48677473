"""Child processes for the ring chaos tests: each scenario runs in its own interpreter, so that
a crash (SIGBUS, a hang) fails the test instead of killing pytest.

``PRELUDE`` is prepended to every child's code: the imports, ``bids(lo, hi)`` (auction id =
position, every other field a function of it, so a torn or foreign record is recognisable) and
``check(recs)`` which asserts that.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

PRELUDE = textwrap.dedent(
    """
    import json, os, shutil, signal, subprocess, sys, threading, time
    import numpy as np
    from rtbcore import AuctionEngine, BidRing, make_bids
    from rtbcore.errors import RingCorrupt

    def bids(lo, hi, producer=0):
        i = np.arange(lo, hi, dtype=np.uint64)
        return make_bids(i, producer, 1.0 + (i % 100) * 0.5, 1.0 + (i % 3), 0, i * 7 + producer)

    def check(recs):
        i = recs["auction_id"]
        assert (recs["price"] == 1.0 + (i % 100) * 0.5).all(), "torn or foreign record"
        assert (recs["timestamp_ns"] == i * 7 + recs["bidder_id"]).all(), "torn or foreign record"
    """
)


def command(code: str, *args: str) -> list[str]:
    return [sys.executable, "-P", "-c", PRELUDE + textwrap.dedent(code), *args]


def run(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs a child to completion and returns it (returncode, stdout, stderr)."""
    return subprocess.run(command(code, *args), capture_output=True, text=True, timeout=timeout)


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    """Starts a child with pipes for stdin, stdout and stderr."""
    return subprocess.Popen(
        command(code, *args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def explain(p: subprocess.CompletedProcess[str]) -> str:
    return f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
