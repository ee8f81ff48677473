"""Thompson sampling over creatives (or any arms): Beta-Bernoulli, vectorized, seeded."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from rtbcore import _fastpath
from rtbcore._state import envelope, opened
from rtbcore.errors import InvalidInputError, StateError

__all__ = ["ThompsonSampler"]


def _float_array(name: str, x: npt.ArrayLike, n: int | None = None) -> np.ndarray:
    """A contiguous 1-D float64 array (a scalar as one element), or InvalidInputError."""
    try:
        a = np.ascontiguousarray(_fastpath._float_array_arg(x, name, "float64 numbers"))
    except InvalidInputError as e:
        raise InvalidInputError(f"{name}: cannot be read as float64 numbers ({e})") from None
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise InvalidInputError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise InvalidInputError(f"{name}: length {a.shape[0]} does not match arms (length {n})")
    return a


def _array(name: str, x: npt.ArrayLike) -> np.ndarray:
    try:
        return np.asarray(x)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidInputError(f"{name}: cannot be read as an array ({e})") from None


def _bad_index(name: str, a: np.ndarray, i: int, what: str) -> InvalidInputError:
    return InvalidInputError(f"{name}[{i}] = {a[i]!r} {what}")


def _kernels() -> Any:
    return _fastpath


# Bounds that keep a call's memory bounded: select materialises n x n_arms Beta draws.
_MAX_ARMS = 1_000_000
_MAX_DRAWS = 2**27


class ThompsonSampler:
    """Beta-Bernoulli Thompson sampling over ``n_arms`` (creatives); vectorized, seeded.

    ``alpha``/``beta`` are the Beta prior (scalars or one per arm, > 0). ``select(n)`` draws
    n independent choices; ``update(arms, rewards)`` adds rewards in [0, 1] (1 = click/win).
    ``seed``: None or an int in [0, 2**64 - 1]. At most 1,000,000 arms, and at most 2**27
    draws (n x n_arms) per ``select`` call. Thread-safe.
    """

    def __init__(
        self,
        n_arms: int,
        alpha: npt.ArrayLike = 1.0,
        beta: npt.ArrayLike = 1.0,
        seed: int | None = None,
    ) -> None:
        k = _kernels()
        self.n_arms = k._int_arg(n_arms, "n_arms", 1, _MAX_ARMS)
        self.alpha = self._prior("alpha", alpha)
        self.beta = self._prior("beta", beta)
        self._rng = np.random.default_rng(k._check_seed(seed))
        self._lock = threading.Lock()

    def _prior(self, name: str, x: npt.ArrayLike) -> np.ndarray:
        a = _float_array(name, x)  # a scalar comes back as one element: one value for all
        if np.ndim(_array(name, x)) == 0:
            a = np.full(self.n_arms, a[0])
        if a.shape[0] != self.n_arms:
            raise InvalidInputError(f"{name}: length {a.shape[0]} does not match n_arms")
        bad = np.flatnonzero(~(np.isfinite(a) & (a > 0)))
        if bad.size:
            raise _bad_index(name, a, int(bad[0]), "must be finite and > 0 (a Beta prior)")
        return a.copy()

    @property
    def means(self) -> np.ndarray:
        """Posterior mean reward of each arm."""
        return self.alpha / (self.alpha + self.beta)

    def select(self, n: int = 1) -> np.ndarray:
        """n arm indices, each the argmax of one draw from every arm's Beta posterior."""
        n = _kernels()._int_arg(n, "n", 0, _MAX_DRAWS // self.n_arms)
        with self._lock:
            draws = self._rng.beta(self.alpha, self.beta, size=(int(n), self.n_arms))
        return draws.argmax(axis=1)

    def update(self, arms: npt.ArrayLike, rewards: npt.ArrayLike) -> None:
        """Add a block of (arm, reward) outcomes; rewards in [0, 1]. All or nothing."""
        a = _array("arms", arms)
        if a.ndim == 0:
            a = a.reshape(1)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise InvalidInputError(f"arms: expected a 1-D integer array, got {a.dtype} {a.shape}")
        r = _float_array("rewards", rewards, a.shape[0])
        bad = np.flatnonzero((a < 0) | (a >= self.n_arms))
        if bad.size:
            i = int(bad[0])
            raise InvalidInputError(f"arms[{i}] = {a[i]} is not an arm index in [0, {self.n_arms})")
        bad = np.flatnonzero(~((r >= 0) & (r <= 1)))
        if bad.size:
            raise _bad_index("rewards", r, int(bad[0]), "must be a probability in [0, 1]")
        a = a.astype(np.intp)
        da = np.bincount(a, weights=r, minlength=self.n_arms)
        db = np.bincount(a, weights=1.0 - r, minlength=self.n_arms)
        with self._lock:
            self.alpha = self.alpha + da  # new arrays: a concurrent select sees old or new
            self.beta = self.beta + db

    def to_state(self) -> dict[str, Any]:
        """The posteriors and the random stream as a plain dict (versioned)."""
        with self._lock:
            return envelope("ThompsonSampler", {
                "alpha": self.alpha.copy(), "beta": self.beta.copy(),
                "rng": self._rng.bit_generator.state,
            })  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ThompsonSampler:
        """A sampler that resumes from ``to_state()``: the same posteriors and next draws."""
        st = opened(state, "ThompsonSampler", ("alpha", "beta", "rng"))
        try:
            a = np.asarray(st["alpha"], dtype=np.float64)
            ts = cls(a.shape[0] if a.ndim == 1 else 0, a, st["beta"])
            ts._rng.bit_generator.state = st["rng"]
        except InvalidInputError as e:
            raise StateError(f"state: {e}") from None
        except (TypeError, ValueError, KeyError) as e:
            raise StateError(f"state: inconsistent ThompsonSampler state ({e!r})") from None
        return ts

    def __reduce__(self) -> tuple[Any, ...]:
        return (ThompsonSampler.from_state, (self.to_state(),))
