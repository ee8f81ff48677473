"""Price floors: the optimal reserve of a bid distribution, floors learned online per segment,
and a replay that judges any floor policy on the same log of auctions.

- :func:`myerson_reserve`: the reserve r maximising ``r * (1 - F(r-))`` for the empirical
  distribution of ``samples`` (the optimal reserve of a second-price auction with symmetric
  bidders; posting r sells to the samples ``>= r``). Exact; ties go to the smaller reserve.
- :class:`FloorOptimizer`: per-segment floors (optionally per segment and bidder: *lazy*
  reserves) learned online from logged auctions, with decay, exploration and a minimum fill
  rate. :meth:`~FloorOptimizer.lookup` gives the floors of a batch of auctions (one gather);
  :meth:`~FloorOptimizer.update` learns from result rows.
- :class:`AuctionLog` and :func:`replay`: revenue, fill rate and per-segment tables of a floor
  policy (a number, per-segment floors, a function or a :class:`FloorOptimizer`) on a logged
  set of auctions, cleared with :func:`~rtbcore.clear_second_price` or
  :func:`~rtbcore.clear_first_price`.

Revenue and floors are per impression, in the unit of the bids (see ``docs/clearing.md``).
The full definitions are in ``docs/floors.md``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rtbcore._arrays import float_array as _float_array
from rtbcore._arrays import int_array as _int_array
from rtbcore._fastpath import _check_seed
from rtbcore._floors import _FloorState, _myerson, _top_two
from rtbcore._pool import output_pool
from rtbcore.clearing import AuctionBatch, ClearingResult, clear_first_price, clear_second_price
from rtbcore.errors import InvalidBidError, InvalidInputError

__all__ = [
    "myerson_reserve",
    "top_two",
    "FloorOptimizer",
    "AuctionLog",
    "ReplayResult",
    "replay",
    "DEFAULT_GRID",
]

#: The default candidate floors: 0 and 127 log-spaced floors from 0.01 to 100 (7.5% apart).
DEFAULT_GRID = np.concatenate([[0.0], np.geomspace(0.01, 100.0, 127)])


def _real(name: str, x: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
        raise InvalidInputError(f"{name}: expected a number, got {x!r}")
    v = float(x)
    if not (lo < v if lo_open else lo <= v) or not v <= hi:
        left = "(" if lo_open else "["
        raise InvalidInputError(f"{name} = {x!r}: must be in {left}{lo:g}, {hi:g}]")
    return v


def _count(name: str, x: Any, lo: int = 1) -> int:
    if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Integral) or x < lo:
        raise InvalidInputError(f"{name}: expected an int >= {lo}, got {x!r}")
    return int(x)


def myerson_reserve(samples: npt.ArrayLike) -> float:
    """The reserve r maximising ``r * P(X >= r)`` for the empirical distribution of ``samples``.

    With symmetric bidders whose values follow that distribution (and a regular one, such as
    the uniform or the log-normal with sigma <= 1), this is the optimal reserve of a
    second-price auction. Exact on the empirical distribution: the maximum is at a sample;
    ties go to the smaller reserve. Samples must be finite and >= 0 (at least one); all zeros
    give 0.0. Linear passes plus a sort of the few samples that can hold the optimum.
    """
    x = _float_array("samples", samples, bools=False)
    if x.ndim != 1 or x.shape[0] == 0:
        raise InvalidInputError(f"samples: expected a non-empty 1-D array, got shape {x.shape}")
    r, _, bad = _myerson(x)
    if bad >= 0:
        raise InvalidInputError(f"samples[{bad}] = {x[bad]!r}: must be finite and >= 0")
    return float(r)


def top_two(batch: AuctionBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(top, second, index)`` per auction of ``batch``: the top eligible bid's price (by
    adjusted bid, ties to the lower index), its second-price charge without a floor
    (``adj_2 / q_top``, 0 when alone) and its bid index (-1 when no bid has a valid price >
    0; top and second are then 0). The batch's reserve is ignored. Invalid bids raise
    :class:`~rtbcore.errors.InvalidBidError`."""
    if not isinstance(batch, AuctionBatch):
        raise InvalidInputError(f"batch: expected an AuctionBatch, got {type(batch).__name__}")
    n = batch.n_auctions
    top, second = np.empty(n), np.empty(n)
    index = np.empty(n, dtype=np.int64)
    bad = _top_two(batch.offsets, batch.prices, batch.quality, top, second, index)
    if bad >= 0:
        # named as the clearing functions name it: the price first, then the quality
        p = float(batch.prices[bad])
        q = 1.0 if batch.quality is None else float(batch.quality[bad])
        if not 0 <= p < np.inf:
            where, rule = f"prices[{bad}] = {p!r}", "must be finite and >= 0"
        elif not 0 < q < np.inf:
            where, rule = f"quality[{bad}] = {q!r}", "must be finite and > 0"
        else:
            where, rule = f"prices[{bad}] = {p!r}", "price × quality overflows"
        raise InvalidBidError(f"{where}: {rule}")
    return top, second, index


_ROW_ERRORS = {
    1: "segment",
    2: "floor",
    3: "price",
    4: "top",
    5: "second",
    6: "second",
    7: "price",
}
_ROW_RULES = {
    1: "must be in [0, {n})",
    2: "must be finite and >= 0",
    3: "must be finite and >= 0 (NaN only when not sold)",
    4: "must be finite and >= 0 (NaN: unseen, with seen='above_floor')",
    5: "must be finite and >= 0 (NaN: unseen, with seen='above_floor')",
    6: "must be <= top (and NaN where top is)",
    7: "must be <= top: the winner never pays more than it bid",
}


class FloorOptimizer:
    """Floors learned online, per segment (or per segment and bidder), from logged auctions.

    ``FloorOptimizer(segments, *, grid=DEFAULT_GRID, half_life=10_000, explore=0.0,
    explore_steps=4, min_fill=0.0, min_weight=20.0, initial=0.0, bidders=None, seed=0)``

    For each segment and each candidate floor f of ``grid`` the optimizer keeps decayed sums
    of the second-price revenue ``[b1 >= f] * max(b2, f)`` and of the fills ``[b1 >= f]`` of the
    logged auctions whose outcome at f is known (b1, b2: the top two bids). A segment's floor is
    the candidate with the highest revenue per auction among those known from at least
    ``min_weight`` (decayed) auctions and filling at least ``min_fill`` of them; when every
    known candidate misses ``min_fill``, the lowest known one. Each auction of a segment decays
    the segment's sums by ``0.5 ** (1 / half_life)``, so the floors follow a drifting market.

    What an auction says depends on what was logged (:meth:`update`): every bid gives the
    outcome at every candidate; bids seen only at or above the applied floor give it at the
    candidates at or above that floor; the price alone gives it at the applied floor only.
    Which candidates a row informs never depends on the bids, so every estimate is an unbiased
    average. With ``explore > 0``, :meth:`lookup` explores: that share of auctions gets a random
    candidate within ``explore_steps`` grid steps of the floor, so that an optimizer fed censored
    logs keeps learning below and above its floor. A log of every bid needs no exploration
    (the default), since it tells the outcome at every candidate.

    ``bidders=B`` learns one reserve per (segment, bidder) for the bidder ids 0..B-1: *lazy*
    reserves (Paes Leme, Pal and Vassilvitskii, WWW 2016), where the highest bidder wins if it
    clears its own reserve and pays ``max(b2, its reserve)``. An auction's lazy outcome is the
    second-price outcome with its reserve set to the top bidder's reserve, which
    :meth:`lazy_reserve` returns. Not thread-safe: feed one optimizer from one thread.
    """

    def __init__(
        self,
        segments: int,
        *,
        grid: npt.ArrayLike | None = None,
        half_life: float = 10_000.0,
        explore: float = 0.0,
        explore_steps: int = 4,
        min_fill: float = 0.0,
        min_weight: float = 20.0,
        initial: float = 0.0,
        bidders: int | None = None,
        seed: int = 0,
    ) -> None:
        self._segments = _count("segments", segments)
        self._bidders = None if bidders is None else _count("bidders", bidders)
        g = DEFAULT_GRID if grid is None else _float_array("grid", grid, bools=False)
        if g.ndim != 1 or g.shape[0] < 2:
            raise InvalidInputError(f"grid: expected a 1-D array of >= 2 floors, got {g.shape}")
        if not (np.all(np.isfinite(g)) and g[0] >= 0):
            i = int(np.flatnonzero(~(np.isfinite(g) & (g >= 0)))[0])
            raise InvalidInputError(f"grid[{i}] = {g[i]!r}: must be finite and >= 0")
        if np.any(np.diff(g) <= 0):
            i = int(np.flatnonzero(np.diff(g) <= 0)[0]) + 1
            raise InvalidInputError(f"grid[{i}] = {g[i]!r}: the grid must increase strictly")
        half = _real("half_life", half_life, 0.0, np.inf, lo_open=True)
        self._explore = _real("explore", explore, 0.0, 1.0)
        self._steps = _count("explore_steps", explore_steps, 0)
        self._min_fill = _real("min_fill", min_fill, 0.0, 1.0)
        self._min_weight = _real("min_weight", min_weight, 0.0, np.inf)
        init = _real("initial", initial, 0.0, np.inf)
        s = _check_seed(seed)
        if half == np.inf:
            raise InvalidInputError("half_life = inf: must be finite")
        self._grid = np.array(g, dtype=np.float64)
        self._half_life = half
        keys = self._segments * (self._bidders or 1)
        self._state = _FloorState(
            keys, self._grid, 0.5 ** (1.0 / half), self._min_fill, self._min_weight, init,
            self._explore, self._steps, 0 if s is None else s,
        )

    # ---- configuration ----------------------------------------------------------------------

    @property
    def segments(self) -> int:
        return self._segments

    @property
    def explore(self) -> float:
        """The share of :meth:`lookup`'s auctions given a random candidate near the floor."""
        return self._explore

    @property
    def bidders(self) -> int | None:
        """The number of bidder ids with their own (lazy) reserve, or None (per segment)."""
        return self._bidders

    @property
    def grid(self) -> np.ndarray:
        return self._grid.copy()

    def __repr__(self) -> str:
        per = "" if self._bidders is None else f", bidders={self._bidders}"
        return (
            f"FloorOptimizer(segments={self._segments}{per}, candidates={self._grid.shape[0]}, "
            f"half_life={self._half_life:g}, explore={self._explore:g}, "
            f"min_fill={self._min_fill:g})"
        )

    # ---- floors -----------------------------------------------------------------------------

    @property
    def floors(self) -> np.ndarray:
        """The current floors: float64[segments], or [segments, bidders] (a copy)."""
        f = self._state.floors.copy()
        return f if self._bidders is None else f.reshape(self._segments, self._bidders)

    def _keys(self, segment: npt.ArrayLike, bidder: npt.ArrayLike | None) -> np.ndarray:
        seg = _int_array("segment", np.atleast_1d(segment))
        if self._bidders is None:
            if bidder is not None:
                raise InvalidInputError("bidder: this optimizer learns floors per segment only")
            bad = (seg < 0) | (seg >= self._segments)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InvalidInputError(
                    f"segment[{i}] = {seg[i]}: must be in [0, {self._segments})"
                )
            return seg
        if bidder is None:
            raise InvalidInputError("bidder: required (this optimizer learns per-bidder reserves)")
        b = _int_array("bidder", np.atleast_1d(bidder))
        if b.shape != seg.shape:
            raise InvalidInputError(
                f"bidder: has {b.shape[0]} entries but segment has {seg.shape[0]}"
            )
        for name, v, hi in (("segment", seg, self._segments), ("bidder", b, self._bidders)):
            bad = (v < 0) | (v >= hi)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InvalidInputError(f"{name}[{i}] = {v[i]}: must be in [0, {hi})")
        return seg * self._bidders + b

    def lookup(
        self, segment: npt.ArrayLike, bidder: npt.ArrayLike | None = None, *,
        explore: bool = True,
    ) -> np.ndarray:
        """The floors to apply to auctions of the given segments (and top bidders, for lazy
        reserves): float64[n]. With ``explore`` (the default), a share ``explore`` of them gets
        a random candidate near the floor (drawn from the optimizer's seeded stream)."""
        if bidder is None and self._bidders is None:
            seg = np.atleast_1d(segment)
            if not (isinstance(seg, np.ndarray) and seg.dtype == np.int64 and seg.ndim == 1
                    and seg.flags.c_contiguous):
                seg = _int_array("segment", seg)
            # recycled when large: a fresh 8 MB array costs its page faults on every call
            out = output_pool.empty(seg.shape[0], np.float64)
            bad = self._state.lookup(seg, out, bool(explore))
            if bad >= 0:
                raise InvalidInputError(
                    f"segment[{bad}] = {seg[bad]}: must be in [0, {self._segments})"
                )
            return out
        keys = self._keys(segment, bidder)
        out = np.empty(keys.shape[0])
        self._state.lookup(keys, out, bool(explore))
        return out

    def lazy_reserve(
        self, batch: AuctionBatch, segment: npt.ArrayLike, *, explore: bool = True
    ) -> np.ndarray:
        """Per-auction reserves for ``batch`` under lazy per-bidder reserves: the reserve of each
        auction's top bidder (0.0 where no bid is valid). Clearing the batch with them in a
        second-price auction is the lazy auction. Needs ``bidders=`` and ``batch.bidders``."""
        if self._bidders is None:
            raise InvalidInputError("lazy_reserve: this optimizer has no per-bidder reserves")
        if batch.bidders is None:
            raise InvalidInputError("batch: needs bidders for per-bidder reserves")
        seg = _int_array("segment", segment)
        if seg.shape[0] != batch.n_auctions:
            raise InvalidInputError(
                f"segment: has {seg.shape[0]} entries but the batch has {batch.n_auctions} auctions"
            )
        _, _, index = top_two(batch)
        has = index >= 0
        out = np.zeros(batch.n_auctions)
        out[has] = self.lookup(seg[has], batch.bidders[index[has]], explore=explore)
        return out

    # ---- learning ---------------------------------------------------------------------------

    def update(
        self,
        segment: npt.ArrayLike,
        floor: npt.ArrayLike,
        price: npt.ArrayLike,
        sold: npt.ArrayLike,
        top: npt.ArrayLike | None = None,
        second: npt.ArrayLike | None = None,
        bidder: npt.ArrayLike | None = None,
        *,
        seen: Literal["all", "above_floor"] = "all",
    ) -> None:
        """Learn from logged auctions, in order (one row per auction with at least one bid).

        ``segment`` int[n]; ``floor`` the floor that was applied; ``price`` what the winner
        paid and ``sold`` whether the auction sold; ``top`` / ``second`` the top bid and the
        winner's second-price charge without a floor (the runner-up's bid; 0 when alone):

        - ``seen="all"`` (default) with ``top`` and ``second``: every bid was seen; the row
          informs every candidate floor;
        - ``seen="above_floor"``: only bids at or above the applied floor were seen (NaN for an
          unseen ``top`` / ``second``); the row informs the candidates at or above the floor;
        - ``top`` and ``second`` None: only the price and the sale are known; the row informs
          the applied floor itself, when it is a grid candidate (as :meth:`lookup` hands out).

        ``bidder``: the top bidder's id, for per-bidder reserves. Every row is checked before
        any is learned: a bad one raises :class:`~rtbcore.errors.InvalidInputError` naming it
        and the optimizer is unchanged.
        """
        keys = self._keys(segment, bidder)
        n = keys.shape[0]

        def col(name: str, x: npt.ArrayLike | None) -> np.ndarray:
            if x is None:
                return np.full(n, np.nan)
            a = _float_array(name, x, n, bools=False)
            if a.shape != (n,):
                raise InvalidInputError(f"{name}: has {a.shape[0]} entries but segment has {n}")
            return np.ascontiguousarray(a)

        if seen not in ("all", "above_floor"):
            raise InvalidInputError(f"seen: expected 'all' or 'above_floor', got {seen!r}")
        if (top is None) != (second is None):
            raise InvalidInputError("top, second: give both, or neither (only the price known)")
        mode = 2 if top is None else (0 if seen == "all" else 1)
        f, p = col("floor", floor), col("price", price)
        t, s = col("top", top), col("second", second)
        sold_arr = np.asarray(sold)
        if sold_arr.dtype != np.bool_:
            raise InvalidInputError(f"sold: expected booleans, got dtype {sold_arr.dtype}")
        if sold_arr.ndim == 0:
            sold_arr = np.broadcast_to(sold_arr, (n,))
        if sold_arr.shape != (n,):
            raise InvalidInputError(f"sold: has {sold_arr.shape} entries but segment has {n}")
        sold_u8 = np.ascontiguousarray(sold_arr).view(np.uint8)
        row, code = self._state.update(keys, f, p, sold_u8, t, s, mode)
        if row >= 0:
            name = _ROW_ERRORS[code]
            value = {"segment": keys, "floor": f, "price": p, "top": t, "second": s}[name][row]
            value = value.item()
            rule = _ROW_RULES[code].format(n=self._segments)
            raise InvalidInputError(f"{name}[{row}] = {value!r}: {rule}")

    def observe(
        self,
        batch: AuctionBatch,
        segment: npt.ArrayLike,
        result: ClearingResult,
        floor: npt.ArrayLike,
        *,
        feedback: Literal["bids", "above_floor", "price"] = "bids",
    ) -> None:
        """Learn from a cleared batch (cleared with the reserves ``floor``). ``feedback``: what
        the log shows: ``"bids"`` every bid (the top two are read from the batch),
        ``"above_floor"`` the bids at or above the floor, ``"price"`` only the clearing price
        (see :meth:`update`). Auctions without a valid bid are skipped."""
        if feedback not in ("bids", "above_floor", "price"):
            raise InvalidInputError(
                f"feedback: expected 'bids', 'above_floor' or 'price', got {feedback!r}"
            )
        seg = _int_array("segment", segment)
        if seg.shape[0] != batch.n_auctions:
            raise InvalidInputError(
                f"segment: has {seg.shape[0]} entries but the batch has {batch.n_auctions} auctions"
            )
        top, second, index = top_two(batch)
        q = index >= 0
        f = _float_array("floor", floor, batch.n_auctions, bools=False)[q]
        bidder = None
        if self._bidders is not None:
            if batch.bidders is None:
                raise InvalidInputError("batch: needs bidders for per-bidder reserves")
            bidder = batch.bidders[index[q]]
        t: np.ndarray | None = top[q]
        s: np.ndarray | None = second[q]
        if feedback == "price":
            t = s = None
        elif feedback == "above_floor":
            t = np.where(t >= f, t, np.nan)
            s = np.where(s >= f, s, np.nan)
        seen: Literal["all", "above_floor"] = "all" if feedback == "bids" else "above_floor"
        self.update(seg[q], f, result.price[q], result.winner[q] >= 0, t, s, bidder, seen=seen)

    def estimates(self, segment: int, bidder: int | None = None) -> dict[str, np.ndarray]:
        """What the optimizer knows about one segment (and bidder): per candidate floor of the
        grid, ``weight`` (decayed auctions whose outcome there is known), ``revenue`` (per
        auction) and ``fill`` (NaN where nothing is known)."""
        key = int(self._keys(segment, bidder)[0])
        w, rev, fill = self._state.estimates(key)
        return {"floor": self._grid.copy(), "weight": w, "revenue": rev, "fill": fill}


# ---- replay ----------------------------------------------------------------------------------


class AuctionLog:
    """Logged auctions to replay: the bids in segment layout (as :class:`~rtbcore.AuctionBatch`,
    without a reserve) and each auction's segment, in time order.

    ``AuctionLog(offsets, prices, segment, quality=None, bidders=None, segments=None)``;
    ``segments`` defaults to ``segment.max() + 1``. Bids must be valid (the clearing rule).
    """

    __slots__ = ("batch", "segment", "segments", "_top")

    def __init__(
        self,
        offsets: npt.ArrayLike,
        prices: npt.ArrayLike,
        segment: npt.ArrayLike,
        quality: npt.ArrayLike | None = None,
        bidders: npt.ArrayLike | None = None,
        segments: int | None = None,
    ) -> None:
        self.batch = AuctionBatch(offsets, prices, quality, bidders)
        seg = _int_array("segment", segment)
        if seg.shape[0] != self.batch.n_auctions:
            raise InvalidInputError(
                f"segment: has {seg.shape[0]} entries but there are {self.batch.n_auctions} "
                "auctions"
            )
        if seg.size and int(seg.min()) < 0:
            i = int(np.flatnonzero(seg < 0)[0])
            raise InvalidInputError(f"segment[{i}] = {seg[i]}: must be >= 0")
        top = int(seg.max()) + 1 if seg.size else 0
        self.segments = top if segments is None else _count("segments", segments)
        if self.segments < top:
            raise InvalidInputError(f"segments = {segments}: the log has segment {top - 1}")
        self.segment = seg
        self._top = top_two(self.batch)

    @classmethod
    def from_sizes(
        cls, sizes: npt.ArrayLike, prices: npt.ArrayLike, segment: npt.ArrayLike, **kw: Any
    ) -> AuctionLog:
        """A log from the number of bids of each auction."""
        b = AuctionBatch.from_sizes(sizes, prices)
        return cls(b.offsets, b.prices, segment, **kw)

    @property
    def n_auctions(self) -> int:
        return self.batch.n_auctions

    @property
    def top_two(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(top, second, index)`` per auction (see :func:`top_two`)."""
        return self._top

    def chunk(self, lo: int, hi: int, reserve: float | np.ndarray = 0.0) -> AuctionBatch:
        """Auctions ``lo:hi`` as a batch with the given reserve."""
        b = self.batch
        o = b.offsets[lo : hi + 1]
        s, e = int(o[0]), int(o[-1])
        q = None if b.quality is None else b.quality[s:e]
        who = None if b.bidders is None else b.bidders[s:e]
        return AuctionBatch(o - s, b.prices[s:e], q, who, reserve)


@dataclass(frozen=True, eq=False)
class ReplayResult:
    """The outcome of a floor policy on a log.

    ``revenue`` (sum of prices), ``auctions``, ``qualified`` (auctions with a valid bid), ``sold``,
    ``fill_rate`` = sold / qualified; ``floor`` and ``price`` per auction; ``by_segment`` a
    structured array (segment, auctions, qualified, sold, revenue, fill_rate, mean_floor);
    ``series``: per chunk of the replay (chunk end, revenue, qualified, sold), in log order.
    """

    revenue: float
    auctions: int
    qualified: int
    sold: int
    floor: np.ndarray
    price: np.ndarray
    by_segment: np.ndarray
    series: np.ndarray

    @property
    def fill_rate(self) -> float:
        return self.sold / self.qualified if self.qualified else float("nan")

    def lift(self, baseline: ReplayResult) -> float:
        """Revenue relative to ``baseline`` minus 1 (0.25 = +25%)."""
        return self.revenue / baseline.revenue - 1.0

    def table(self) -> str:
        """The per-segment table as text."""
        lines = [f"{'segment':>7} {'auctions':>9} {'fill':>7} {'revenue':>12} {'floor':>8}"]
        for r in self.by_segment:
            lines.append(
                f"{r['segment']:>7} {r['auctions']:>9} {r['fill_rate']:>7.3f} "
                f"{r['revenue']:>12.2f} {r['mean_floor']:>8.3f}"
            )
        return "\n".join(lines)


SEGMENT_DTYPE = np.dtype([
    ("segment", np.int64), ("auctions", np.int64), ("qualified", np.int64), ("sold", np.int64),
    ("revenue", np.float64), ("fill_rate", np.float64), ("mean_floor", np.float64),
])
SERIES_DTYPE = np.dtype([
    ("end", np.int64), ("revenue", np.float64), ("qualified", np.int64), ("sold", np.int64),
    ("mean_floor", np.float64),
])

Policy = float | npt.ArrayLike | FloorOptimizer | Callable[[np.ndarray, np.ndarray], npt.ArrayLike]


def replay(
    log: AuctionLog,
    policy: Policy,
    *,
    rule: Literal["second", "first"] = "second",
    increment: float = 0.0,
    chunk: int = 10_000,
    feedback: Literal["bids", "above_floor", "price"] = "bids",
    explore: bool = True,
) -> ReplayResult:
    """Clear every auction of ``log`` under a floor ``policy`` and tally revenue and fill.

    ``policy``: a number (one floor everywhere); per-segment floors (``float64[segments]``); a
    function ``(segment, index) -> floors`` of the auctions of a chunk; or a
    :class:`FloorOptimizer`, which is used online: the log is replayed in chunks of ``chunk``
    auctions, each cleared with the floors the optimizer has learned from the chunks before it
    (:meth:`~FloorOptimizer.lookup`, or :meth:`~FloorOptimizer.lazy_reserve` for per-bidder
    reserves), then learned from with ``feedback`` (see :meth:`FloorOptimizer.observe`).
    ``rule``: ``"second"`` (:func:`~rtbcore.clear_second_price` with ``increment``) or
    ``"first"``. Every policy is judged on the same bids, so results compare directly.
    """
    if not isinstance(log, AuctionLog):
        raise InvalidInputError(f"log: expected an AuctionLog, got {type(log).__name__}")
    if rule not in ("second", "first"):
        raise InvalidInputError(f"rule: expected 'second' or 'first', got {rule!r}")
    if feedback not in ("bids", "above_floor", "price"):
        raise InvalidInputError(
            f"feedback: expected 'bids', 'above_floor' or 'price', got {feedback!r}"
        )
    chunk = _count("chunk", chunk)
    inc = _real("increment", increment, 0.0, np.inf)
    n = log.n_auctions
    seg = log.segment

    def clear(b: AuctionBatch) -> ClearingResult:
        return clear_second_price(b, inc) if rule == "second" else clear_first_price(b)

    online = isinstance(policy, FloorOptimizer)
    fixed: np.ndarray | None = None
    fn: Callable[[np.ndarray, np.ndarray], npt.ArrayLike] | None = None
    if online:
        opt = policy
        if opt.segments < log.segments:
            raise InvalidInputError(
                f"policy: the optimizer has {opt.segments} segments, the log {log.segments}"
            )
    elif callable(policy):
        fn = policy
    elif isinstance(policy, numbers.Real) and not isinstance(policy, bool | np.bool_):
        fixed = np.full(log.segments, _real("policy", policy, 0.0, np.inf))
    else:
        fixed = _float_array("policy", policy, bools=False)
        if fixed.shape != (log.segments,):
            raise InvalidInputError(
                f"policy: expected a number, a function, a FloorOptimizer or {log.segments} "
                f"per-segment floors, got shape {fixed.shape}"
            )
        bad = ~(np.isfinite(fixed) & (fixed >= 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(f"policy[{i}] = {fixed[i]!r}: must be finite and >= 0")

    floors = np.zeros(n)
    price = np.zeros(n)
    sold = np.zeros(n, dtype=bool)
    ends = list(range(chunk, n, chunk)) + [n] if n else []
    lo = 0
    for hi in ends:
        s = seg[lo:hi]
        if fixed is not None:
            f = fixed[s]
        elif fn is not None:
            f = _float_array("policy(...)", fn(s, np.arange(lo, hi)), bools=False)
            f = np.broadcast_to(f, (hi - lo,))
            if not np.all(np.isfinite(f) & (f >= 0)):
                raise InvalidInputError("policy(...): floors must be finite and >= 0")
        elif opt.bidders is None:
            f = opt.lookup(s, explore=explore)
        else:
            f = opt.lazy_reserve(log.chunk(lo, hi), s, explore=explore)
        b = log.chunk(lo, hi, np.ascontiguousarray(f, dtype=np.float64))
        r = clear(b)
        if online:
            opt.observe(b, s, r, f, feedback=feedback)
        floors[lo:hi], price[lo:hi], sold[lo:hi] = f, r.price, r.winner >= 0
        lo = hi

    qualified = log.top_two[2] >= 0
    by = np.zeros(log.segments, dtype=SEGMENT_DTYPE)
    by["segment"] = np.arange(log.segments)
    by["auctions"] = np.bincount(seg, minlength=log.segments)
    by["qualified"] = np.bincount(seg, qualified, minlength=log.segments)
    by["sold"] = np.bincount(seg, sold, minlength=log.segments)
    by["revenue"] = np.bincount(seg, price, minlength=log.segments)
    with np.errstate(invalid="ignore", divide="ignore"):
        by["fill_rate"] = by["sold"] / by["qualified"]
        by["mean_floor"] = np.bincount(seg, floors, minlength=log.segments) / by["auctions"]
    series = np.zeros(len(ends), dtype=SERIES_DTYPE)
    if ends:
        starts = np.array([0, *ends[:-1]])
        series["end"] = ends
        series["revenue"] = np.add.reduceat(price, starts)
        series["qualified"] = np.add.reduceat(qualified.astype(np.int64), starts)
        series["sold"] = np.add.reduceat(sold.astype(np.int64), starts)
        series["mean_floor"] = np.add.reduceat(floors, starts) / np.diff([0, *ends])
    return ReplayResult(
        revenue=float(price.sum()), auctions=n, qualified=int(qualified.sum()),
        sold=int(sold.sum()), floor=floors, price=price, by_segment=by, series=series,
    )
