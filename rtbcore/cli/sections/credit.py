"""Demo section: the credit pool through an outage of win notices."""

from __future__ import annotations

import argparse

from rtbcore.sim.credit import credit_preset


def run(args: argparse.Namespace) -> None:
    """``rtbcore demo``: run the decoupled preset and say what the pool did."""
    r = credit_preset("decoupled", seed=args.seed)
    print(r.summary())
