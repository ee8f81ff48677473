"""The credit-pool simulation behind ``rtbcore simulate credit``.

:func:`credit_model` is a discrete-time model of a bidder using a :class:`rtbcore.CreditPool`
for a day; :func:`credit_preset` runs one of the three scenarios of :data:`CREDIT_PRESETS`
(``boom-bust``, ``stable``, ``decoupled``).

The model, tick by tick (tick ``t`` covers ``[t * dt, (t + 1) * dt)``):

1. ``pool.tick(t * dt)`` applies the bumps that have come due;
2. the win and loss notices of the bids made ``notice_delay`` ticks ago arrive and are credited,
   unless their arrival time falls in the ``outage`` window ``[start, end)``: those are lost for
   good (the exchange stopped sending them; the spend is real but unseen);
3. ``credits`` is sampled: what the bidder can spend in this tick;
4. requests arrive: ``traffic = round(rps(t) * dt)`` with ``rps`` a sinusoid between
   ``trough_rps`` (at ``trough_at``) and ``peak_rps`` (half a ``period`` later); the bidder wants
   to bid on a share ``bid_rate * (1 + bid_jitter * T)`` of them (``T`` triangular on [-1, 1]
   with mode 0, one draw per tick, clipped to [0, 1]) and submits what ``pool.try_bids`` grants;
5. a share ``win_rate * (1 + win_jitter * T')`` of the submitted bids win (fresh ``T'``); counts
   are rounded stochastically, so they are unbiased and never negative.

All random draws are made up front from ``numpy.random.default_rng(seed)`` in a fixed order
that does not depend on the parameters, so two runs with the same seed differ only where their
parameters make them differ (the decoupled preset is the stable one plus the outage, draw for
draw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtbcore.credit import CreditPool
from rtbcore.errors import InvalidInputError

__all__ = ["CREDIT_PRESETS", "CreditSeries", "credit_model", "credit_preset"]

_COLUMNS = (
    "time",
    "traffic",
    "wanted",
    "bids",
    "refused",
    "wins",
    "notices",
    "lost_notices",
    "credits",
    "credits_end",
    "bumps",
)

#: The three scenarios of the issue. Shared: 30 simulated minutes in 1 s ticks, traffic rising
#: from 400 requests/s at t = 0 to 1000 at t = 900 s and back, a bid on every request,
#: C = Cm = 1000, B = 1, win rate 0.1 (+-10 % triangular jitter), a bump of 1000 every 60 s.
CREDIT_PRESETS: dict[str, dict[str, Any]] = {
    # W = 1: each bid costs 1 and brings back 0.1 on average; bidding is shut off most of the time.
    "boom-bust": dict(
        duration=1800.0, dt=1.0, peak_rps=1000.0, trough_rps=400.0, period=1800.0, trough_at=0.0,
        bid_rate=1.0, bid_jitter=0.0, win_rate=0.1, win_jitter=0.1,
        initial=1000, cap=1000, bid_cost=1, win_credit=1, loss_credit=0,
        bump=1000, bump_every=60.0, outage=None,
    ),
    # W = 10: a bid pays for itself on average; the pool never runs dry.
    "stable": dict(
        duration=1800.0, dt=1.0, peak_rps=1000.0, trough_rps=400.0, period=1800.0, trough_at=0.0,
        bid_rate=1.0, bid_jitter=0.0, win_rate=0.1, win_jitter=0.1,
        initial=1000, cap=1000, bid_cost=1, win_credit=10, loss_credit=0,
        bump=1000, bump_every=60.0, outage=None,
    ),
    # stable, but no win notices arrive from t = 900 s to 1200 s.
    "decoupled": dict(
        duration=1800.0, dt=1.0, peak_rps=1000.0, trough_rps=400.0, period=1800.0, trough_at=0.0,
        bid_rate=1.0, bid_jitter=0.0, win_rate=0.1, win_jitter=0.1,
        initial=1000, cap=1000, bid_cost=1, win_credit=10, loss_credit=0,
        bump=1000, bump_every=60.0, outage=(900.0, 1200.0),
    ),
}


@dataclass(frozen=True, eq=False)  # arrays: compare columns with numpy, not ==
class CreditSeries:
    """The time series of one :func:`credit_model` run: one entry per tick (numpy arrays).

    ``time`` tick start (s); ``traffic`` requests; ``wanted`` bids the bidder wanted to make;
    ``bids`` bids submitted (granted by the pool); ``refused`` = wanted - bids; ``wins`` wins
    among the tick's bids; ``notices`` win notices credited in the tick; ``lost_notices`` win
    notices that were due in the tick but never arrived; ``credits`` credits available when the
    tick's bids were decided (after bumps and notices); ``credits_end`` after the bids;
    ``bumps`` bumps applied at the start of the tick.
    """

    time: np.ndarray
    traffic: np.ndarray
    wanted: np.ndarray
    bids: np.ndarray
    refused: np.ndarray
    wins: np.ndarray
    notices: np.ndarray
    lost_notices: np.ndarray
    credits: np.ndarray
    credits_end: np.ndarray
    bumps: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None

    def __len__(self) -> int:
        return len(self.time)

    def columns(self) -> dict[str, np.ndarray]:
        """The series by column name, in CSV order."""
        return {name: getattr(self, name) for name in _COLUMNS}

    def to_csv(self, path: str | Path) -> Path:
        """Write the series as CSV (one row per tick, a header line); returns the path."""
        path = Path(path)
        cols = self.columns()
        table = np.column_stack([cols[c].astype(np.float64) for c in _COLUMNS])
        fmt = ["%.6g"] + ["%d"] * 7 + ["%.6f", "%.6f", "%d"]
        np.savetxt(path, table, delimiter=",", header=",".join(_COLUMNS), comments="", fmt=fmt)
        return path

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Plot traffic and bids, wins and notices, and credits against time (PNG, Agg)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = Path(path)
        dt = float(self.params.get("dt", 1.0))
        t = self.time / 60.0
        fig = Figure(figsize=(9, 6.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
        ax1.plot(t, self.traffic / dt, color="0.6", lw=1, label="requests/s")
        ax1.plot(t, self.bids / dt, color="tab:blue", lw=1, label="bids submitted/s")
        ax1.set_ylabel("per second")
        ax1.legend(loc="upper right", fontsize=8)
        ax2.plot(t, self.wins / dt, color="tab:green", lw=1, label="wins/s (truth)")
        ax2.plot(t, self.notices / dt, color="tab:orange", lw=1, ls="--", label="win notices/s")
        ax2.set_ylabel("per second")
        ax2.legend(loc="upper right", fontsize=8)
        ax3.plot(t, self.credits, color="tab:purple", lw=1, label="credits available")
        ax3.axhline(float(self.params.get("cap", np.nan)), color="0.7", lw=0.8, ls=":")
        ax3.set_ylabel("credits")
        ax3.set_xlabel("time (minutes)")
        ax3.set_ylim(bottom=0)
        ax3.legend(loc="lower left", fontsize=8)
        outage = self.params.get("outage")
        for ax in (ax1, ax2, ax3):
            if outage is not None:
                ax.axvspan(outage[0] / 60.0, outage[1] / 60.0, color="tab:red", alpha=0.12)
            ax.grid(alpha=0.3)
        if title is None:
            name = self.preset or "credit_model"
            title = f"credit pool: {name}" + (
                f" (no win notices {outage[0]:g}-{outage[1]:g} s)" if outage is not None else ""
            )
        fig.suptitle(title)
        fig.savefig(path, dpi=90)
        return path

    def summary(self) -> str:
        """A few lines saying what happened."""
        dt = float(self.params.get("dt", 1.0))
        wanted, bids = int(self.wanted.sum()), int(self.bids.sum())
        dry = int(np.count_nonzero((self.wanted > 0) & (self.bids < 0.1 * self.wanted)))
        lines = [
            f"credit pool {self.preset or 'model'}: {len(self)} ticks of {dt:g} s; "
            f"{bids:,} of {wanted:,} wanted bids submitted ({bids / max(wanted, 1):.1%}); "
            f"bidding shut off (<10% granted) in {dry} ticks ({dry / max(len(self), 1):.1%}); "
            f"credits available {self.credits.min():g}..{self.credits.max():g}",
        ]
        outage = self.params.get("outage")
        if outage is not None:
            lines.extend(_outage_story(self, outage, dt))
        return "\n".join(lines)


def _outage_story(r: CreditSeries, outage: tuple[float, float], dt: float) -> list[str]:
    start, end = outage
    every = float(r.params.get("bump_every", math.inf))
    before = (r.time >= start - 60.0) & (r.time < start)
    pre = float(r.bids[before].mean()) if before.any() else float("nan")
    lines = [f"  before the outage: {pre / dt:,.0f} bids/s; win notices stop at t={start:g} s"]
    after = np.flatnonzero((r.time >= start) & (r.bids <= 0.1 * pre))
    if after.size:
        lines.append(
            f"  bids fell below 10% of that at t={r.time[after[0]]:g} s "
            f"({r.time[after[0]] - start:g} s into the outage)"
        )
    inside = (r.time >= start) & (r.time < end)
    resumed = r.time[inside & (r.bumps > 0) & (r.bids > 0)]
    if resumed.size:
        lines.append(
            f"  bidding resumed briefly at each bump: t={', '.join(f'{x:g}' for x in resumed)} s; "
            f"{int(r.bids[inside].sum()):,} bids in the outage, "
            f"{int(r.lost_notices.sum()):,} win notices lost"
        )
    back = np.flatnonzero((r.time >= end) & (r.bids >= 0.9 * r.wanted) & (r.wanted > 0))
    if back.size and math.isfinite(every):
        lines.append(
            f"  win notices resume at t={end:g} s; full bidding again at t={r.time[back[0]]:g} s "
            f"({r.time[back[0]] - end:g} s later; bump period {every:g} s)"
        )
    return lines


_MAX_TICKS = 10_000_000


def _real(name: str, value: Any, *, lo: float = 0.0, hi: float = math.inf,
          lo_open: bool = False, finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{name} must be a real number, got {value!r}")
    x = float(value)
    if finite and not math.isfinite(x):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    if math.isnan(x) or x < lo or x > hi or (lo_open and x == lo):
        bound = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise InvalidInputError(f"{name} must be in {bound}, got {value!r}")
    return x


def credit_model(
    *,
    duration: float = 86_400.0,
    dt: float = 1.0,
    peak_rps: float = 1000.0,
    trough_rps: float = 400.0,
    period: float = 86_400.0,
    trough_at: float = 4 * 3600.0,
    bid_rate: float = 1.0,
    bid_jitter: float = 0.0,
    win_rate: float = 0.1,
    win_jitter: float = 0.1,
    initial: float = 1000,
    cap: float = 1000,
    bid_cost: float = 1,
    win_credit: float = 10,
    loss_credit: float = 0,
    bump: float = 1000,
    bump_every: float = 60.0,
    outage: tuple[float, float] | None = None,
    notice_delay: int = 1,
    seed: int = 0,
    progress: bool = False,
    preset: str | None = None,
) -> CreditSeries:
    """Simulate a bidder using a :class:`CreditPool` for ``duration`` seconds in ticks of ``dt``.

    See the module docstring for the model. Every argument is keyword-only; the defaults are a
    24 h day (trough at 04:00) with the pool of the ``stable`` preset. ``outage=(start, end)``
    loses every notice due in ``[start, end)``. ``notice_delay`` is in ticks (>= 1).
    ``progress=True`` shows a tqdm bar. Bad parameters raise
    :class:`~rtbcore.errors.InvalidInputError` naming the parameter.
    """
    duration = _real("duration", duration, lo=0.0, lo_open=True, hi=1e9)
    dt = _real("dt", dt, lo=0.0, lo_open=True, hi=duration)
    peak_rps = _real("peak_rps", peak_rps, hi=1e12)
    trough_rps = _real("trough_rps", trough_rps, hi=peak_rps)
    period = _real("period", period, lo=0.0, lo_open=True)
    trough_at = _real("trough_at", trough_at, lo=-math.inf)
    bid_rate = _real("bid_rate", bid_rate, hi=1.0)
    bid_jitter = _real("bid_jitter", bid_jitter, hi=1.0)
    win_rate = _real("win_rate", win_rate, hi=1.0)
    win_jitter = _real("win_jitter", win_jitter, hi=1.0)
    if outage is not None:
        try:
            o_start, o_end = outage
        except (TypeError, ValueError):
            msg = f"outage must be (start, end) or None, got {outage!r}"
            raise InvalidInputError(msg) from None
        o_start = _real("outage[0]", o_start, lo=-math.inf)
        o_end = _real("outage[1]", o_end, lo=o_start, finite=False)  # inf: never resume
        outage = (o_start, o_end)
    if isinstance(notice_delay, bool) or not isinstance(notice_delay, (int, np.integer)) \
            or notice_delay < 1:
        raise InvalidInputError(f"notice_delay must be an int >= 1 (ticks), got {notice_delay!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed must be an int >= 0, got {seed!r}")
    # The pool validates its own parameters (InvalidInputError naming them).
    pool = CreditPool(initial, cap, bid_cost=bid_cost, win_credit=win_credit,
                      loss_credit=loss_credit, bump=bump, bump_every=bump_every,
                      clock=lambda: 0.0)

    n = int(math.ceil(duration / dt - 1e-9))
    if n > _MAX_TICKS:
        raise InvalidInputError(
            f"duration / dt = {n:,} ticks is more than the model runs ({_MAX_TICKS:,}); "
            "raise dt or shorten duration"
        )
    time = np.arange(n, dtype=np.float64) * dt
    rps = trough_rps + (peak_rps - trough_rps) * 0.5 * (
        1.0 - np.cos(2.0 * np.pi * (time - trough_at) / period)
    )
    traffic = np.rint(rps * dt).astype(np.int64)
    rng = np.random.default_rng(seed)
    bid_noise = rng.triangular(-1.0, 0.0, 1.0, n)
    win_noise = rng.triangular(-1.0, 0.0, 1.0, n)
    u_bid = rng.random(n)
    u_win = rng.random(n)
    bid_share = np.clip(bid_rate * (1.0 + bid_jitter * bid_noise), 0.0, 1.0)
    win_share = np.clip(win_rate * (1.0 + win_jitter * win_noise), 0.0, 1.0)
    wanted = np.minimum(np.floor(traffic * bid_share + u_bid), traffic).astype(np.int64)

    bids = np.zeros(n, np.int64)
    wins = np.zeros(n, np.int64)
    notices = np.zeros(n, np.int64)
    lost = np.zeros(n, np.int64)
    credits = np.zeros(n, np.float64)
    credits_end = np.zeros(n, np.float64)
    bumps = np.zeros(n, np.int64)

    ticks: Any = range(n)
    if progress:
        from tqdm.auto import tqdm

        ticks = tqdm(ticks, desc=f"credit {preset or 'model'}", unit="tick")
    for t in ticks:
        now = float(time[t])
        bumps[t] = pool.tick(now)
        src = t - notice_delay
        if src >= 0:
            w = int(wins[src])
            if outage is not None and outage[0] <= now < outage[1]:
                lost[t] = w
            else:
                if w:
                    pool.record_win(w)
                if bids[src] > w:
                    pool.record_loss(int(bids[src]) - w)
                notices[t] = w
        credits[t] = pool.credits
        b = pool.try_bids(int(wanted[t]))
        bids[t] = b
        wins[t] = min(int(math.floor(b * win_share[t] + u_win[t])), b)
        credits_end[t] = pool.credits

    params = dict(
        duration=duration, dt=dt, peak_rps=peak_rps, trough_rps=trough_rps, period=period,
        trough_at=trough_at, bid_rate=bid_rate, bid_jitter=bid_jitter, win_rate=win_rate,
        win_jitter=win_jitter, initial=initial, cap=cap, bid_cost=bid_cost,
        win_credit=win_credit, loss_credit=loss_credit, bump=bump, bump_every=bump_every,
        outage=outage, notice_delay=int(notice_delay), seed=int(seed),
    )
    return CreditSeries(
        time=time, traffic=traffic, wanted=wanted, bids=bids, refused=wanted - bids, wins=wins,
        notices=notices, lost_notices=lost, credits=credits, credits_end=credits_end,
        bumps=bumps, params=params, preset=preset,
    )


def credit_preset(name: str, **overrides: Any) -> CreditSeries:
    """Run the preset ``name`` (``boom-bust``, ``stable`` or ``decoupled``), with any
    :func:`credit_model` parameter overridden (e.g. ``seed=3``)."""
    if name not in CREDIT_PRESETS:
        raise InvalidInputError(
            f"unknown credit preset {name!r}; choose one of {', '.join(CREDIT_PRESETS)}"
        )
    return credit_model(**{**CREDIT_PRESETS[name], **overrides, "preset": name})

