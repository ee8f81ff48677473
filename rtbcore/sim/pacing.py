"""The day-long pacing simulation behind ``rtbcore simulate pacing``.

:func:`simulate_pacing` runs the same day of second-price auctions once per pacer (same
campaigns, same traffic, same random draws) and measures how each one spends its budgets.

The day, round by round (``ticks`` rounds of ``total / ticks`` seconds; round t decides at
elapsed = t·dt and feeds the feedback pacers at (t + 1)·dt):

- **Campaigns** (``campaigns``, default 1,000) live in ``segments`` market segments whose price
  level is spread log-evenly over ``price_spread`` (×10); each campaign has a reach (its share of
  its segment's requests, log-uniform in [0.15, 0.9]), a predicted CTR and CVR and a value per
  conversion making its expected value per impression 0.7-1.6× its segment's price level.
- **Traffic** follows a diurnal shape (trough 0.11 around 05:00, a morning shoulder, peak 1.0
  at 20:00). In round t campaign i sees a request with probability reach_i × shape(t); its
  segment holds shape(t) × (requests / bidders_per_auction) auctions and the request is one of
  them at random, so ~3 campaigns meet in an auction, plus one **open-market bid** (log-normal
  around the segment's price level, sigma 0.5) standing for everyone else.
- **Bids**: ``value_bid(p_ctr × noise, p_cvr, value, 1.0, multiplier)`` (per-request log-normal
  CTR noise); a campaign bids only if its pacer's ``should_bid(spent, budget, bid, elapsed)``
  says so, the hard cap included.
- **Clearing**: second price with a reserve: the winner pays max(reserve, second bid) (its own
  bid at most), through one function, :func:`clear_tick`: rtbcore's Rust kernel
  (:func:`rtbcore.clear_second_price`); :func:`clear_tick_numpy` is the same rule in numpy,
  kept as the tests' cross-check. Spend only grows by prices ≤ bids,
  and a bid is only made if spent + bid ≤ budget, so no campaign can overspend.
- **Budgets**: a pilot run without budgets (every campaign bids its value on every request)
  measures each campaign's unpaced day spend; its budget is a share ``budget_share`` (uniform in
  [0.35, 0.6]) of that, so unpaced bidding exhausts it around mid-afternoon, and budgets span
  two orders of magnitude.

Per pacer it reports the pacing SLO exactly (share of campaigns ending within ±5% of their
budget), overspend, hourly deviation from the pacer's target curve, and metrics that tell
pacers apart where the hard cap makes every pacer end on budget: when the budget ran out (the
first request the hard cap refused), the share of the campaign's requests that came while it
could still bid, spend in the last 4 hours, and the SLO restricted to campaigns that were still
bidding at 23:00 ("paced through the day").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtbcore import pacing
from rtbcore.clearing import AuctionBatch, clear_second_price
from rtbcore.errors import InvalidInputError

__all__ = [
    "PACERS",
    "PacingSimResult",
    "clear_tick",
    "clear_tick_numpy",
    "simulate_pacing",
    "traffic_shape",
]


def traffic_shape(hours: np.ndarray) -> np.ndarray:
    """Relative traffic at hour-of-day ``hours`` (max 1 at 20:00, trough ~0.11 around 05:00)."""
    h = np.asarray(hours, dtype=np.float64) % 24.0
    evening = np.exp(-(((h - 20.0 + 12.0) % 24.0 - 12.0) / 4.5) ** 2)
    morning = 0.45 * np.exp(-(((h - 10.0 + 12.0) % 24.0 - 12.0) / 2.5) ** 2)
    raw = 0.1 + evening + morning
    return raw / 1.1022


# ---- clearing --------------------------------------------------------------------------------


def clear_tick_numpy(
    offsets: np.ndarray, prices: np.ndarray, reserve: float
) -> tuple[np.ndarray, np.ndarray]:
    """Second-price clearing of a segment-layout batch in numpy (rtbcore's clearing rules).

    Auction a holds bids ``offsets[a]:offsets[a + 1]``. A bid is eligible if it is finite,
    > 0 and >= reserve; the highest eligible bid wins (ties: the lower index) and pays
    min(its bid, max(reserve, second eligible bid)). Returns (winner: global bid index or -1,
    price: 0 when there is no sale).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    prices = np.asarray(prices, dtype=np.float64)
    n_auctions = offsets.shape[0] - 1
    counts = np.diff(offsets)
    seg = np.repeat(np.arange(n_auctions), counts)
    eligible = np.isfinite(prices) & (prices > 0) & (prices >= reserve)
    key = np.where(eligible, prices, -np.inf)
    order = np.lexsort((np.arange(prices.shape[0]), -key, seg))
    winner = np.full(n_auctions, -1, dtype=np.int64)
    price = np.zeros(n_auctions)
    has = counts > 0
    first = offsets[:-1][has]
    top = order[first]
    ok = key[top] > -np.inf
    a_top = np.flatnonzero(has)[ok]
    top = top[ok]
    second = np.full(a_top.shape[0], -np.inf)
    has2 = counts[a_top] >= 2
    second[has2] = key[order[offsets[a_top[has2]] + 1]]
    winner[a_top] = top
    price[a_top] = np.minimum(prices[top], np.maximum(reserve, second))
    return winner, price


def clear_tick(
    offsets: np.ndarray, prices: np.ndarray, reserve: float
) -> tuple[np.ndarray, np.ndarray]:
    """The simulation's clearing of one round: (winner bid index or -1, price) per auction.

    rtbcore's Rust kernel (:func:`rtbcore.clear_second_price`, no increment; invalid bids are
    ineligible, as in :func:`clear_tick_numpy`, which the tests hold it to)."""
    r = clear_second_price(AuctionBatch(offsets, prices, reserve=reserve), increment=0.0,
                           on_invalid="skip")
    return r.winner, r.price


# ---- the pacers under test ---------------------------------------------------------------------


def _unpaced(budget: np.ndarray, total: float, seed: int, profile: np.ndarray) -> pacing.PIDPacer:
    # Multiplier 1 always (no gains, range [1, 1]): only the hard cap of should_bid acts.
    return pacing.PIDPacer(budget, total, clock=_zero, kp=0.0, ki=0.0, base=1.0, lo=1.0, hi=1.0)


def _zero() -> float:
    return 0.0


#: name -> factory(budget, total, seed, profile) of the pacers the simulation compares. "unpaced"
#: is the baseline: bid the value, hard cap only. "pid" follows the straight line, "adaptive" a
#: traffic profile learned from a week of history.
PACERS: dict[str, Callable[[np.ndarray, float, int, np.ndarray], Any]] = {
    "unpaced": _unpaced,
    "linear": lambda b, total, seed, prof: pacing.LinearPacer(total, clock=_zero),
    "tiered": lambda b, total, seed, prof: pacing.TieredPacer(total, clock=_zero),
    "throttling": lambda b, total, seed, prof: pacing.ThrottlingPacer(total, clock=_zero,
                                                                      seed=seed),
    "pid": lambda b, total, seed, prof: pacing.PIDPacer(b, total, clock=_zero, kp=10.0, ki=50.0),
    "adaptive": lambda b, total, seed, prof: pacing.AdaptivePacer(b, prof, total, clock=_zero,
                                                                  kp=10.0, ki=50.0),
}

_METRICS = (
    ("slo", "within ±5% of budget"),
    ("slo_paced", "±5% and bidding at 23:00"),
    ("overspend", "overspend"),
    ("hourly_dev", "mean |hourly dev| (pp)"),
    ("exhaust_h", "median budget-out time (h)"),
    ("reach", "requests reached"),
    ("last4h", "last-4h spend / budget"),
    ("final", "mean final spend / budget"),
)


@dataclass(frozen=True, eq=False)
class PacingSimResult:
    """What :func:`simulate_pacing` measured (numpy arrays; per pacer dicts keyed by name).

    ``metrics[p]``: ``slo`` share of campaigns whose final spend is within ±5% of the budget;
    ``slo_paced`` the same, counting only campaigns the hard cap had not yet stopped at 23:00;
    ``overspend`` total spend above budgets (must be 0); ``overspent`` campaigns above budget;
    ``hourly_dev`` mean over campaigns and the 24 hour marks of
    |spent/budget − target curve| in percentage points (``hourly_dev_p95`` its 95th
    percentile over campaigns); ``exhaust_h`` median hour at which the hard cap first refused
    a campaign's bid (24 = never); ``exhausted_by_20h`` share refused before 20:00; ``reach``
    mean share of a campaign's requests that came while it could still afford its bid;
    ``last4h`` mean spend between 20:00 and 24:00 as a share of the budget (the traffic's
    share of those hours is ``traffic_last4h``); ``final`` mean final spend / budget.
    ``curves[p]``: spent / budget per campaign at ``snap_hours`` (shape (snapshots, C)).
    """

    pacers: tuple[str, ...]
    metrics: dict[str, dict[str, float]]
    curves: dict[str, np.ndarray]
    final_spend: dict[str, np.ndarray]
    exhaust_hour: dict[str, np.ndarray]
    reach: dict[str, np.ndarray]
    budget: np.ndarray
    snap_hours: np.ndarray
    traffic_share: np.ndarray
    targets: dict[str, np.ndarray]
    params: dict[str, Any] = field(default_factory=dict)

    def best(self) -> str:
        """The pacer with the highest paced SLO (ties: lower hourly deviation)."""
        return max(self.pacers, key=lambda p: (self.metrics[p]["slo_paced"],
                                               -self.metrics[p]["hourly_dev"]))

    def table(self) -> str:
        """The per-pacer report as a text table."""
        head = ["pacer"] + [label for _, label in _METRICS]
        rows = [head]
        for p in self.pacers:
            m = self.metrics[p]
            rows.append([
                p, f"{m['slo']:.1%}", f"{m['slo_paced']:.1%}", f"{m['overspend']:.2f}",
                f"{m['hourly_dev']:.1f}", f"{m['exhaust_h']:.1f}", f"{m['reach']:.1%}",
                f"{m['last4h']:.1%}", f"{m['final']:.1%}",
            ])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                         for r in rows)

    def summary(self) -> str:
        """A few lines: the setup, the table, and which pacer reached the SLO."""
        pr = self.params
        lines = [
            f"pacing day: {pr['campaigns']:,} campaigns in {pr['segments']} segments, "
            f"{pr['ticks']:,} rounds of {pr['total'] / pr['ticks']:g} s, "
            f"{pr['auctions']:,} auctions/pacer; budgets {self.budget.min():.3g}"
            f"..{self.budget.max():.3g} ({self.budget.max() / self.budget.min():.0f}x); "
            f"unpaced bidding would spend them by {pr['unpaced_exhaust_h']:.1f} h (median)",
            self.table(),
            f"traffic share of 20-24 h: {pr['traffic_last4h']:.1%}; SLO bar: 95% of campaigns "
            "within ±5% of budget, no overspend",
        ]
        best = self.best()
        m = self.metrics[best]
        lines.append(
            f"best: {best}: {m['slo']:.1%} of campaigns within ±5% of budget (the 95% SLO: "
            f"{'met' if m['slo'] >= 0.95 else 'MISSED'}), {m['slo_paced']:.1%} within ±5% and "
            f"still bidding at 23:00 ({'met' if m['slo_paced'] >= 0.95 else 'MISSED'}), "
            f"overspend {m['overspend']:g}"
        )
        simple = [p for p in self.pacers if p not in ("pid", "adaptive")]
        if simple:
            lines.append(
                "the hard cap lands every pacer near its budget, so the ±5% share alone does not "
                "separate them; the budget-out time does: "
                + ", ".join(f"{p} {self.metrics[p]['exhaust_h']:.1f} h" for p in self.pacers)
            )
        return "\n".join(lines)

    def to_csv(self, path: str | Path) -> Path:
        """Median spent/budget per pacer at each snapshot (hours, traffic share, one column
        per pacer), then one line per pacer with its metrics after a blank line."""
        path = Path(path)
        cols = ["hour", "traffic_share"] + [f"{p}_median" for p in self.pacers]
        table = np.column_stack(
            [self.snap_hours, self.traffic_share]
            + [np.median(self.curves[p], axis=1) for p in self.pacers]
        )
        with path.open("w") as f:
            f.write(",".join(cols) + "\n")
            for row in table:
                f.write(",".join(f"{x:.6g}" for x in row) + "\n")
            f.write("\n")
            keys = [k for k, _ in _METRICS]
            f.write("pacer," + ",".join(keys) + "\n")
            for p in self.pacers:
                f.write(p + "," + ",".join(f"{self.metrics[p][k]:.6g}" for k in keys) + "\n")
        return path

    def plot(self, path: str | Path) -> Path:
        """Spend curves: per pacer the median and 10-90% band of spent/budget over the day,
        against its target curve and the traffic's cumulative share (PNG, Agg)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = Path(path)
        n = len(self.pacers)
        cols = 3
        rows = math.ceil(n / cols)
        fig = Figure(figsize=(10, 3.1 * rows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
        x = self.snap_hours
        for ax, p in zip(axes, self.pacers, strict=False):
            c = self.curves[p]
            lo, med, hi = np.quantile(c, [0.1, 0.5, 0.9], axis=1)
            ax.fill_between(x, lo, hi, color="tab:blue", alpha=0.25, lw=0, label="10-90%")
            ax.plot(x, med, color="tab:blue", lw=1.6, label="median")
            ax.plot(x, self.targets[p], color="k", lw=0.9, ls="--", label="target")
            ax.plot(x, self.traffic_share, color="tab:orange", lw=0.9, ls=":",
                    label="traffic share")
            m = self.metrics[p]
            out = "never" if m["exhaust_h"] >= 24.0 else f"{m['exhaust_h']:.1f} h"
            ax.set_title(f"{p}\n{m['slo']:.0%} within ±5%, median budget-out {out}",
                         fontsize=8.5)
            ax.set_xlim(0, 24)
            ax.set_ylim(0, 1.05)
            ax.set_xticks(range(0, 25, 4))
            ax.grid(alpha=0.3)
        for ax in axes[n:]:
            ax.set_visible(False)
        axes[0].legend(fontsize=7, loc="upper left")
        for ax in axes[::cols]:
            ax.set_ylabel("spent / budget")
        for ax in axes[max(0, n - cols):n]:
            ax.set_xlabel("hour of day")
        fig.suptitle(f"spend curves, {self.params['campaigns']:,} campaigns "
                     f"(seed {self.params['seed']})", fontsize=10)
        fig.savefig(path, dpi=72)
        return path


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise InvalidInputError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
    return int(value)


def _day_draws(rng: np.random.Generator, c: int, a_max: int) -> tuple[np.ndarray, ...]:
    """One round's random draws; the same count every round, whatever the pacer does."""
    return rng.random(c), rng.random(c), rng.standard_normal(c), rng.standard_normal(a_max)


def simulate_pacing(
    *,
    campaigns: int = 1000,
    segments: int = 10,
    ticks: int = 2880,
    total: float = 86_400.0,
    bidders_per_auction: float = 3.0,
    price_spread: float = 10.0,
    reserve: float = 0.05,
    pacers: tuple[str, ...] | list[str] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> PacingSimResult:
    """Run the day once per pacer (all of :data:`PACERS` by default); see the module docstring.

    Every argument is keyword-only. ``progress=True`` shows a tqdm bar over rounds × pacers.
    """
    campaigns = _int("campaigns", campaigns, 1, 1_000_000)
    segments = _int("segments", segments, 1, campaigns)
    ticks = _int("ticks", ticks, 24, 10_000_000)
    seed = _int("seed", seed, 0, 2**63 - 1)
    for name, v in (("total", total), ("bidders_per_auction", bidders_per_auction),
                    ("price_spread", price_spread)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InvalidInputError(f"{name} must be a finite number > 0, got {v!r}")
    if not (isinstance(reserve, (int, float)) and math.isfinite(reserve) and reserve >= 0):
        raise InvalidInputError(f"reserve must be a finite number >= 0, got {reserve!r}")
    names = tuple(PACERS) if pacers is None else tuple(pacers)
    for p in names:
        if p not in PACERS:
            raise InvalidInputError(f"unknown pacer {p!r}; choose from {', '.join(PACERS)}")

    c = campaigns
    rng = np.random.default_rng([seed, 1])
    seg = np.arange(c) % segments
    ext_level = np.exp(np.linspace(0.0, math.log(price_spread), segments)) * 0.5
    level = ext_level[seg]
    reach = np.exp(rng.uniform(math.log(0.3), math.log(0.9), c))
    ctr = rng.uniform(0.01, 0.03, c)
    cvr = rng.uniform(0.02, 0.08, c)
    value = level * rng.uniform(0.8, 1.25, c) / (ctr * cvr)
    share = rng.uniform(0.35, 0.6, c)
    # a week of (noisy) per-minute traffic history for the adaptive pacer
    minutes = (np.arange(1440) + 0.5) / 60.0
    history = rng.poisson(traffic_shape(minutes)[None, :] * rng.uniform(400, 600, (7, 1)))
    profile = pacing.learn_profile(history, buckets=24)

    dt = total / ticks
    hours = (np.arange(ticks) + 0.5) * dt / 3600.0 * (24.0 * 3600.0 / total)
    shape = traffic_shape(hours)
    seg_reach = np.bincount(seg, weights=reach, minlength=segments)
    a_seg_max = np.maximum(1, np.ceil(seg_reach / bidders_per_auction)).astype(np.int64)
    a_max = int(a_seg_max.sum())
    n_snap = 97
    snap_ticks = np.rint(np.linspace(0, ticks, n_snap)).astype(np.int64)
    snap_hours = snap_ticks * dt / total * 24.0
    cum_traffic = np.concatenate([[0.0], np.cumsum(shape)]) / shape.sum()
    traffic_share = cum_traffic[snap_ticks]

    def run(name: str | None, budget: np.ndarray, bar: Any) -> dict[str, Any]:
        draws = np.random.default_rng([seed, 2])
        pacer: Any = None if name is None else PACERS[name](budget, total, seed, profile)
        spent = np.zeros(c)
        first_refusal = np.full(c, np.inf)
        seen = np.zeros(c)
        reached = np.zeros(c)
        curve = np.zeros((n_snap, c))
        k_snap = 1
        auctions = 0
        stateful = isinstance(pacer, pacing.PIDPacer)
        has_mult = hasattr(pacer, "multiplier")
        for t in range(ticks):
            u_part, u_auc, z_ctr, z_ext = _day_draws(draws, c, a_max)
            elapsed = t * dt
            part = u_part < reach * shape[t]
            mult = pacer.multiplier(spent, budget, elapsed) if has_mult else 1.0
            p_ctr = np.minimum(ctr * np.exp(0.3 * z_ctr - 0.045), 1.0)
            bid = pacing.value_bid(p_ctr, cvr, value, 1.0, mult)
            if pacer is None:
                ok = part
            else:
                ok = part & pacer.should_bid(spent, budget, bid, elapsed)
                can = spent + bid <= budget
                seen += part
                reached += part & can
                fresh = part & ~can & np.isinf(first_refusal)
                first_refusal[fresh] = elapsed
            # auctions of this round, per segment
            a_seg = np.maximum(1, np.rint(a_seg_max * shape[t])).astype(np.int64)
            a_off = np.concatenate([[0], np.cumsum(a_seg)])
            who = np.flatnonzero(ok)
            if who.size:
                auc = a_off[seg[who]] + np.minimum(
                    (u_auc[who] * a_seg[seg[who]]).astype(np.int64), a_seg[seg[who]] - 1)
                n_auc = int(a_off[-1])
                per = np.bincount(auc, minlength=n_auc)
                order = np.argsort(auc, kind="stable")
                who_s, auc_s = who[order], auc[order]
                offsets = np.concatenate([[0], np.cumsum(per + 1)])
                cstart = np.concatenate([[0], np.cumsum(per)])[:-1]
                pos = offsets[auc_s] + (np.arange(who.size) - cstart[auc_s])
                prices = np.empty(int(offsets[-1]))
                owner = np.full(prices.shape[0], -1, dtype=np.int64)
                prices[pos] = bid[who_s]
                owner[pos] = who_s
                seg_of_auction = np.repeat(np.arange(segments), a_seg)
                prices[offsets[1:] - 1] = ext_level[seg_of_auction] * np.exp(0.5 * z_ext[:n_auc])
                winner, price = clear_tick(offsets, prices, reserve)
                won = winner >= 0
                w_owner = owner[winner[won]]
                ours = w_owner >= 0
                spent[w_owner[ours]] += price[won][ours]
                auctions += n_auc
            if stateful:
                pacer.update(spent, (t + 1) * dt)
            while k_snap < n_snap and snap_ticks[k_snap] == t + 1:
                curve[k_snap] = spent / np.where(np.isfinite(budget) & (budget > 0), budget, 1.0)
                k_snap += 1
            if bar is not None:
                bar.update(1)
        return dict(spent=spent, first_refusal=first_refusal, curve=curve, auctions=auctions,
                    reach=np.where(seen > 0, reached / np.maximum(seen, 1), 1.0))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=ticks * (len(names) + 1), desc="pacing day", unit="round")
    try:
        pilot = run(None, np.full(c, np.inf), bar)
        budget = share * pilot["spent"]
        budget = np.where(budget > 0, budget, 1.0)  # a campaign that never won gets a token budget
        # when unpaced bidding would have spent each budget: the pilot's curve crosses the share
        unpaced_h = np.array([
            snap_hours[min(np.searchsorted(pilot["curve"][:, i] / max(pilot["spent"][i], 1e-300),
                                           share[i]), n_snap - 1)]
            for i in range(c)
        ])
        results = {p: run(p, budget, bar) for p in names}
    finally:
        if bar is not None:
            bar.close()

    hour_idx = np.flatnonzero(np.isin(snap_ticks, np.rint(np.arange(25) * ticks / 24)))[1:]
    last4 = int(np.argmin(np.abs(snap_hours - 20.0)))
    at23 = 23.0 * 3600.0 * total / 86_400.0
    metrics: dict[str, dict[str, float]] = {}
    targets: dict[str, np.ndarray] = {}
    for p in names:
        r = results[p]
        pacer = PACERS[p](budget[:1], total, seed, profile)
        if isinstance(pacer, pacing.PIDPacer):
            target = pacer.target(snap_hours / 24.0 * total)
        else:
            target = snap_hours / 24.0
        targets[p] = np.asarray(target)
        final = r["spent"] / budget
        within = np.abs(final - 1.0) <= 0.05
        dev = np.abs(r["curve"][hour_idx] - targets[p][hour_idx, None]) * 100.0
        refusal_h = np.minimum(r["first_refusal"], total) / total * 24.0
        over = np.maximum(r["spent"] - budget, 0.0)
        metrics[p] = dict(
            slo=float(within.mean()),
            slo_paced=float((within & (r["first_refusal"] >= at23)).mean()),
            overspend=float(over.sum()),
            overspent=float((over > 0).sum()),
            hourly_dev=float(dev.mean()),
            hourly_dev_p95=float(np.quantile(dev.mean(axis=0), 0.95)),
            exhaust_h=float(np.median(refusal_h)),
            exhausted_by_20h=float((refusal_h < 20.0).mean()),
            reach=float(r["reach"].mean()),
            last4h=float((r["curve"][-1] - r["curve"][last4]).mean()),
            final=float(final.mean()),
        )
    params = dict(
        campaigns=c, segments=segments, ticks=ticks, total=total,
        bidders_per_auction=bidders_per_auction, price_spread=price_spread, reserve=reserve,
        seed=seed, auctions=results[names[0]]["auctions"] if names else 0,
        unpaced_exhaust_h=float(np.median(unpaced_h)),
        traffic_last4h=float(traffic_share[-1] - traffic_share[last4]),
    )
    return PacingSimResult(
        pacers=names, metrics=metrics,
        curves={p: results[p]["curve"] for p in names},
        final_spend={p: results[p]["spent"] for p in names},
        exhaust_hour={p: np.minimum(results[p]["first_refusal"], total) / total * 24.0
                      for p in names},
        reach={p: results[p]["reach"] for p in names},
        budget=budget, snap_hours=snap_hours, traffic_share=traffic_share, targets=targets,
        params=params,
    )

