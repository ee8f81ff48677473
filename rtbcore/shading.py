"""Bid shading for first-price auctions: learn P(win | bid), bid argmax (v - b) * P(win | b).
Values, bids, prices and ``max_bid`` are per impression, in the unit of your prices (divide
OpenRTB's CPM prices by 1000 first).

``BidLandscape`` learns the distribution of D, the highest competing bid, from what a bidder
sees after each auction, on a grid of ``bins`` equal bins over ``[0, max_bid)`` plus one overflow
bin ``[max_bid, inf)``. P(win | b) = P(D < b) = F(b). What each outcome says about D:

* a loss: ``D >= b`` (right-censored at our bid);
* a win paid at our own bid (first price, or price unknown): ``D < b`` (left-censored);
* a win charged ``price < b``: the exchange revealed ``D = price`` (exact);
* the exchange's minimum-bid-to-win ``m`` (on a loss, or on a win): ``D = m`` (exact).

Estimators (``estimator=``):

* ``"empirical"`` (default): the nonparametric maximum-likelihood estimate of F from exact,
  left- and right-censored observations together, by Turnbull's self-consistency (EM)
  iteration on the grid. With win/loss alone it is the isotonic (monotone) win-rate curve; with
  exact observations alone it is the empirical CDF. Its bin masses are then smoothed with a
  Gaussian kernel of sd ``smoothing * max_bid`` (0 = the raw NPMLE).
* ``"lognormal"``: D ~ LogNormal(mu, sigma) fitted by censored maximum likelihood (exact
  observations as their grid bin, wins as P(D < b), losses as P(D >= b)).
* ``"naive"``: for comparison only. The distribution of the prices paid on won auctions, the
  landscape one gets by ignoring losses. It is biased; see ``docs/shading.md`` and the tests.

All estimators produce F at the grid edges; ``win_probability`` interpolates linearly between
them (flat above ``max_bid``) and ``optimal_bid`` maximizes exactly for that interpolated F.

The Cython kernels live in ``src/shading.pxi`` and run without the GIL. A landscape may be
shared by threads: ``observe`` and refits hold its lock, queries read an immutable snapshot.
"""

from __future__ import annotations

import math
import threading
import weakref
from types import ModuleType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rtbcore import _fastpath
from rtbcore._fastpath import _ShaderCore, _ShadingFit
from rtbcore._state import envelope, opened
from rtbcore.errors import InvalidInputError, StateError

__all__ = [
    "BidLandscape",
    "BidShader",
    "ThompsonSampler",
]

from rtbcore.thompson import ThompsonSampler  # noqa: E402  (its home; also named here)

Estimator = Literal["empirical", "lognormal", "naive"]
_ESTIMATORS = ("empirical", "lognormal", "naive")
RefitPolicy = Literal["observe", "background", "manual"]
_REFIT_POLICIES = ("observe", "background", "manual")
_COUNTS = ("exact", "left", "right", "naive")
Mechanism = Literal["first_price", "second_price", "gsp", "vcg"]
_MECHANISMS = ("first_price", "second_price", "gsp", "vcg")
# EM steps of an incremental refit (warm-started from the published fit): ~0.3 ms on 257 bins
_WARM_ITERATIONS = 100

_OBSERVE_ERRORS = {
    1: ("bids", "must be finite and >= 0"),
    2: ("price", "must be NaN (unknown) or finite and >= 0"),
    3: ("price", "is given for a lost auction (only wins have a price)"),
    4: ("price", "is above the bid (a first-price win never costs more than the bid)"),
    5: ("min_to_win", "must be NaN (unknown) or finite and >= 0"),
    6: ("min_to_win", "is above the bid on a win"),
    7: ("min_to_win", "is below the bid on a loss"),
}


def _kernels() -> ModuleType:
    return _fastpath


def _float_array(name: str, x: npt.ArrayLike, n: int | None = None) -> np.ndarray:
    """A contiguous 1-D float64 array, or InvalidInputError naming ``name``."""
    if (
        type(x) is np.ndarray
        and x.dtype == np.float64
        and x.ndim == 1
        and x.flags.c_contiguous
        and (n is None or x.shape[0] == n)
    ):
        return x
    try:
        a = np.ascontiguousarray(_kernels()._float_array_arg(x, name, "float64 numbers"))
    except InvalidInputError as e:
        raise InvalidInputError(f"{name}: cannot be read as float64 numbers ({e})") from None
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise InvalidInputError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise InvalidInputError(f"{name}: length {a.shape[0]} does not match bids (length {n})")
    return a


def _array(name: str, x: npt.ArrayLike) -> np.ndarray:
    """np.asarray(x), or InvalidInputError naming ``name`` (a ragged list, ...)."""
    try:
        return np.asarray(x)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidInputError(f"{name}: cannot be read as an array ({e})") from None


def _bool_array(name: str, x: npt.ArrayLike, n: int) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype == np.bool_ and x.shape == (n,) and x.flags.c_contiguous:
        return x.view(np.uint8)
    a = _array(name, x)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise InvalidInputError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if a.shape[0] != n:
        raise InvalidInputError(f"{name}: length {a.shape[0]} does not match bids (length {n})")
    if a.dtype != np.bool_:
        if a.dtype.kind not in "biuf":
            raise InvalidInputError(f"{name}: expected booleans, got dtype {a.dtype}")
        bad = np.flatnonzero((a != 0) & (a != 1))
        if bad.size:
            i = int(bad[0])
            raise InvalidInputError(f"{name}[{i}]: expected a boolean (0/1), got {a[i]!r}")
        a = a.astype(np.bool_)
    return np.ascontiguousarray(a).view(np.uint8)


def _bad_index(name: str, a: np.ndarray, i: int, what: str) -> InvalidInputError:
    return InvalidInputError(f"{name}[{i}] = {a[i]!r} {what}")


class BidLandscape:
    """P(win | bid) in first-price auctions, learned from censored outcomes.

    ``max_bid`` bounds the modelled bid range (choose it above any bid you would place; bids
    above it are treated as ``max_bid`` for the model), ``bins`` sets the grid resolution.
    """

    def __init__(
        self,
        max_bid: float = 1.0,
        bins: int = 256,
        estimator: Estimator = "empirical",
        *,
        smoothing: float = 0.03,
        max_iter: int = 20_000,
        tol: float = 1e-9,
        refit: RefitPolicy = "observe",
        refit_growth: float = 0.25,
        refit_min: int = 1000,
    ) -> None:
        k = _kernels()
        max_bid = k._real_arg(max_bid, "max_bid")
        if not max_bid > 0:
            raise InvalidInputError(f"max_bid: must be a finite number > 0, got {max_bid!r}")
        bins = k._int_arg(bins, "bins", 2, 1_000_000)
        if not isinstance(estimator, str) or estimator not in _ESTIMATORS:
            raise InvalidInputError(f"estimator: must be one of {_ESTIMATORS}, got {estimator!r}")
        smoothing = k._real_arg(smoothing, "smoothing")
        if not 0.0 <= smoothing <= 1.0:
            raise InvalidInputError(f"smoothing: must be in [0, 1], got {smoothing!r}")
        max_iter = k._int_arg(max_iter, "max_iter", 1, 2**62)
        tol = k._real_arg(tol, "tol")
        if not tol > 0:
            raise InvalidInputError(f"tol: must be finite and > 0, got {tol!r}")
        if not isinstance(refit, str) or refit not in _REFIT_POLICIES:
            raise InvalidInputError(f"refit: must be one of {_REFIT_POLICIES}, got {refit!r}")
        refit_growth = k._real_arg(refit_growth, "refit_growth")
        if not refit_growth >= 0:
            raise InvalidInputError(f"refit_growth: must be finite and >= 0, got {refit_growth!r}")
        refit_min = k._int_arg(refit_min, "refit_min", 1, 2**62)
        self.max_bid = float(max_bid)
        self.bins = bins
        self.estimator: Estimator = estimator
        self.smoothing = float(smoothing)
        self.max_iter = max_iter
        self.tol = float(tol)
        self._h = self.max_bid / bins
        k1 = bins + 1
        self._exact = np.zeros(k1)
        self._left = np.zeros(k1 + 1)
        self._right = np.zeros(k1)
        self._naive = np.zeros(k1)
        self._n = 0
        # value grid for the argmax table: step h/2 over [0, 2 max_bid]
        self._vstep = self._h / 2.0
        self.refit_policy: RefitPolicy = refit
        self.refit_growth = float(refit_growth)
        self.refit_min = refit_min
        self._lock = threading.Lock()
        self._refitter: _Refitter | None = None
        self.iterations = 0
        self.lognormal_params: tuple[float, float] | None = None
        # The published fit: an immutable _ShadingFit replaced whole by one assignment, so a
        # reader (a bid, a query) holds a consistent fit without locking.
        self._published = self._compute_fit(self._counts_ref(), 0, None)

    # -- observations ------------------------------------------------------------------------

    def observe(
        self,
        bids: npt.ArrayLike,
        won: npt.ArrayLike,
        price: npt.ArrayLike | None = None,
        min_to_win: npt.ArrayLike | None = None,
    ) -> None:
        """Record a block of auction outcomes (arrays of one length; NaN where unknown).

        ``price`` is what a win cost (NaN on losses and when unknown); ``min_to_win`` is the
        exchange's minimum bid to win when it reports one. A bad value raises
        InvalidInputError naming the argument and index, and records nothing of the block.
        """
        b = _float_array("bids", bids)
        n = b.shape[0]
        w = _bool_array("won", won, n)
        p = _float_array("price", price, n) if price is not None else b[:0]
        m = _float_array("min_to_win", min_to_win, n) if min_to_win is not None else b[:0]
        with self._lock:
            bad, code = _kernels()._shading_observe(
                b, w, p, m, price is not None, min_to_win is not None, self.max_bid,
                self._exact, self._left, self._right, self._naive,
            )  # fmt: skip
            if bad < 0 and n:
                self._n += n
            due = bad < 0 and n > 0 and self.refit_policy != "manual" and self._refit_due()
            if due and self.refit_policy == "observe":
                self._publish(self._amortised_fit())
        if due and self.refit_policy == "background":
            self._wake_refitter()
        if bad >= 0:
            name, what = _OBSERVE_ERRORS[code]
            arr = {"bids": b, "price": p, "min_to_win": m}[name]
            raise _bad_index(name, arr, bad, what)

    @property
    def n_observations(self) -> int:
        """How many outcomes have been observed."""
        return self._n

    @property
    def edges(self) -> np.ndarray:
        """The grid edges e_0 = 0 .. e_K = max_bid."""
        return np.arange(self.bins + 1) * self._h

    def counts(self) -> dict[str, np.ndarray]:
        """Copies of the counts: exact and naive (per bin), left and right (per edge)."""
        with self._lock:
            return {
                "exact": self._exact.copy(),
                "left": self._left.copy(),
                "right": self._right.copy(),
                "naive": self._naive.copy(),
            }

    # -- fitting -----------------------------------------------------------------------------

    def cdf(self) -> np.ndarray:
        """F at the grid edges: F[i] = P(D < e_i) = P(win | bid e_i); refits if needed."""
        return np.array(self._snapshot().F)

    def refit(self) -> BidLandscape:
        """Fit every observation now, in full, and publish the fit; returns self."""
        with self._lock:
            self._publish(self._compute_fit(self._counts_ref(), self._n, None))
        return self

    @property
    def fitted_observations(self) -> int:
        """How many observations the published fit (the one bids use) includes."""
        return int(self._published.n_obs)

    def _counts_ref(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (self._exact, self._left, self._right, self._naive)

    def _publish(self, fit: _ShadingFit) -> None:
        # caller holds the lock; a fit never replaces one that includes more observations
        # (a background fit can finish after a query's full fit of newer data)
        pub = self._published
        if fit.n_obs > pub.n_obs or (fit.n_obs == pub.n_obs and fit.exact >= pub.exact):
            self._published = fit

    def _snapshot(self) -> _ShadingFit:
        """The full fit of every observation (queries answer from it; it is also published)."""
        st = self._published
        if st.exact and st.n_obs == self._n:
            return st
        with self._lock:
            st = self._published
            if not (st.exact and st.n_obs == self._n):
                st = self._compute_fit(self._counts_ref(), self._n, None)
                self._publish(st)
        return st

    def _refit_due(self) -> bool:
        new = self._n - self._published.n_obs
        return new > 0 and new >= max(self.refit_min, self.refit_growth * self._published.n_obs)

    def _amortised_fit(
        self, counts: tuple[np.ndarray, ...] | None = None, n: int = -1
    ) -> _ShadingFit:
        """The refit after new observations: warm-started from the published fit when that one
        holds at least a quarter of the observations, else a full fit."""
        pub = self._published
        if counts is None:
            counts, n = self._counts_ref(), self._n
        warm = pub.p if self.estimator == "empirical" and 4 * pub.n_obs >= n > 0 else None
        return self._compute_fit(counts, n, warm)

    def _wake_refitter(self) -> None:
        r = self._refitter
        if r is None or not r.alive():
            with self._lock:
                r = self._refitter
                if r is None or not r.alive():
                    r = self._refitter = _Refitter(self)
        r.wake()

    def _background_refit(self) -> None:
        """One background refit: copy the counts under the lock, fit without it, publish."""
        with self._lock:
            if not self._refit_due():
                return
            counts = tuple(c.copy() for c in self._counts_ref())
            n = self._n
        fit = self._amortised_fit(counts, n)
        with self._lock:
            self._publish(fit)

    def _compute_fit(
        self, counts: tuple[np.ndarray, ...], n_obs: int, warm: np.ndarray | None
    ) -> _ShadingFit:
        """A _ShadingFit of these counts; warm: the unsmoothed masses of an earlier fit to
        start the EM from (at most _WARM_ITERATIONS steps), or None for the full fit."""
        ex, lf, rt, nv = counts
        k1 = self.bins + 1
        raw = None
        if self.estimator == "empirical":
            if warm is None:
                p = self._em_start(ex, lf, rt)
                iters = self.max_iter
            else:
                p = 0.999 * warm + 0.001 / k1  # every bin can still move
                iters = min(self.max_iter, _WARM_ITERATIONS)
            self.iterations = int(_kernels()._shading_turnbull(ex, lf, rt, p, iters, self.tol))
            raw = p.copy()
        elif self.estimator == "naive":
            tot = nv.sum()
            p = nv / tot if tot > 0 else np.full(k1, 1.0 / k1)
        else:
            p = self._fit_lognormal(ex, lf, rt)
        if self.estimator != "lognormal" and self.smoothing > 0:
            p = self._smooth(p)
        F = np.empty(k1)
        F[0] = 0.0
        np.cumsum(p[:-1], out=F[1:])
        np.clip(F, 0.0, 1.0, out=F)
        np.maximum.accumulate(F, out=F)
        seg = np.empty(4 * self.bins + 1, dtype=np.intp)
        _kernels()._shading_argmax_table(F, self._h, self._vstep, seg)
        return _ShadingFit(F, seg, raw, self._h, self._vstep, n_obs, warm is None)

    def _em_start(self, ex: np.ndarray, lf: np.ndarray, rt: np.ndarray) -> np.ndarray:
        # EM converges slowly on win/loss (current-status) data: ~20k iterations to 1e-3. Start
        # it instead from the two closed-form NPMLEs it combines: the isotonic win rate of the
        # censored outcomes (exact for current-status data; Groeneboom & Wellner) and the
        # empirical CDF of the exact ones, weighted by their counts, with 0.1% uniform mass so
        # that every bin can still move. Deterministic: the fit depends on the counts only.
        from scipy.optimize import isotonic_regression

        K = self.bins
        k1 = K + 1
        lf = lf[:k1]
        n_ex = ex.sum()
        seen = np.flatnonzero(lf + rt)
        seen = seen[seen > 0]  # "D >= 0" says nothing
        n_cs = float((lf[seen] + rt[seen]).sum())
        F0 = np.zeros(k1)
        if n_cs > 0:
            w = lf[seen] + rt[seen]
            iso = isotonic_regression(lf[seen] / w, weights=w).x
            xs = np.concatenate([[0], seen])
            F0 += n_cs * np.interp(np.arange(k1), xs, np.concatenate([[0.0], iso]))
        if n_ex > 0:
            F0[1:] += np.cumsum(ex[:-1])
        if n_cs + n_ex <= 0:
            return np.full(k1, 1.0 / k1)
        F0 /= n_cs + n_ex
        p = np.diff(np.append(F0, 1.0))
        p = 0.999 * np.maximum(p, 0.0) / p.clip(0).sum() + 0.001 / k1
        return p

    def _smooth(self, p: np.ndarray) -> np.ndarray:
        # The optimal bid solves v - b = F(b) / F'(b): it depends on the density, and the raw
        # NPMLE is a step function whose density is spiky. A Gaussian kernel over the in-range
        # bins (reflected at the ends, mass preserved; the overflow bin is left alone) steadies
        # the argmax at the cost of a little bias. The kernel is scipy's gaussian_filter1d
        # (truncated at 4 sd, mode "reflect"), applied as one np.convolve: a refit runs often.
        q = p.copy()
        inner = p[:-1].sum()
        # a kernel far narrower than a bin is the identity
        if inner > 0 and self.smoothing * self.bins >= 1e-3:
            w = self._kernel_weights()
            r = w.shape[0] // 2
            x = p[:-1]
            if r < x.shape[0]:
                x = np.concatenate((x[r - 1 :: -1] if r else x[:0], x, x[: -r - 1 : -1]))
            else:
                x = np.pad(x, r, mode="symmetric")
            sm = np.convolve(x, w, mode="valid")
            sm = np.maximum(sm, 0.0)
            q[:-1] = sm * (inner / sm.sum())
        return q

    def _kernel_weights(self) -> np.ndarray:
        w = self.__dict__.get("_weights")
        if w is None:
            sd = self.smoothing * self.bins
            r = int(4.0 * sd + 0.5)
            x = np.arange(-r, r + 1)
            w = np.exp(-0.5 * (x / sd) ** 2)
            w = self.__dict__["_weights"] = w / w.sum()
        return w

    def _fit_lognormal(self, ex: np.ndarray, lf: np.ndarray, rt: np.ndarray) -> np.ndarray:
        from scipy.optimize import minimize
        from scipy.special import log_ndtr, ndtr

        K = self.bins
        e = self.edges
        with np.errstate(divide="ignore"):
            loge = np.log(e)  # loge[0] = -inf
        iex = np.flatnonzero(ex)
        ilf = np.flatnonzero(lf[: K + 1])  # lf[K + 1] is "D < inf": no information
        irt = np.flatnonzero(rt[1:]) + 1  # rt[0] is "D >= 0": no information
        if iex.size + ilf.size + irt.size == 0:
            self.lognormal_params = None
            return np.full(K + 1, 1.0 / (K + 1))

        def logcdf(z: np.ndarray) -> np.ndarray:
            return log_ndtr(z)

        def nll(theta: np.ndarray) -> float:
            mu, log_sigma = theta
            s = math.exp(log_sigma)
            z = (loge - mu) / s
            lc = logcdf(z)  # log P(D < e_i)
            ls = logcdf(-z)  # log P(D >= e_i)
            total = 0.0
            if iex.size:
                lo = np.where(iex > 0, lc[np.minimum(iex, K)], -np.inf)
                hi = np.where(iex < K, lc[np.minimum(iex + 1, K)], 0.0)
                # log(P(D < e_{j+1}) - P(D < e_j)); the overflow bin is log P(D >= max_bid)
                with np.errstate(divide="ignore", invalid="ignore"):
                    cell = hi + np.log1p(-np.exp(lo - hi))
                cell = np.where(iex == K, ls[K], cell)
                total += float(ex[iex] @ cell)
            if ilf.size:
                total += float(lf[ilf] @ lc[ilf])
            if irt.size:
                total += float(rt[irt] @ ls[irt])
            return -total if math.isfinite(total) else 1e300

        # start at the log-mean of every point the data mention
        pts = np.concatenate([(iex + 0.5) * self._h, ilf * self._h, irt * self._h])
        wts = np.concatenate([ex[iex], lf[ilf], rt[irt]])
        pts = np.clip(pts, self._h / 2, None)
        mu0 = float(np.average(np.log(pts), weights=wts))
        res = minimize(nll, np.array([mu0, 0.0]), method="Nelder-Mead",
                       options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000})  # fmt: skip
        mu, log_sigma = (float(x) for x in res.x)
        sigma = math.exp(log_sigma)
        self.lognormal_params = (mu, sigma)
        self.iterations = int(res.nit)
        with np.errstate(divide="ignore"):
            F = ndtr((loge - mu) / sigma)
        F[0] = 0.0
        p = np.empty(K + 1)
        p[:-1] = np.diff(F)
        p[-1] = 1.0 - F[-1]
        return p

    # -- queries -----------------------------------------------------------------------------

    def win_probability(self, bids: npt.ArrayLike) -> np.ndarray:
        """P(win | bid) for each bid (linear between grid edges, flat above max_bid)."""
        b = _float_array("bids", bids)
        _check_nonneg("bids", b)
        return np.interp(b, self.edges, self._snapshot().F)

    def expected_surplus(self, values: npt.ArrayLike, bids: npt.ArrayLike) -> np.ndarray:
        """(v - b) * P(win | b) per (value, bid) pair under this landscape."""
        v = _float_array("values", values)
        _check_nonneg("values", v)
        b = _float_array("bids", bids, v.shape[0])
        return (v - b) * self.win_probability(b)

    def optimal_bid(self, values: npt.ArrayLike) -> np.ndarray:
        """The bid maximizing (v - b) * P(win | b) for each value (the smallest such bid)."""
        v = _float_array("values", values)
        st = self._snapshot()
        out = np.empty_like(v)
        bad = _kernels()._shading_optimal_bid(v, st.F, self._h, self._vstep, st.seg, out)
        if bad >= 0:
            raise _bad_index("values", v, bad, "must be finite and >= 0")
        return out

    # -- save and restore ------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The landscape as a plain dict (versioned): settings and the observation counts.
        Restoring refits from the counts, so a restarted bidder resumes what it learned."""
        with self._lock:
            counts = {k: c.copy() for k, c in zip(_COUNTS, self._counts_ref(), strict=True)}
            n = self._n
        return envelope("BidLandscape", {
            "max_bid": self.max_bid, "bins": self.bins, "estimator": self.estimator,
            "smoothing": self.smoothing, "max_iter": self.max_iter, "tol": self.tol,
            "refit": self.refit_policy, "refit_growth": self.refit_growth,
            "refit_min": self.refit_min, "n_observations": n, **counts,
        })  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BidLandscape:
        """A landscape with the saved settings and counts, fitted in full."""
        keys = ("max_bid", "bins", "estimator", "smoothing", "max_iter", "tol", "refit",
                "refit_growth", "refit_min", "n_observations", *_COUNTS)  # fmt: skip
        st = opened(state, "BidLandscape", keys)
        try:
            land = cls(st["max_bid"], st["bins"], st["estimator"], smoothing=st["smoothing"],
                       max_iter=st["max_iter"], tol=st["tol"], refit=st["refit"],
                       refit_growth=st["refit_growth"], refit_min=st["refit_min"])  # fmt: skip
            n = _kernels()._int_arg(st["n_observations"], "n_observations", 0, 2**62)
            for key, mine in zip(_COUNTS, land._counts_ref(), strict=True):
                a = np.asarray(st[key], dtype=np.float64)
                if a.shape != mine.shape or not (np.isfinite(a) & (a >= 0)).all():
                    raise InvalidInputError(
                        f"{key}: expected {mine.shape[0]} finite counts >= 0, got {a!r}"
                    )
                mine[:] = a
        except InvalidInputError as e:
            raise StateError(f"state: {e}") from None
        except (TypeError, ValueError) as e:
            raise StateError(f"state: inconsistent BidLandscape state ({e!r})") from None
        land._n = n
        return land.refit()

    def __reduce__(self) -> tuple[Any, ...]:
        return (BidLandscape.from_state, (self.to_state(),))

    def __repr__(self) -> str:
        return (
            f"BidLandscape(max_bid={self.max_bid}, bins={self.bins}, "
            f"estimator={self.estimator!r}, n_observations={self._n})"
        )


def _check_nonneg(name: str, a: np.ndarray) -> None:
    bad = np.flatnonzero(~(np.isfinite(a) & (a >= 0)))
    if bad.size:
        raise _bad_index(name, a, int(bad[0]), "must be finite and >= 0")


class BidShader(_ShaderCore):
    """Shaded first-price bids: the landscape's optimal bid, clipped to [floor, ceiling].

    ``bid`` answers from the landscape's published fit and never fits: refits happen when
    observations arrive (see ``BidLandscape(refit=...)``). With probability ``explore`` a bid is
    instead drawn uniformly from ``[(1 - explore_width) * b, min((1 + explore_width) * b,
    value)]`` so the landscape keeps learning around the current optimum. Values below
    ``floor`` get NaN: no bid (it could only win at a loss). ``mechanism`` is the auction's
    pricing rule: ``"first_price"`` shades; under ``"second_price"``, ``"gsp"`` or ``"vcg"``
    the winner pays the competition's price, bidding the value is optimal and shading would
    only lose auctions, so the shader bids the value (clipped, no exploration) and keeps
    learning from ``observe``. Seeded (``seed``: None for fresh entropy, or an int in
    [0, 2**64 - 1]): the same seed and calls give the same bids. Thread-safe.
    """

    def __init__(
        self,
        landscape: BidLandscape,
        floor: float = 0.0,
        ceiling: float = math.inf,
        explore: float = 0.02,
        explore_width: float = 0.2,
        seed: int | None = None,
        *,
        mechanism: Mechanism = "first_price",
    ) -> None:
        if not isinstance(landscape, BidLandscape):
            raise InvalidInputError(f"landscape: expected a BidLandscape, got {type(landscape)}")
        k = _kernels()
        floor = k._real_arg(floor, "floor")
        if not floor >= 0:
            raise InvalidInputError(f"floor: must be finite and >= 0, got {floor!r}")
        ceiling = k._float_arg(ceiling, "ceiling")
        if math.isnan(ceiling) or ceiling < floor:
            raise InvalidInputError(f"ceiling: must be >= floor ({floor}), got {ceiling!r}")
        explore = k._real_arg(explore, "explore")
        if not (0.0 <= explore <= 1.0):
            raise InvalidInputError(f"explore: a probability in [0, 1], got {explore!r}")
        explore_width = k._real_arg(explore_width, "explore_width")
        if not (0.0 <= explore_width <= 1.0):
            raise InvalidInputError(f"explore_width: must be in [0, 1], got {explore_width!r}")
        seed = k._check_seed(seed)
        if not isinstance(mechanism, str) or mechanism not in _MECHANISMS:
            raise InvalidInputError(f"mechanism: must be one of {_MECHANISMS}, got {mechanism!r}")
        self.mechanism: Mechanism = mechanism
        self._set_rule(landscape, floor, ceiling, explore, explore_width,
                       mechanism == "first_price", seed)  # fmt: skip
        # building a shader is not the request path: bids start from a fit of what is known
        landscape._snapshot()

    def observe(
        self,
        bids: npt.ArrayLike,
        won: npt.ArrayLike,
        price: npt.ArrayLike | None = None,
        min_to_win: npt.ArrayLike | None = None,
    ) -> None:
        """Feed outcomes to the landscape (see ``BidLandscape.observe``)."""
        self.landscape.observe(bids, won, price, min_to_win)

    def refit(self) -> BidShader:
        """Fit the landscape in full now (see ``BidLandscape.refit``); returns self."""
        self.landscape.refit()
        return self

    def to_state(self) -> dict[str, Any]:
        """The shader as a plain dict (versioned): settings, the exploration stream, the
        counters and its landscape's state."""
        return envelope("BidShader", {
            "floor": self.floor, "ceiling": self.ceiling, "explore": self.explore,
            "explore_width": self.explore_width, "mechanism": self.mechanism,
            "rng": self.rng_state, "n_explored": self.n_explored, "n_no_bid": self.n_no_bid,
            "landscape": self.landscape.to_state(),
        })  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BidShader:
        """A shader (and its landscape) that resumes from ``to_state()``: the same next bids."""
        keys = ("floor", "ceiling", "explore", "explore_width", "mechanism", "rng",
                "n_explored", "n_no_bid", "landscape")  # fmt: skip
        st = opened(state, "BidShader", keys)
        land = BidLandscape.from_state(st["landscape"])
        try:
            sh = cls(land, st["floor"], st["ceiling"], st["explore"], st["explore_width"],
                     seed=st["rng"], mechanism=st["mechanism"])  # fmt: skip
            for key in ("n_explored", "n_no_bid"):
                setattr(sh, key, _kernels()._int_arg(st[key], key, 0, 2**64 - 1))
        except InvalidInputError as e:
            raise StateError(f"state: {e}") from None
        return sh

    def __reduce__(self) -> tuple[Any, ...]:
        return (BidShader.from_state, (self.to_state(),))

    def __repr__(self) -> str:
        return (
            f"BidShader(floor={self.floor}, ceiling={self.ceiling}, explore={self.explore}, "
            f"mechanism={self.mechanism!r}, landscape={self.landscape!r})"
        )


class _Refitter:
    """The background refit thread of one landscape (``refit="background"``).

    It holds the landscape weakly and ends when the landscape is gone; the EM kernel releases
    the GIL, so a refit competes with bidder threads only for its numpy and scipy steps.
    """

    def __init__(self, land: BidLandscape) -> None:
        self._event = threading.Event()
        self._thread = threading.Thread(
            target=_Refitter._run, args=(weakref.ref(land), self._event),
            name="rtbcore-landscape-refit", daemon=True,
        )  # fmt: skip
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        self._event.set()

    @staticmethod
    def _run(ref: weakref.ref[BidLandscape], event: threading.Event) -> None:
        while True:
            if not event.wait(0.5):
                if ref() is None:
                    return
                continue
            event.clear()
            land = ref()
            if land is None:
                return
            land._background_refit()
            del land


# The simulation and the equilibrium theory live in rtbcore.sim.shading (which imports this
# module); their names keep resolving here, on first use.
def __getattr__(name: str) -> object:
    from rtbcore.sim import shading as sim

    if name in sim.__all__:
        return getattr(sim, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
