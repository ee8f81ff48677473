"""The ``rtbcore simulate`` commands (pacing, credit, floors): each prints its simulation's
summary, and writes a CSV with ``--csv F`` and a plot with ``--png F``."""

from __future__ import annotations

import argparse

from rtbcore.sim.credit import CreditSeries, credit_preset
from rtbcore.sim.floors import FloorsSimResult, simulate_floors
from rtbcore.sim.pacing import PacingSimResult, simulate_pacing


def pacing(args: argparse.Namespace) -> int:
    """``rtbcore simulate pacing [--campaigns N] [--ticks N] [--seed N] [--csv F] [--png F]``."""
    result = simulate_pacing(campaigns=args.campaigns, ticks=args.ticks, seed=args.seed,
                             progress=not args.no_progress)
    return _report(result, args)


def credit(args: argparse.Namespace) -> int:
    """``rtbcore simulate credit --preset P [--csv F] [--png F] [--seed N]``."""
    return _report(credit_preset(args.preset, seed=args.seed), args)


def floors(args: argparse.Namespace) -> int:
    """``rtbcore simulate floors [--auctions N] [--segments N] [--seed N] [--csv F]
    [--png F]``."""
    result = simulate_floors(auctions=args.auctions, segments=args.segments, seed=args.seed,
                             progress=not args.no_progress)
    return _report(result, args)


def _report(
    result: PacingSimResult | CreditSeries | FloorsSimResult, args: argparse.Namespace
) -> int:
    print(result.summary())
    if args.csv:
        print(f"wrote {result.to_csv(args.csv)}")
    if args.png:
        print(f"wrote {result.plot(args.png)}")
    return 0
