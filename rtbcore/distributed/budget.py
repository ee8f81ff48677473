"""SharedBudget: campaign budgets shared by any number of processes and hosts through Redis,
spent locally without a Redis call per bid.

The protocol (docs/distributed.md has the whole story): per campaign, each node holds a *lease*
(a reservation of ``lease_fraction`` of the budget, with a TTL) and *draws* money from it in
steps of ``draw_fraction`` of a lease (more for a campaign that spends fast, up to a lease).
Drawn money counts as spent in Redis at once, so the node owns it and spends it locally
(``try_spend``) with no further call, even while Redis is down;
what it has not spent goes back (a refund) when the node closes. A lease that is not renewed
within its TTL is reaped by the next script call on that campaign, which returns it to the free
budget. Every script keeps ``spent + held <= budget``, so the drawn money of all nodes never
exceeds the budget, whatever crashes: a crash strands at most the node's lease (back after the
TTL) and the unspent part of one draw step, at most a lease (counted as spent, for good).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from rtbcore._fastpath import _ledger_units, _SpendLedger
from rtbcore.distributed import _lua
from rtbcore.distributed._redis import OUTAGE, Script, connect
from rtbcore.distributed.breaker import CircuitBreaker
from rtbcore.errors import InvalidInputError, StoreUnavailable

__all__ = ["SharedBudget"]

_SCALE = 1_000_000
_MAX_BUDGET_UNITS = 2**53          # Lua numbers are doubles: exact integers up to 2**53
_HORIZON = 0.25                    # seconds of spending a draw step covers at least
_INIT = Script(_lua.INIT)
_SET_BUDGET = Script(_lua.SET_BUDGET)
_SYNC = Script(_lua.SYNC)


def _check_id(c: object) -> str:
    if isinstance(c, bool) or not isinstance(c, int | str | np.integer):
        raise InvalidInputError(f"campaign ids must be ints or strings, got {c!r}")
    s = str(int(c)) if isinstance(c, int | np.integer) else c
    if not s or any(ch in s for ch in "{}") or len(s) > 200:
        raise InvalidInputError(
            f"campaign id {c!r} must be 1-200 characters without '{{' or '}}' (hash-tag braces)"
        )
    return s


def _positive_fraction(x: object, name: str) -> float:
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number in (0, 1], got {x!r}") from None
    if not 0.0 < f <= 1.0:
        raise InvalidInputError(f"{name} must be in (0, 1], got {x!r}")
    return f


def _positive_seconds(x: object, name: str) -> float:
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number of seconds > 0, got {x!r}") from None
    if not 0.0 < f < float("inf"):
        raise InvalidInputError(f"{name} must be a number of seconds > 0, got {x!r}")
    return f


class SharedBudget:
    """Campaign budgets shared through Redis; ``try_spend`` runs at in-process speed.

    ``SharedBudget(redis_url, budgets, lease_fraction=0.01, *, draw_fraction=0.25, ttl=30.0,
    interval=1.0, node=None, cluster=None, prefix="cmp", socket_timeout=1.0,
    retry_after=0.5)``

    ``budgets`` maps campaign ids (ints or strings) to budgets in currency units (rounded to
    the nearest 1e-6). A campaign new to Redis is created with that budget; one that exists
    must have the same budget (``set_budget`` changes it). ``cluster``: None detects a Redis
    Cluster from the server, True/False forces the client. The constructor draws the first
    money of every campaign, so spending can start at once; it raises
    :class:`~rtbcore.errors.StoreUnavailable` if Redis cannot be reached then.

    ``try_spend(campaign, amount)`` and ``try_spend_many(campaigns, amounts)`` are
    thread-safe (they rely on the GIL, like :class:`~rtbcore.CreditPool`). A background thread
    draws more when a campaign runs low, renews the leases every ``interval`` seconds and
    reports spend; ``breaker`` says whether Redis answers. Use as a context manager, or call
    ``close()`` to give back what this node has not spent.
    """

    def __init__(
        self,
        redis_url: str,
        budgets: Mapping[Hashable, float],
        lease_fraction: float = 0.01,
        *,
        draw_fraction: float = 0.25,
        ttl: float = 30.0,
        interval: float = 1.0,
        node: str | None = None,
        cluster: bool | None = None,
        prefix: str = "cmp",
        socket_timeout: float = 1.0,
        retry_after: float = 0.5,
    ) -> None:
        if not isinstance(budgets, Mapping) or not budgets:
            raise InvalidInputError("budgets must be a non-empty mapping campaign -> budget")
        self.lease_fraction = _positive_fraction(lease_fraction, "lease_fraction")
        self.draw_fraction = _positive_fraction(draw_fraction, "draw_fraction")
        self.ttl = _positive_seconds(ttl, "ttl")
        self.interval = _positive_seconds(interval, "interval")
        if self.interval >= self.ttl:
            raise InvalidInputError(
                f"interval ({interval!r} s) must be shorter than ttl ({ttl!r} s): the lease "
                "is renewed every interval"
            )
        if not isinstance(prefix, str) or not prefix or any(ch in prefix for ch in "{}:"):
            raise InvalidInputError(
                f"prefix must be a non-empty string without {{}}:, got {prefix!r}"
            )
        self.node = node if node is not None else (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self.campaigns: list[Hashable] = list(budgets)
        self._ids = [_check_id(c) for c in self.campaigns]
        if len(set(self._ids)) != len(self._ids):
            raise InvalidInputError("budgets has two campaigns with the same id")
        units = []
        for c in self.campaigns:
            u = _ledger_units(budgets[c], f"budgets[{c!r}]")
            if u > _MAX_BUDGET_UNITS:
                raise InvalidInputError(f"budgets[{c!r}] is too large (max {2**53 / _SCALE:g})")
            units.append(u)
        self._keys = [
            (f"{{{prefix}:{i}}}", f"{{{prefix}:{i}}}:leases", f"{{{prefix}:{i}}}:expiry")
            for i in self._ids
        ]
        n = len(self.campaigns)
        self._slot = {c: k for k, c in enumerate(self.campaigns)}
        self._int_ids: tuple[np.ndarray, np.ndarray] | None = None
        if all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in self.campaigns):
            ids = np.array([int(c) for c in self.campaigns], dtype=np.int64)
            order = np.argsort(ids, kind="stable")
            self._int_ids = (ids[order], order.astype(np.int64))
        self._lease = [max(1, round(u * self.lease_fraction)) for u in units]
        self._draw = [max(1, round(lease * self.draw_fraction)) for lease in self._lease]
        # the step drawn now: at least _draw, more when the campaign spends fast (see _step_for)
        self._step = list(self._draw)
        self._last_draw = [(time.monotonic(), 0)] * n
        self._wake = threading.Event()
        self._ledger = _SpendLedger(self._slot, self._wake.set)
        for k in range(n):
            self._ledger.set_low(k, self._draw[k] // 2)
        self.try_spend = self._ledger.try_spend
        self._reported = [0] * n                 # local spend already added to Redis's `used`
        self._held = [0] * n                     # this node's lease, as of the last sync
        self._remote = [(u, 0, 0, 0) for u in units]   # budget, spent, held, used (last seen)
        self._exhausted = [False] * n
        self._drawn = 0
        self._refunded = 0
        self._syncs = 0
        self._calls = 0
        self._reaped = 0
        self.breaker = CircuitBreaker(
            retry_after=retry_after, max_retry_after=max(retry_after, 5.0)
        )
        self._url = redis_url
        self._client = connect(redis_url, cluster, socket_timeout, min(socket_timeout, 1.0))
        self._io = threading.Lock()              # one sync at a time (thread and close)
        self._stop = threading.Event()
        self._closed = False
        try:
            self._init_campaigns(units)
            self._sync(range(n))
        except OUTAGE as e:
            self._client.close()
            raise StoreUnavailable(f"Redis at {redis_url} failed during set-up: {e}") from e
        except BaseException:
            self._client.close()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"rtbcore-budget-{self.node}", daemon=True
        )
        self._thread.start()

    # ---- spending (try_spend is the ledger's own method, bound in __init__) ----

    def try_spend_many(
        self, campaigns: npt.ArrayLike, amounts: npt.ArrayLike,
        out: npt.NDArray[np.bool_] | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Decide a block of spends in order (campaign ``campaigns[i]``, ``amounts[i]``);
        returns the boolean mask of those granted, exactly as ``try_spend`` one at a time."""
        return self._ledger.try_spend_slots(self.slots(campaigns), amounts, out)

    def try_spend_slots(
        self, slots: npt.ArrayLike, amounts: npt.ArrayLike,
        out: npt.NDArray[np.bool_] | None = None,
    ) -> npt.NDArray[np.bool_]:
        """``try_spend_many`` with the campaigns given as slots (see ``slots``)."""
        return self._ledger.try_spend_slots(slots, amounts, out)

    def slots(self, campaigns: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The slots (0..n-1, in ``campaigns`` order) of an array of campaign ids, for
        ``try_spend_slots``: compute them once when the same ids come back block after block
        (the ids' look-up is the costly part of a block)."""
        arr = np.asarray(campaigns)
        if arr.ndim != 1:
            raise InvalidInputError(f"campaigns must be 1-D, got shape {arr.shape}")
        if self._int_ids is not None and arr.dtype.kind in "iu":
            ids, order = self._int_ids
            pos = np.minimum(np.searchsorted(ids, arr), len(ids) - 1)
            bad = np.flatnonzero(ids[pos] != arr)
            if bad.size:
                i = int(bad[0])
                raise InvalidInputError(
                    f"campaigns[{i}] = {arr[i]!r} is not one of this budget's campaigns"
                )
            return order[pos]
        get = self._slot.get
        out = np.empty(arr.shape[0], dtype=np.int64)
        for i, c in enumerate(arr.tolist()):
            s = get(c)
            if s is None:
                raise InvalidInputError(
                    f"campaigns[{i}] = {c!r} is not one of this budget's campaigns"
                )
            out[i] = s
        return out

    # ---- state ----

    def local(self, campaign: Hashable) -> dict[str, Any]:
        """This node's view of a campaign: ``available`` (drawn, not spent), ``spent`` (by this
        node), ``lease`` (reserved for this node at the last sync) and ``exhausted``."""
        k = self._slot_of(campaign)
        return {
            "available": self._ledger.avail_units(k) / _SCALE,
            "spent": self._ledger.spent_units(k) / _SCALE,
            "lease": self._held[k] / _SCALE,
            "exhausted": self._exhausted[k],
        }

    def spent(self, campaign: Hashable) -> float:
        """The campaign's spend across all nodes as this node knows it: what the nodes had
        reported at this node's last sync plus this node's spend not reported yet."""
        k = self._slot_of(campaign)
        used = self._remote[k][3]
        return (used + self._ledger.spent_units(k) - self._reported[k]) / _SCALE

    def budget(self, campaign: Hashable) -> float:
        """The campaign's budget as of the last sync."""
        return self._remote[self._slot_of(campaign)][0] / _SCALE

    def snapshot(self, campaign: Hashable) -> dict[str, Any]:
        """The campaign's state in Redis now (one call): ``budget``, ``spent`` (drawn by the
        nodes), ``held`` (reserved by live leases), ``used`` (spend reported), ``free``, and
        ``leases``: node -> reservation. Raises StoreUnavailable if Redis does not answer."""
        k = self._slot_of(campaign)
        h, leases, _ = self._keys[k]
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hgetall(h)
            pipe.hgetall(leases)
            raw, ls = pipe.execute()
        except OUTAGE as e:
            raise StoreUnavailable(f"Redis at {self._url}: {e}") from e
        v = {f.decode(): int(x) for f, x in raw.items()}
        out = {f: v.get(f, 0) / _SCALE for f in ("budget", "spent", "held", "used")}
        out["free"] = (v.get("budget", 0) - v.get("spent", 0) - v.get("held", 0)) / _SCALE
        out["leases"] = {n.decode(): int(x) / _SCALE for n, x in ls.items()}
        return out

    def set_budget(self, campaign: Hashable, budget: float) -> None:
        """Change a campaign's budget in Redis for every node; a budget below what is already
        drawn plus reserved is refused (InvalidInputError)."""
        k = self._slot_of(campaign)
        u = _ledger_units(budget, "budget")
        if u > _MAX_BUDGET_UNITS:
            raise InvalidInputError(f"budget is too large (max {2**53 / _SCALE:g})")
        try:
            (r,) = _SET_BUDGET.run_many(self._client, [(self._keys[k], [u])])
        except OUTAGE as e:
            raise StoreUnavailable(f"Redis at {self._url}: {e}") from e
        if isinstance(r, Exception):
            raise InvalidInputError(
                f"budget {budget!r} of campaign {campaign!r} is below what the nodes have "
                f"already drawn and reserved ({int(str(r).split()[-1]) / _SCALE:g})"
            ) from r
        self._exhausted[k] = False
        self._wake.set()

    def stats(self) -> dict[str, Any]:
        """Counters: ``granted`` / ``refused`` spends, ``syncs`` (sync rounds), ``redis_calls``
        (script calls), ``drawn`` and ``refunded`` (currency units), ``reaped`` (expired leases
        this node returned), ``breaker`` (its state) and ``breaker_opened``, ``last_error``."""
        return {
            "granted": self._ledger.granted,
            "refused": self._ledger.refused,
            "syncs": self._syncs,
            "redis_calls": self._calls,
            "drawn": self._drawn / _SCALE,
            "refunded": self._refunded / _SCALE,
            "reaped": self._reaped,
            "breaker": self.breaker.state,
            "breaker_opened": self.breaker.opened,
            "last_error": self.breaker.last_error,
        }

    def _slot_of(self, campaign: Hashable) -> int:
        try:
            return self._slot[campaign]
        except (KeyError, TypeError):
            raise InvalidInputError(
                f"unknown campaign {campaign!r}: not one of this budget's campaigns"
            ) from None

    # ---- talking to Redis ----

    def _init_campaigns(self, units: list[int]) -> None:
        calls = [(keys[:1], [u]) for keys, u in zip(self._keys, units, strict=True)]
        res = _INIT.run_many(self._client, calls)
        for c, u, r in zip(self.campaigns, units, res, strict=True):
            if isinstance(r, Exception):
                raise StoreUnavailable(f"Redis at {self._url} refused campaign {c!r}: {r}")
            if int(r) != u:
                raise InvalidInputError(
                    f"campaign {c!r} already has budget {int(r) / _SCALE:g} in Redis, not "
                    f"{u / _SCALE:g}: use set_budget to change it"
                )

    def _sync(self, slots: Any, closing: bool = False) -> None:
        """One pipelined script call per campaign in ``slots``: report spend, draw when low,
        renew (or, closing, release) the lease, refund (closing) what was not spent."""
        with self._io:
            calls, plan = [], []
            ms = int(self.ttl * 1000)
            for k in slots:
                spent_now = self._ledger.spent_units(k)
                refund = self._ledger.drain(k) if closing else 0
                avail = self._ledger.avail_units(k)
                # top the drawn money up to one step: a node never holds more unspent
                draw = 0
                if not closing and avail < self._step[k] // 2:
                    draw = self._step_for(k, spent_now) - avail
                lease = 0 if closing else self._lease[k]
                used = spent_now - self._reported[k]
                calls.append((self._keys[k], [self.node, draw, lease, refund, used, ms]))
                plan.append((k, spent_now, refund, draw))
            if not calls:
                return
            self._calls += len(calls)
            try:
                res = _SYNC.run_many(self._client, calls)
            except BaseException:
                for k, _, refund, _ in plan:
                    if refund:   # not given back: still this node's to spend or return later
                        self._ledger.credit(k, refund)
                raise
            self._syncs += 1
            failed = None
            for (k, spent_now, refund, draw), r in zip(plan, res, strict=True):
                if isinstance(r, Exception):
                    if refund:
                        self._ledger.credit(k, refund)
                    failed = r
                    continue
                drawn, mine, budget, spent, held, used, reaped, _now = (int(x) for x in r)
                self._ledger.credit(k, drawn)
                self._drawn += drawn
                self._refunded += refund
                self._reaped += reaped
                self._reported[k] = spent_now
                self._held[k] = mine
                self._remote[k] = (budget, spent, held, used)
                self._exhausted[k] = draw > 0 and drawn == 0
            if failed is not None:
                raise StoreUnavailable(f"Redis at {self._url} refused a budget call: {failed}")

    def _step_for(self, k: int, spent_now: int) -> int:
        """The draw step of campaign k: ``draw_fraction`` of a lease, or what it spends in
        ``_HORIZON`` seconds at its rate since the last draw if that is more, at most a lease.
        A step must outlast a refill's round trip (which waits for the GIL while other threads
        spend), or spends are refused while the refill is on its way."""
        now = time.monotonic()
        t0, s0 = self._last_draw[k]
        self._last_draw[k] = (now, spent_now)
        rate = (spent_now - s0) / (now - t0) if now > t0 else 0.0
        step = min(self._lease[k], max(self._draw[k], int(rate * _HORIZON)))
        if step != self._step[k]:
            self._step[k] = step
            self._ledger.set_low(k, step // 2)
        return step

    def _run(self) -> None:
        n = len(self.campaigns)
        next_beat = time.monotonic() + self.interval
        while not self._stop.is_set():
            now = time.monotonic()
            wait = max(0.0, next_beat - now)
            if self.breaker.state == "open":
                wait = min(wait, self.breaker.seconds_to_retry())
            self._wake.wait(timeout=wait)
            self._wake.clear()
            if self._stop.is_set():
                break
            if not self.breaker.allow():
                continue
            now = time.monotonic()
            beat = now >= next_beat
            if beat:
                next_beat = now + self.interval
                todo = range(n)
            else:
                todo = [k for k in self._ledger.wanting() if not self._exhausted[k]]
            if not todo:
                continue
            try:
                self._sync(todo)
            except (*OUTAGE, StoreUnavailable) as e:
                self.breaker.failure(e)
                # retry the whole set on the next attempt, not only the low campaigns
                next_beat = min(next_beat, time.monotonic() + self.breaker.seconds_to_retry())
            else:
                self.breaker.success()

    def close(self) -> None:
        """Stop the background thread, give back this node's lease and the money it drew but
        did not spend, and report its spend (one call per campaign). If Redis cannot be
        reached the lease returns after its TTL and the unspent drawn money stays counted as
        spent. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join()
        try:
            self._sync(range(len(self.campaigns)), closing=True)
        except (*OUTAGE, StoreUnavailable) as e:
            self.breaker.failure(e)
        finally:
            self._client.close()

    def __enter__(self) -> SharedBudget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"SharedBudget(campaigns={len(self.campaigns)}, node={self.node!r}, "
            f"lease_fraction={self.lease_fraction:g}, breaker={self.breaker.state!r})"
        )
