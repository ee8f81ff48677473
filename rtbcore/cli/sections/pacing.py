"""Demo section: a day of second-price auctions once per budget pacer."""

from __future__ import annotations

import argparse

from rtbcore.sim.pacing import simulate_pacing


def run(args: argparse.Namespace) -> None:
    """``rtbcore demo``: a pacing day (200 campaigns with --quick, else 1,000; ~5-25 s)."""
    quick = bool(getattr(args, "quick", False))
    r = simulate_pacing(campaigns=200 if quick else 1000, ticks=2880,
                        seed=int(getattr(args, "seed", 0)))
    print(r.summary())
