"""First-price auctions in the symmetric equilibrium, and a bidder learning to shade in them.

:func:`simulate_first_price` draws what a bidder sees against ``N - 1`` rivals who each bid
``(N - 1) / N`` times a value uniform on [0, 1]; the ``equilibrium_*`` functions are the exact
theory to hold a learned landscape to; :func:`run_shading` is a bidder learning online with a
:class:`~rtbcore.BidShader`; :func:`plot_shading` draws learned landscapes against the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from rtbcore.errors import InvalidInputError
from rtbcore.shading import BidLandscape, BidShader, Estimator, _check_nonneg, _float_array

__all__ = [
    "FirstPriceOutcomes",
    "simulate_first_price",
    "equilibrium_surplus",
    "equilibrium_win_probability",
    "optimal_equilibrium_bid",
    "ShadingRun",
    "run_shading",
    "plot_shading",
]


@dataclass(frozen=True)
class FirstPriceOutcomes:
    """What a bidder saw in simulated first-price auctions, plus the hidden truth."""

    bids: np.ndarray
    won: np.ndarray
    price: np.ndarray  # what a win cost (our bid); NaN on losses
    min_to_win: np.ndarray  # the highest competing bid when reported, else NaN
    competing: np.ndarray  # the highest competing bid (hidden from the bidder)


def simulate_first_price(
    our_bids: npt.ArrayLike | Callable[[np.random.Generator, int], np.ndarray],
    n_auctions: int | None = None,
    n_bidders: int = 5,
    report_min_to_win: Literal["never", "losses", "always"] = "losses",
    seed: int | None = None,
) -> FirstPriceOutcomes:
    """First-price auctions against ``n_bidders - 1`` rivals in the symmetric equilibrium.

    Each rival has a value uniform on [0, 1] and bids ``(N - 1) / N * value``, so the highest
    competing bid D has P(D < b) = (b N / (N - 1)) ** (N - 1) on [0, (N - 1) / N]. Ties go
    to the rival. ``our_bids`` is an array, or a function ``(rng, n) -> bids``.
    """
    if not isinstance(n_bidders, int) or n_bidders < 2:
        raise InvalidInputError(f"n_bidders: must be an int >= 2, got {n_bidders!r}")
    if report_min_to_win not in ("never", "losses", "always"):
        raise InvalidInputError(f"report_min_to_win: unknown mode {report_min_to_win!r}")
    rng = np.random.default_rng(seed)
    if callable(our_bids):
        if n_auctions is None:
            raise InvalidInputError("n_auctions: required when our_bids is a function")
        b = _float_array("our_bids", our_bids(rng, n_auctions))
    else:
        b = _float_array("our_bids", our_bids)
    _check_nonneg("our_bids", b)
    n = b.shape[0]
    rivals = rng.random((n, n_bidders - 1)).max(axis=1)
    d = (n_bidders - 1) / n_bidders * rivals
    won = b > d
    price = np.where(won, b, np.nan)
    if report_min_to_win == "always":
        mtw = d.copy()
    elif report_min_to_win == "losses":
        mtw = np.where(won, np.nan, d)
    else:
        mtw = np.full(n, np.nan)
    return FirstPriceOutcomes(b, won, price, mtw, d)


def equilibrium_win_probability(bids: npt.ArrayLike, n_bidders: int = 5) -> np.ndarray:
    """The true P(win | b) against n - 1 equilibrium rivals: (b N / (N - 1)) ** (N - 1), capped."""
    b = np.asarray(bids, dtype=np.float64)
    c = (n_bidders - 1) / n_bidders
    return np.clip(b / c, 0.0, 1.0) ** (n_bidders - 1)


def equilibrium_surplus(
    values: npt.ArrayLike, bids: npt.ArrayLike, n_bidders: int = 5
) -> np.ndarray:
    """Expected surplus (v - b) * P(win | b) against n - 1 equilibrium rivals."""
    v = np.asarray(values, dtype=np.float64)
    return (v - np.asarray(bids, dtype=np.float64)) * equilibrium_win_probability(bids, n_bidders)


def optimal_equilibrium_bid(values: npt.ArrayLike, n_bidders: int = 5) -> np.ndarray:
    """The true best response for values in [0, 1]: (N - 1) / N * v (surplus v ** N / N)."""
    return (n_bidders - 1) / n_bidders * np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class ShadingRun:
    """Per-round results of ``run_shading``: a bidder shading and learning online."""

    realized: np.ndarray  # realized surplus per round (sum over its auctions)
    optimum: np.ndarray  # expected surplus of the true best response on the same values
    win_rate: np.ndarray
    bid_ratio: np.ndarray  # median bid / value per round (theory: (N - 1) / N)

    @property
    def share(self) -> np.ndarray:
        """Realized surplus as a share of the optimum's, per round."""
        return self.realized / self.optimum


def run_shading(
    rounds: int = 20,
    auctions_per_round: int = 5_000,
    n_bidders: int = 5,
    report_min_to_win: Literal["never", "losses", "always"] = "never",
    explore: float = 0.1,
    estimator: Estimator = "empirical",
    seed: int | None = None,
    progress: bool = False,
) -> ShadingRun:
    """A bidder with values uniform on [0, 1] shades with a BidShader that starts knowing nothing
    and learns after every round from what the exchange reports, against N - 1 rivals in the
    symmetric equilibrium. The first round bids truthfully-shaded from an empty landscape."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    land = BidLandscape(estimator=estimator)
    shader = BidShader(land, explore=explore, explore_width=0.5, seed=int(rng.integers(1 << 63)))
    cols: dict[str, list[float]] = {"realized": [], "optimum": [], "win_rate": [], "ratio": []}
    for _ in tqdm(range(rounds), desc="shading run", disable=not progress, leave=False):
        v = rng.random(auctions_per_round)
        b = shader.bid(v)
        out = simulate_first_price(
            b, n_bidders=n_bidders, report_min_to_win=report_min_to_win,
            seed=int(rng.integers(1 << 63)),
        )  # fmt: skip
        cols["realized"].append(float(np.where(out.won, v - b, 0.0).sum()))
        cols["optimum"].append(float((v**n_bidders / n_bidders).sum()))
        cols["win_rate"].append(float(out.won.mean()))
        cols["ratio"].append(float(np.median(b[v > 0.05] / v[v > 0.05])))
        shader.observe(out.bids, out.won, out.price, out.min_to_win)
    return ShadingRun(
        np.array(cols["realized"]), np.array(cols["optimum"]),
        np.array(cols["win_rate"]), np.array(cols["ratio"]),
    )  # fmt: skip


def plot_shading(path: str, seed: int = 7, n: int = 10_000) -> None:
    """Save a two-panel PNG: learned P(win | bid) against the truth, and the shaded bids."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = simulate_first_price(lambda r, k: r.random(k), n, report_min_to_win="never", seed=seed)
    b = np.linspace(0, 1, 401)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(b, equilibrium_win_probability(b), "k", lw=2, label="truth (b / 0.8)^4")
    ax2.plot(b, optimal_equilibrium_bid(b), "k", lw=2, label="optimum 0.8 v")
    styles: tuple[tuple[Estimator, str], ...] = (
        ("empirical", "C0"),
        ("lognormal", "C1--"),
        ("naive", "C3:"),
    )
    for est, style in styles:
        land = BidLandscape(estimator=est)
        land.observe(out.bids, out.won, out.price, out.min_to_win)
        ax1.plot(b, land.win_probability(b), style, label=est)
        ax2.plot(b, land.optimal_bid(b), style, label=est)
    ax1.set(xlabel="bid", ylabel="P(win | bid)", title=f"learned from {n} win/loss outcomes")
    ax2.set(xlabel="value", ylabel="shaded bid", title="argmax (v - b) P(win | b)")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

