"""Simulations that show rtbcore's parts at work on synthetic markets, each with its plot.

- :mod:`rtbcore.sim.pacing`: a day of second-price auctions once per budget pacer;
- :mod:`rtbcore.sim.credit`: a bidder's credit pool through traffic swings and lost win notices;
- :mod:`rtbcore.sim.shading`: first-price auctions in the symmetric equilibrium, and a bidder
  learning to shade in them;
- :mod:`rtbcore.sim.floors`: a week of second-price auctions under several floor policies;
- :mod:`rtbcore.sim.market`: synthetic exchange traffic (auction batches and bid streams).

matplotlib and tqdm are imported only by the functions that plot or show progress.
"""

from rtbcore.sim.credit import CREDIT_PRESETS, CreditSeries, credit_model, credit_preset
from rtbcore.sim.floors import FloorsSimResult, market_week, simulate_floors
from rtbcore.sim.market import synthetic_hour, synthetic_stream
from rtbcore.sim.pacing import PACERS, PacingSimResult, simulate_pacing
from rtbcore.sim.shading import (
    FirstPriceOutcomes,
    ShadingRun,
    equilibrium_surplus,
    equilibrium_win_probability,
    optimal_equilibrium_bid,
    plot_shading,
    run_shading,
    simulate_first_price,
)

__all__ = [
    "CREDIT_PRESETS",
    "CreditSeries",
    "credit_model",
    "credit_preset",
    "FloorsSimResult",
    "market_week",
    "simulate_floors",
    "synthetic_hour",
    "synthetic_stream",
    "PACERS",
    "PacingSimResult",
    "simulate_pacing",
    "FirstPriceOutcomes",
    "ShadingRun",
    "equilibrium_surplus",
    "equilibrium_win_probability",
    "optimal_equilibrium_bid",
    "plot_shading",
    "run_shading",
    "simulate_first_price",
]
