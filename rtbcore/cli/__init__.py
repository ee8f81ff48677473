"""The ``rtbcore`` command: ``rtbcore demo`` (the main job), ``rtbcore simulate ...``,
``rtbcore serve`` (the exchange server) and ``rtbcore keys add``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rtbcore.cli import serve, simulate
from rtbcore.sim.credit import CREDIT_PRESETS


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtbcore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="a synthetic day through every part of rtbcore")
    demo.add_argument("--auctions", type=int, default=None, help="auctions in the synthetic day")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--quick", action="store_true", help="small settings (seconds, not a minute)")

    sim = sub.add_parser("simulate", help="run one of the simulations")
    sim_sub = sim.add_subparsers(dest="simulation", required=True)
    pacing = sim_sub.add_parser(
        "pacing", help="a day of second-price auctions, once per budget pacer")
    pacing.add_argument("--campaigns", type=int, default=1000, help="campaigns (default 1000)")
    pacing.add_argument("--ticks", type=int, default=2880,
                        help="pacing rounds in the day (default 2880: every 30 s)")
    pacing.add_argument("--seed", type=int, default=0)
    pacing.add_argument("--csv", type=str, default=None,
                        help="write the median spend curves and the metrics here")
    pacing.add_argument("--png", type=str, default=None, help="write the spend curves here")
    pacing.add_argument("--no-progress", action="store_true", help="no progress bar")
    pacing.set_defaults(func=simulate.pacing)

    credit = sim_sub.add_parser("credit", help="a bidder's credit pool over 30 simulated minutes")
    credit.add_argument("--preset", required=True, choices=list(CREDIT_PRESETS),
                        help="boom-bust: W = 1; stable: W = 10; decoupled: stable, no win "
                        "notices from t = 900 s to 1200 s")
    credit.add_argument("--csv", type=str, default=None, help="write the time series here")
    credit.add_argument("--png", type=str, default=None, help="write the plot here (matplotlib)")
    credit.add_argument("--seed", type=int, default=0)
    credit.set_defaults(func=simulate.credit)

    floors = sim_sub.add_parser(
        "floors", help="a synthetic week of second-price auctions under several floor policies")
    floors.add_argument("--auctions", type=int, default=1_000_000,
                        help="auctions in the week (default 1000000)")
    floors.add_argument("--segments", type=int, default=24, help="segments (default 24)")
    floors.add_argument("--seed", type=int, default=0)
    floors.add_argument("--csv", type=str, default=None, help="write the table here")
    floors.add_argument("--png", type=str, default=None,
                        help="write revenue and fill per hour here (matplotlib)")
    floors.add_argument("--no-progress", action="store_true", help="no progress bar")
    floors.set_defaults(func=simulate.floors)

    serve.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rtbcore`` command with ``argv`` (default: the process arguments)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from rtbcore.cli.demo import run_demo

        return run_demo(args)
    if args.command in ("simulate", "serve", "keys"):
        return int(args.func(args))
    parser.error(f"unknown command {args.command!r}")
    return 2

