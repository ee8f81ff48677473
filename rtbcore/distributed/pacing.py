"""SharedPacer: a PID or adaptive pacer steering on a campaign's spend across all nodes, taking
its money from a :class:`SharedBudget`, with a spend-rate guard."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from rtbcore.distributed.budget import SharedBudget
from rtbcore.errors import InvalidInputError
from rtbcore.pacing import PIDPacer

__all__ = ["SharedPacer"]


class SharedPacer:
    """N bidder processes pacing the same campaigns together.

    ``SharedPacer(pacer, budget, campaigns=None, *, guard=1.2, guard_window=60.0)``

    ``pacer`` is a :class:`~rtbcore.PIDPacer` or :class:`~rtbcore.AdaptivePacer` whose budget
    array holds the campaigns' budgets in the order of ``campaigns`` (default: the
    :class:`SharedBudget`'s own order). Each node has its own pacer; they agree because they
    all steer on the campaign's spend across nodes (``budget.spent(c)``: what the nodes had
    reported at this node's last sync, plus this node's own since), not on their own.

    - ``update(elapsed=None)``: feeds the pacer that spend and records it for the guard.
    - ``multiplier(elapsed=None)``: the pacer's multiplier on the shared spend.
    - ``should_bid(cost, elapsed=None)``: the pacer's decision (hard cap on the shared spend,
      participation coin) and not ``guarded``.
    - ``try_bid(cost, elapsed=None)``: ``should_bid`` and then the money itself, from the
      :class:`SharedBudget` (``try_spend_many``): the mask of bids to make.

    **Spend-rate guard.** Over the last ``guard_window`` seconds of the pacer's clock (between
    the oldest ``update`` in that window and now), a campaign whose shared spend grew by more
    than ``guard`` × what its target curve asked for in that time is *guarded*: ``should_bid``
    and ``try_bid`` refuse it until an update finds the rate back under the bound.
    ``guarded`` is the per-campaign boolean array.
    """

    def __init__(
        self,
        pacer: PIDPacer,
        budget: SharedBudget,
        campaigns: Sequence[Hashable] | None = None,
        *,
        guard: float = 1.2,
        guard_window: float = 60.0,
    ) -> None:
        if not isinstance(pacer, PIDPacer):
            raise InvalidInputError(
                f"pacer must be a PIDPacer or AdaptivePacer, got {type(pacer).__name__}"
            )
        if not isinstance(budget, SharedBudget):
            raise InvalidInputError(f"budget must be a SharedBudget, got {type(budget).__name__}")
        self.campaigns = list(budget.campaigns if campaigns is None else campaigns)
        if pacer.shape != (len(self.campaigns),):
            raise InvalidInputError(
                f"the pacer tracks campaigns of shape {pacer.shape} but {len(self.campaigns)} "
                "campaigns were given: build the pacer on one budget per campaign"
            )
        self._slots = budget.slots(np.array(self.campaigns, dtype=object))
        if not (isinstance(guard, int | float) and guard >= 1.0):
            raise InvalidInputError(f"guard must be a number >= 1, got {guard!r}")
        if not (isinstance(guard_window, int | float) and guard_window > 0):
            raise InvalidInputError(f"guard_window must be > 0 seconds, got {guard_window!r}")
        self.pacer = pacer
        self.budget = budget
        self.guard = float(guard)
        self.guard_window = float(guard_window)
        self.guarded = np.zeros(len(self.campaigns), dtype=np.bool_)
        self._samples: deque[tuple[float, np.ndarray]] = deque()

    def spent(self) -> np.ndarray:
        """The campaigns' spend across all nodes, as this node knows it."""
        return np.array([self.budget.spent(c) for c in self.campaigns])

    def _elapsed(self, elapsed: float | None) -> float:
        return float(self.pacer.elapsed() if elapsed is None else elapsed)

    def update(self, elapsed: float | None = None) -> np.ndarray:
        """Feed the pacer the shared spend and re-evaluate the guard; returns ``guarded``."""
        e = self._elapsed(elapsed)
        spent = self.spent()
        self.pacer.update(spent, elapsed=e)
        self._samples.append((e, spent))
        while len(self._samples) > 2 and self._samples[1][0] <= e - self.guard_window:
            self._samples.popleft()
        e0, s0 = self._samples[0]
        if e > e0:
            asked = self.pacer.budget * (self.pacer.target(e) - self.pacer.target(e0))
            self.guarded = (spent - s0) > self.guard * asked
        return self.guarded

    def multiplier(self, elapsed: float | None = None) -> Any:
        return self.pacer.multiplier(self.spent(), elapsed=self._elapsed(elapsed))

    def should_bid(self, cost: npt.ArrayLike, elapsed: float | None = None) -> np.ndarray:
        ok = np.asarray(
            self.pacer.should_bid(self.spent(), self.pacer.budget, cost,
                                  elapsed=self._elapsed(elapsed))
        )
        return ok & ~self.guarded

    def try_bid(self, cost: npt.ArrayLike, elapsed: float | None = None) -> np.ndarray:
        """``should_bid``, then the money from the shared budget for each campaign it allows
        (one ``cost`` per campaign, a scalar for all): the mask of bids to make."""
        c = np.broadcast_to(np.asarray(cost, dtype=np.float64), (len(self.campaigns),))
        ok = self.should_bid(c, elapsed)
        idx = np.flatnonzero(ok)
        if idx.size:
            ok[idx] = self.budget.try_spend_slots(self._slots[idx], c[idx])
        return ok

    def __repr__(self) -> str:
        return (
            f"SharedPacer({type(self.pacer).__name__}, campaigns={len(self.campaigns)}, "
            f"guard={self.guard:g}, guarded={int(self.guarded.sum())})"
        )
