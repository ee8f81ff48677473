"""The bidding credit pool: a feedback safety valve against lost win notices.

Every bid takes credits, every win notice brings credits back, and a periodic bump keeps a
bidder from stopping for good. When the exchange's win notices stop arriving (the spend is real
but unseen), the pool drains within seconds and the bidder stops bidding instead of spending
blind; it bids again briefly at every bump, and fully once notices flow again.

The core is the Cython class ``rtbcore._fastpath._CreditPool``; :class:`CreditPool` is a thin
subclass that adds nothing to the hot path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rtbcore._fastpath import _CreditPool
from rtbcore._state import envelope, opened
from rtbcore.errors import InvalidInputError, StateError

__all__ = ["CreditPool"]


def _gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


class CreditPool(_CreditPool):
    """A pool of bidding credits shared by any number of bidder threads.

    ``CreditPool(initial, cap, bid_cost=1, win_credit=10, loss_credit=0, bump=100,
    bump_every=60.0, clock=None)``

    - ``try_bid()`` takes ``bid_cost`` and returns True, or returns False when the pool cannot
      pay; ``try_bids(n)`` grants as many of ``n`` bids as the pool can pay for (exactly what
      ``n`` successive ``try_bid()`` calls would do); ``try_bid_block(costs)`` decides a numpy
      array of per-request costs in order and returns the boolean mask of grants.
    - ``record_win(n=1)`` / ``record_loss(n=1)`` add ``win_credit`` / ``loss_credit`` per notice.
    - ``tick(now=None)`` applies the bumps that have come due by ``now`` (default ``clock()``):
      bump k falls due at ``t0 + k * bump_every`` where ``t0`` is ``clock()`` at construction.
      A bump **adds** ``bump`` credits (it does not fill the pool to the cap unless ``bump`` is
      that large); bumps missed between two ticks are all applied at once. The pool never reads
      the clock on its own: call ``tick()`` from your event loop or a timer.
    - ``credits`` is never negative and never above ``cap``: additions saturate at the cap, and
      what the cap turns away is counted in ``stats()["discarded"]``; refused bids are counted in
      ``stats()["refused"]``.

    Amounts may be fractional. Each is rounded once, on the way in, to the nearest micro-credit
    (1e-6 credit, the pool's resolution) and held as an int64 count of them, so the accounting
    is exact from then on. An amount is 0 or between 1e-6 and 9e12 credits: a non-zero amount
    below the resolution (a bid that would be free, a credit that would never arrive) is
    refused. ``clock`` defaults to ``time.monotonic``; inject one in tests. Credits are the
    pool's own unit, not money: a bid's cost in credits is a policy, not its price.

    Bad input (negative, NaN, non-numeric or sub-resolution amounts, ``cap < initial``,
    ``n < 0``, time going backwards, bad cost arrays) raises
    :class:`rtbcore.errors.InvalidInputError` naming the argument (and the index), and leaves the
    pool unchanged.

    Thread safety: relies on the GIL. Each method converts and validates its arguments first
    (this may run Python code: the clock, ``__index__``), then reads and updates the pool in one
    run of C code that calls no Python API and never releases the GIL, so no other thread can
    interleave with the update. On a free-threaded CPython the extension module re-enables the
    GIL when imported (it does not declare itself free-threading safe); if the GIL has been
    forced off (``PYTHON_GIL=0``) the constructor raises ``RuntimeError``.
    """

    __slots__ = ()

    def __init__(
        self,
        initial: float,
        cap: float,
        bid_cost: float = 1,
        win_credit: float = 10,
        loss_credit: float = 0,
        bump: float = 100,
        bump_every: float = 60.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not _gil_enabled():
            raise RuntimeError(
                "CreditPool relies on the GIL for atomic updates and the GIL is disabled "
                "(PYTHON_GIL=0); run with the GIL enabled"
            )
        super().__init__(
            initial, cap, bid_cost, win_credit, loss_credit, bump, bump_every, clock
        )

    def to_state(self) -> dict[str, Any]:
        """The pool's state as a plain dict (versioned): credits and amounts in micro-credits,
        the bump schedule's clock times, the counters. The clock is not part of it."""
        return envelope("CreditPool", self._get_state())

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        clock: Callable[[], float] | None = None,
        now: float | None = None,
    ) -> CreditPool:
        """A pool that resumes from ``to_state()``. ``now``: the new clock's reading that
        stands for the saved last tick (give it when the clock is not the saved one's, e.g.
        ``time.monotonic`` after a restart): the bump schedule keeps its phase and the time
        the pool was down does not count as bump time."""
        keys = ("credits", "cap", "bid_cost", "win_credit", "loss_credit", "bump",
                "bump_every", "t0", "last_tick", "bumps_due", "granted", "refused", "wins",
                "losses", "discarded")  # fmt: skip
        st = opened(state, "CreditPool", keys)
        pool = cls(0, 0, clock=clock)
        try:
            shift = 0.0 if now is None else float(now) - float(st["last_tick"])
            pool._set_state(dict(st), shift)
        except InvalidInputError as e:
            raise StateError(f"state: {e}") from None
        except (TypeError, ValueError, OverflowError) as e:
            raise StateError(f"state: inconsistent CreditPool state ({e!r})") from None
        return pool

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.to_state(), self.clock))

    def __repr__(self) -> str:
        return (
            f"CreditPool(credits={self.credits:g}, cap={self.cap:g}, bid_cost={self.bid_cost:g}, "
            f"win_credit={self.win_credit:g}, loss_credit={self.loss_credit:g}, "
            f"bump={self.bump:g}, bump_every={self.bump_every:g})"
        )


def _restore(state: dict[str, Any], clock: Callable[[], float]) -> CreditPool:
    return CreditPool.from_state(state, clock=clock)
