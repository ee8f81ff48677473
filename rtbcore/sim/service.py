"""A small bidder service: bidders with a PID pacer and a BidShader in a first-price exchange.

Each round the exchange offers a block of auctions; every bidder values them, scales the values
by its pacer's multiplier, shades them (or bids them as they are), checks the block's worst-case
cost against its budget, and after the round learns its outcomes (win, price, the exchange's
minimum bid to win on a loss) and feeds its pacer the spend. The benchmarks time this loop with
and without shading, and the docs run it across two simulated days with a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rtbcore.pacing import PIDPacer
from rtbcore.shading import BidLandscape, BidShader

__all__ = ["Bidder", "ServiceLoop"]


@dataclass
class Bidder:
    """One bidder: a campaign's budget for the period, its pacer and (optionally) its shader."""

    budget: float
    pacer: PIDPacer
    shader: BidShader | None
    spent: float = 0.0
    wins: int = 0


@dataclass
class ServiceLoop:
    """``bidders`` bidders on one exchange; ``run(rounds, auctions)`` plays that many rounds."""

    bidders: list[Bidder]
    seed: int = 0
    period: float = 86_400.0
    elapsed: float = 0.0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    @classmethod
    def build(
        cls, n_bidders: int = 20, budget: float = 5000.0, shading: bool = True, seed: int = 0
    ) -> ServiceLoop:
        """Bidders with a scalar PIDPacer each and, with ``shading``, a BidShader each."""
        bidders = [
            Bidder(
                budget,
                PIDPacer(budget, start=0.0, clock=lambda: 0.0),
                BidShader(BidLandscape(max_bid=2.0), explore=0.02, seed=seed * 1000 + i)
                if shading
                else None,
            )
            for i in range(n_bidders)
        ]
        return cls(bidders, seed=seed)

    def run(self, rounds: int, auctions: int, step: float | None = None) -> None:
        """Play ``rounds`` rounds of ``auctions`` auctions, ``step`` seconds apart (default: the
        rounds spread over what is left of the period)."""
        if step is None:
            step = (self.period - self.elapsed) / max(rounds, 1)
        for _ in range(rounds):
            self.elapsed = min(self.elapsed + step, self.period)
            self._round(auctions)

    def _round(self, auctions: int) -> None:
        n = len(self.bidders)
        bids = np.full((n, auctions), np.nan)
        values = self.rng.random((n, auctions))
        for i, b in enumerate(self.bidders):
            m = b.pacer.multiplier(b.spent, elapsed=self.elapsed)
            v = values[i] * m
            row = b.shader.bid(v) if b.shader is not None else v
            # the worst case of a first-price block: every bid wins at its own price
            worst = float(np.nansum(row))
            if b.pacer.should_bid(b.spent, b.budget, worst, elapsed=self.elapsed):
                bids[i] = row
        top = np.where(np.isnan(bids), -np.inf, bids)
        winner = top.argmax(axis=0)
        won = np.zeros((n, auctions), dtype=bool)
        won[winner, np.arange(auctions)] = np.isfinite(top[winner, np.arange(auctions)])
        paid = np.where(won, bids, 0.0).sum(axis=1)
        mtw = None
        if any(b.shader is not None for b in self.bidders):
            # what the exchange reports on a loss: the minimum bid to win, the best rival bid
            mtw = np.where(won, np.nan, top.max(axis=0))
        for i, b in enumerate(self.bidders):
            b.spent += float(paid[i])
            b.wins += int(won[i].sum())
            b.pacer.update(b.spent, elapsed=self.elapsed)
            if b.shader is not None and mtw is not None and not np.isnan(bids[i, 0]):
                # a first-price win costs the bid: the price is left out (= our bid)
                b.shader.observe(bids[i], won[i], None, mtw[i])
