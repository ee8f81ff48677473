"""A week of a synthetic exchange, replayed under several floor policies.

:func:`market_week` draws the log: ``segments`` segments, each with its own log-normal value
distribution (median, spread) and its own number of bidders per auction (2 to 20); the medians
drift over the week (a daily cycle plus a trend). Bidders bid their values, as they should in a
second-price auction. :func:`simulate_floors` replays the same log under each policy with
:func:`~rtbcore.floors.replay` and measures revenue and fill rate:

- ``no floor``;
- ``best static``: the best single floor for the whole log, chosen in hindsight;
- ``oracle``: the best static floor of each segment, chosen in hindsight;
- ``online``: a :class:`~rtbcore.FloorOptimizer` learning per segment from every bid;
- ``online, fill >= 95%``: the same with ``min_fill=0.95``;
- ``online, price only``: learning from the clearing prices alone (a censored log).

The hindsight policies see the whole week before it happens, which no real policy can; the
online policies see each auction only after it cleared.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtbcore.errors import InvalidInputError
from rtbcore.floors import DEFAULT_GRID, AuctionLog, FloorOptimizer, ReplayResult, replay

__all__ = ["FloorsSimResult", "market_week", "simulate_floors", "hindsight_floors"]

WEEK = 7 * 86_400.0


def _int(name: str, x: Any, lo: int, hi: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer) or not lo <= x <= hi:
        raise InvalidInputError(f"{name}: expected an int in [{lo}, {hi}], got {x!r}")
    return int(x)


def market_week(
    auctions: int = 1_000_000, segments: int = 24, seed: int = 0
) -> tuple[AuctionLog, dict[str, np.ndarray]]:
    """The log of a synthetic week and its hidden parameters.

    Segment s has a median value ``m_s`` (log-normal around 1 per impression), a spread
    ``sigma_s`` in [0.3, 1.0], a mean number of bidders log-uniform in [2, 20] (each auction
    draws its count from a Poisson around it, clipped to [2, 20]) and a traffic share. Its
    log-median drifts: ``log m_s(t) = log m_s + a_s sin(2 pi t / day + phi_s) + b_s t / week``,
    with ``a_s`` up to 0.3 and ``b_s`` in [-0.4, 0.4]. Auctions are in time order over one week.
    """
    auctions = _int("auctions", auctions, 1, 100_000_000)
    segments = _int("segments", segments, 1, 10_000)
    seed = _int("seed", seed, 0, 2**63 - 1)
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 0.5, segments)
    sigma = rng.uniform(0.3, 1.0, segments)
    # log-uniform: as many thin segments (2-4 bidders) as thick ones (10-20)
    mean_bidders = np.exp(rng.uniform(math.log(2.0), math.log(20.0), segments))
    share = rng.dirichlet(np.full(segments, 2.0))
    amp = rng.uniform(0.0, 0.3, segments)
    phase = rng.uniform(0.0, 2 * math.pi, segments)
    trend = rng.uniform(-0.4, 0.4, segments)
    t = np.sort(rng.uniform(0.0, WEEK, auctions))
    seg = rng.choice(segments, auctions, p=share)
    sizes = np.clip(rng.poisson(mean_bidders[seg]), 2, 20)
    m = mu[seg] + amp[seg] * np.sin(2 * math.pi * t / 86_400.0 + phase[seg]) + trend[seg] * t / WEEK
    per_bid = np.repeat(np.arange(auctions), sizes)
    values = np.exp(m[per_bid] + sigma[seg][per_bid] * rng.standard_normal(per_bid.shape[0]))
    log = AuctionLog.from_sizes(sizes, values, seg, segments=segments)
    hidden = {"mu": mu, "sigma": sigma, "mean_bidders": mean_bidders, "share": share,
              "amplitude": amp, "trend": trend, "time": t}
    return log, hidden


def hindsight_floors(log: AuctionLog, grid: np.ndarray = DEFAULT_GRID) -> tuple[float, np.ndarray]:
    """The best single floor of the whole log and the best floor of each segment, chosen on the
    log itself among ``grid`` (second price, increment 0: an auction with top bids b1 >= b2 pays
    ``max(b2, f)`` when ``b1 >= f``)."""
    opt = FloorOptimizer(log.segments, grid=grid, half_life=1e300, explore=0.0, min_weight=0.0)
    one = FloorOptimizer(1, grid=grid, half_life=1e300, explore=0.0, min_weight=0.0)
    top, second, idx = log.top_two
    q = idx >= 0
    zeros = np.zeros(int(q.sum()))
    opt.update(log.segment[q], zeros, second[q], True, top[q], second[q])
    one.update(np.zeros(zeros.shape[0], dtype=np.int64), zeros, second[q], True, top[q], second[q])
    return float(one.floors[0]), opt.floors


@dataclass
class FloorsSimResult:
    """What :func:`simulate_floors` measured: per policy its :class:`~rtbcore.ReplayResult`."""

    params: dict[str, Any]
    results: dict[str, ReplayResult] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per policy: revenue, lifts, share of the oracle, fill rate."""
        base = self.results["no floor"].revenue
        static = self.results["best static"].revenue
        oracle = self.results["oracle"].revenue
        out = []
        for name, r in self.results.items():
            out.append({
                "policy": name, "revenue": r.revenue, "vs_no_floor": r.revenue / base - 1,
                "vs_best_static": r.revenue / static - 1, "of_oracle": r.revenue / oracle,
                "fill_rate": r.fill_rate,
            })
        return out

    def summary(self) -> str:
        """The setup and the table (revenue is per impression, summed over the week)."""
        p = self.params
        lines = [
            f"floors week: {p['auctions']:,} second-price auctions in {p['segments']} segments "
            f"(2-20 bidders, log-normal values, drifting medians), seed {p['seed']}",
            f"{'policy':<22} {'revenue':>12} {'vs no floor':>12} {'vs static':>10} "
            f"{'of oracle':>10} {'fill':>7}",
        ]
        for r in self.rows():
            lines.append(
                f"{r['policy']:<22} {r['revenue']:>12,.0f} {r['vs_no_floor']:>+12.1%} "
                f"{r['vs_best_static']:>+10.1%} {r['of_oracle']:>10.1%} {r['fill_rate']:>7.1%}"
            )
        thin = self.params["mean_bidders"] <= 4.0
        base, on = self.results["no floor"].by_segment, self.results["online"].by_segment
        for label, m in (("thin segments (<= 4 bidders)", thin), ("thick segments", ~thin)):
            if m.any():
                lift = on["revenue"][m].sum() / base["revenue"][m].sum() - 1
                share = base["revenue"][m].sum() / base["revenue"].sum()
                lines.append(f"online vs no floor, {label}: {lift:+.1%} "
                             f"({share:.0%} of the revenue)")
        return "\n".join(lines)

    def to_csv(self, path: str | Path) -> Path:
        """The table, one line per policy."""
        path = Path(path)
        rows = self.rows()
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        return path

    def plot(self, path: str | Path) -> Path:
        """Per hour of the week, each policy's revenue relative to no floor and its fill rate
        (PNG)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = Path(path)
        fig = Figure(figsize=(10, 6), layout="constrained")
        ax_rev, ax_fill = fig.subplots(2, 1, sharex=True)
        base = self.results["no floor"].series
        hour = np.floor((base["end"] - 1) * 168.0 / self.params["auctions"]).astype(np.int64)
        x = np.arange(hour.max() + 1)

        def hourly(v: np.ndarray) -> np.ndarray:
            return np.bincount(hour, v.astype(np.float64), x.shape[0])

        for name, r in self.results.items():
            s = r.series
            ax_rev.plot(x, 100 * (hourly(s["revenue"]) / hourly(base["revenue"]) - 1),
                        label=name, lw=1)
            ax_fill.plot(x, hourly(s["sold"]) / hourly(s["qualified"]), label=name, lw=1)
        ax_rev.set_ylabel("revenue vs no floor (%)")
        ax_fill.set_ylabel("fill rate")
        ax_fill.set_xlabel("hour of the week")
        ax_rev.legend(fontsize=8, ncols=3)
        ax_rev.set_title("floors on a synthetic week (the same log under each policy)")
        FigureCanvasAgg(fig).print_png(str(path))
        return path


def simulate_floors(
    *, auctions: int = 1_000_000, segments: int = 24, seed: int = 0, half_life: float = 20_000,
    progress: bool = False,
) -> FloorsSimResult:
    """Replay one synthetic week (:func:`market_week`) under each policy (see the module).
    Online policies clear in chunks of 1/672 of the week (15 minutes) and learn after each."""
    log, hidden = market_week(auctions, segments, seed)
    chunk = max(1, auctions // 672)
    static, per_segment = hindsight_floors(log)

    def online(**kw: Any) -> FloorOptimizer:
        return FloorOptimizer(segments, half_life=half_life, seed=seed, **kw)

    # a learner that sees only prices explores near its floor, so it starts from half the median
    # price of the first 15 minutes without a floor (what the exchange saw before floors)
    first = replay(log, 0.0, chunk=chunk).price[:chunk]
    start = float(np.median(first)) / 2
    policies: dict[str, Any] = {
        "no floor": (0.0, "bids"),
        "best static": (static, "bids"),
        "oracle": (per_segment, "bids"),
        "online": (online(), "bids"),
        "online, fill >= 95%": (online(min_fill=0.95), "bids"),
        "online, price only": (
            online(explore=0.2, explore_steps=6, min_weight=200.0, initial=start), "price"),
    }
    out = FloorsSimResult(params={"auctions": auctions, "segments": segments, "seed": seed,
                                  "half_life": half_life, "static_floor": static,
                                  "mean_bidders": hidden["mean_bidders"]})
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(policies), desc="floors week", unit="policy")
    try:
        for name, (policy, feedback) in policies.items():
            out.results[name] = replay(log, policy, chunk=chunk, feedback=feedback)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out
