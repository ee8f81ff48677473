"""Demo section: bid landscapes learned from simulated first-price auctions."""

from __future__ import annotations

import argparse

import numpy as np

from rtbcore.shading import BidLandscape
from rtbcore.sim.shading import (
    equilibrium_surplus,
    optimal_equilibrium_bid,
    run_shading,
    simulate_first_price,
)


def run(args: argparse.Namespace) -> None:
    """``rtbcore demo``: landscapes learned from simulated first-price auctions, a shading run."""
    seed = int(getattr(args, "seed", 7))
    quick = bool(getattr(args, "quick", False))
    n = 2_000 if quick else 10_000
    auctions = getattr(args, "auctions", None)
    if auctions is not None:
        n = max(100, min(int(auctions), 1_000_000))  # the section stays within its seconds
    values = np.linspace(0.3, 0.9, 61)
    opt = equilibrium_surplus(values, optimal_equilibrium_bid(values))
    print(f"bid shading: {n} first-price auctions vs 4 rivals bidding 0.8 * value (equilibrium)")
    for mode in ("losses", "never"):
        out = simulate_first_price(lambda r, k: r.random(k), n, report_min_to_win=mode, seed=seed)
        feedback = "win/loss + min-to-win" if mode == "losses" else "win/loss only"
        for est in ("empirical", "lognormal", "naive"):
            land = BidLandscape(estimator=est)
            land.observe(out.bids, out.won, out.price, out.min_to_win)
            ratio = equilibrium_surplus(values, land.optimal_bid(values)).mean() / opt.mean()
            print(f"  {feedback:22s} {est:10s} surplus {100 * ratio:5.1f}% of the optimum")
    rounds, per = (8, 2_000) if quick else (20, 5_000)
    run = run_shading(rounds, per, seed=seed, progress=not quick)
    print(f"  shading run, win/loss only, learning online ({rounds} rounds x {per} auctions):")
    for r in sorted({0, 1, 2, rounds // 2, rounds - 1}):
        print(
            f"    round {r + 1:2d}: median bid/value {run.bid_ratio[r]:.3f} (theory 0.800), "
            f"win rate {run.win_rate[r]:.3f}, surplus {100 * run.share[r]:5.1f}% of the optimum"
        )
