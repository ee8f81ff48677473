"""An example buyer for ``rtbcore serve``: bids on announced auctions under a paced budget,
through network failures, and prints what it did.

    RTB_API_KEY=rtbk_... python examples/buyer.py --url ws://127.0.0.1:8080/v1/bidding \
        --budget 0.5 --seconds 30 --vertical news
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from rtbcore.client import AutoBidder, BiddingClient, BidStrategy, Event, PacedStrategy


class QualityBid(BidStrategy):
    """Values an impression at `base` times its quality score (an announcement attribute)."""

    def __init__(self, base: float) -> None:
        self.base = base

    def calculate_bid(self, auction_event: Event) -> float | None:
        try:
            q = float(auction_event.attributes.get("quality_score", "0.5"))
        except ValueError:
            return None
        return self.base * (0.5 + q) if q > 0 else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="ws://127.0.0.1:8080/v1/bidding")
    ap.add_argument("--budget", type=float, default=0.5, help="currency units for the run")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the run (its 'day')")
    ap.add_argument("--base", type=float, default=0.002, help="bid for a quality of 0.5")
    ap.add_argument("--vertical", default=None, help="only auctions of this vertical")
    args = ap.parse_args(argv)
    key = os.environ.get("RTB_API_KEY")
    if not key:
        print("buyer: set RTB_API_KEY (rtbcore serve prints a development key)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    client = BiddingClient(args.url, api_key=key)
    client.on("disconnect", lambda code, reason: print(f"buyer: disconnected ({code} {reason})",
                                                       file=sys.stderr))
    client.on("reconnect", lambda attempts: print("buyer: reconnected", file=sys.stderr))
    strategy = PacedStrategy(QualityBid(args.base).calculate_bid, args.budget,
                             duration=args.seconds)
    bidder = AutoBidder(client, strategy)
    filters = {"vertical": args.vertical} if args.vertical else {}
    bidder.run(filters, duration=args.seconds)
    print(json.dumps({**bidder.stats, "budget": args.budget}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
