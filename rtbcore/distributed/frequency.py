"""FrequencyCap: at most ``limit`` ads per user per window, counted exactly across every node
through Redis, with a local cache of the users already at the cap."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import redis.cluster

from rtbcore.distributed import _lua
from rtbcore.distributed._redis import OUTAGE, Script, connect
from rtbcore.distributed.breaker import CircuitBreaker
from rtbcore.errors import InvalidInputError, StoreUnavailable

__all__ = ["FrequencyCap"]

_COUNT = Script(_lua.FREQUENCY)
_COUNT_MANY = Script(_lua.FREQUENCY_MANY)
_COUNT_PACKED = Script(_lua.FREQUENCY_PACKED)
_MANY_CHUNK = 2000     # users per multi-key call: bounds how long one script holds the server


class FrequencyCap:
    """At most ``limit`` ads per user per ``window`` seconds, across all nodes.

    ``FrequencyCap(redis_url, limit, window, *, name="fcap", cluster=None,
    socket_timeout=1.0, retry_after=0.5, fail_open=False)``

    ``allow(user_ids)`` takes an array of user ids (ints, or strings) and returns a boolean
    mask: ``True`` where the ad may be shown, and it is then counted. A user's count lives in
    one Redis key (``NAME:{USER}``, a hash tag per user so a cluster spreads them), updated
    atomically by a script (on one server, one call per 2,000 distinct users of the block; on
    a cluster, one call per distinct user, pipelined), so the cap is exact across nodes: of all
    the calls in a window, exactly ``limit`` are allowed per user (fewer if the Redis answers
    show it was reached). Windows are fixed and aligned to the Unix epoch in Redis's clock (a
    day window runs from 00:00 UTC to 00:00 UTC); every node agrees on where one ends.

    A user found at the cap is remembered locally until its window ends (by this node's clock,
    never earlier than Redis's), so further checks on that user make no Redis call. If Redis
    cannot be reached, users not in the cache are refused (``fail_open=False``, the default:
    no ad rather than an ad over the cap) or allowed uncounted (``fail_open=True``);
    ``breaker`` shows the state.
    """

    def __init__(
        self,
        redis_url: str,
        limit: int,
        window: float,
        *,
        name: str = "fcap",
        cluster: bool | None = None,
        socket_timeout: float = 1.0,
        retry_after: float = 0.5,
        fail_open: bool = False,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
            raise InvalidInputError(f"limit must be an int >= 1, got {limit!r}")
        try:
            w = float(window)
        except (TypeError, ValueError):
            raise InvalidInputError(f"window must be a number of seconds, got {window!r}") from None
        if not 0.001 <= w <= 366 * 86_400:
            raise InvalidInputError(f"window must be between 1 ms and 366 days, got {window!r}")
        if not isinstance(name, str) or not name or any(ch in name for ch in "{}"):
            raise InvalidInputError(f"name must be a non-empty string without braces, got {name!r}")
        self.limit = int(limit)
        self.window = w
        self.name = name
        self.fail_open = bool(fail_open)
        self._window_ms = max(1, round(w * 1000))
        self._url = redis_url
        self._client = connect(redis_url, cluster, socket_timeout, min(socket_timeout, 1.0))
        self._cluster = isinstance(self._client, redis.cluster.RedisCluster)
        self.breaker = CircuitBreaker(retry_after=retry_after)
        self._lock = threading.Lock()
        # the capped users with the (monotonic) time their window ends: int ids in sorted
        # arrays for the vectorised look-up, string ids in a dict
        self._capped: dict[Any, float] = {}
        self._ids = np.empty(0, dtype=np.int64)
        self._until = np.empty(0, dtype=np.float64)
        self._checks = 0
        self._cache_hits = 0
        self._calls = 0

    def allow(self, user_ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """One decision per entry of ``user_ids`` (in order, repeats counted in turn); each
        ``True`` counts one ad for that user in the current window."""
        users = np.asarray(user_ids)
        if users.ndim == 0:
            users = users.reshape(1)
        if users.ndim != 1:
            raise InvalidInputError(f"user_ids must be 1-D, got shape {users.shape}")
        if users.dtype.kind == "u":
            if users.size and users.max() >= 2**63:
                raise InvalidInputError("user_ids must fit in int64")
            users = users.astype(np.int64)
        elif users.dtype.kind not in "iUO":
            raise InvalidInputError(f"user_ids must be ints or strings, got dtype {users.dtype}")
        n = users.shape[0]
        out = np.zeros(n, dtype=np.bool_)
        if n == 0:
            return out
        now = time.monotonic()
        with self._lock:
            hit = self._cached(users, now)
            self._checks += n
            self._cache_hits += int(hit.sum())
        todo = np.flatnonzero(~hit)
        if todo.size == 0:
            return out
        uniq, inverse, counts = np.unique(users[todo], return_inverse=True, return_counts=True)
        ints = users.dtype.kind == "i"
        if not ints:
            for u in uniq.tolist():
                if isinstance(u, bool) or not isinstance(u, int | str) or (
                    isinstance(u, str) and ("{" in u or "}" in u)
                ):
                    raise InvalidInputError(
                        f"user id {u!r} must be an int or a string without braces"
                    )
        if not self.breaker.allow():
            out[todo] = self.fail_open
            return out
        try:
            after, left_ms = self._count(uniq, counts, ints)
        except (*OUTAGE, StoreUnavailable) as e:
            self.breaker.failure(e)
            out[todo] = self.fail_open
            return out
        self.breaker.success()
        # of a user's `count` occurrences, the first `limit - before` are allowed
        allowed = np.clip(self.limit - (after - counts), 0, counts)
        # rank of each occurrence among the same user's in this call
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        rank = np.empty(todo.size, dtype=np.int64)
        rank[order] = np.arange(todo.size) - np.repeat(starts, counts)
        out[todo] = rank < allowed[inverse]
        full = np.flatnonzero(after >= self.limit)
        if full.size:
            until = time.monotonic() + left_ms[full] / 1000.0
            with self._lock:
                if ints:
                    self._add_ints(uniq[full], until)
                else:
                    self._capped.update(zip(uniq[full].tolist(), until.tolist(), strict=True))
        return out

    def _count(
        self, uniq: np.ndarray, counts: np.ndarray, ints: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add each user's occurrences in Redis: the counts after, and the ms left in the
        window, per user. On one server, one script call per chunk of users (int ids packed in
        one argument); on a cluster, one script call per user (pipelined), as a script's keys
        must share a slot there."""
        keys = [f"{self.name}:{{{u}}}" for u in uniq.tolist()] if not ints or self._cluster \
            else None
        c = counts.tolist()
        if self._cluster:
            assert keys is not None
            calls = [([k], [n, self._window_ms]) for k, n in zip(keys, c, strict=True)]
            res = _COUNT.run_many(self._client, calls)
            self._check(res)
            self._calls += len(calls)
            return (np.array([int(r[0]) for r in res], dtype=np.int64),
                    np.array([int(r[1]) for r in res], dtype=np.int64))
        chunks = range(0, len(c), _MANY_CHUNK)
        if keys is None:
            u = uniq.tolist()
            res = _COUNT_PACKED.run_many(self._client, [
                ([], [self._window_ms, self.name, ",".join(
                    f"{a}:{b}" for a, b in zip(u[i:i + _MANY_CHUNK], c[i:i + _MANY_CHUNK],
                                               strict=True))])
                for i in chunks
            ])
        else:
            res = _COUNT_MANY.run_many(self._client, [
                (keys[i:i + _MANY_CHUNK], [self._window_ms, *c[i:i + _MANY_CHUNK]])
                for i in chunks
            ])
        self._check(res)
        self._calls += len(res)
        after = np.concatenate([np.array(r[:-1], dtype=np.int64) for r in res])
        left = np.concatenate([np.full(len(r) - 1, int(r[-1]), dtype=np.int64) for r in res])
        return after, left

    def _check(self, res: list) -> None:
        bad = next((r for r in res if isinstance(r, Exception)), None)
        if bad is not None:
            raise StoreUnavailable(f"Redis at {self._url} refused a frequency call: {bad}")

    def _cached(self, users: np.ndarray, now: float) -> np.ndarray:
        """Which users the cache knows to be at the cap (caller holds the lock)."""
        if users.dtype.kind == "i":
            if self._ids.size == 0:
                return np.zeros(users.shape[0], dtype=np.bool_)
            pos = np.minimum(np.searchsorted(self._ids, users), self._ids.size - 1)
            return (self._ids[pos] == users) & (self._until[pos] > now)
        if not self._capped:
            return np.zeros(users.shape[0], dtype=np.bool_)
        get = self._capped.get
        return np.fromiter(
            ((get(u, 0.0) > now) for u in users.tolist()), dtype=np.bool_, count=users.shape[0]
        )

    def _add_ints(self, ids: np.ndarray, until: np.ndarray) -> None:
        """Merge newly capped int users (sorted, distinct) into the sorted cache, dropping
        expired entries and older entries of the same users (caller holds the lock)."""
        keep = (self._until > time.monotonic()) & ~np.isin(self._ids, ids)
        merged = np.concatenate((self._ids[keep], ids))
        order = np.argsort(merged, kind="stable")     # two sorted runs: a linear merge
        self._ids = merged[order]
        self._until = np.concatenate((self._until[keep], until))[order]

    def count(self, user_id: Any) -> int:
        """The user's count in the current window, read from Redis (0 if none)."""
        key = f"{self.name}:{{{user_id}}}"
        try:
            w, c = self._client.hmget(key, "w", "c")
            (t_s, t_us) = self._client.time()
        except OUTAGE as e:
            raise StoreUnavailable(f"Redis at {self._url}: {e}") from e
        now_ms = int(t_s) * 1000 + int(t_us) // 1000
        if w is None or int(w) != now_ms // self._window_ms:
            return 0
        return int(c)

    def stats(self) -> dict[str, Any]:
        """``checks``, ``cache_hits`` (answered from the cache), ``redis_calls``, ``cached``
        (users in the cache), ``breaker``."""
        return {
            "checks": self._checks,
            "cache_hits": self._cache_hits,
            "redis_calls": self._calls,
            "cached": len(self._capped) + int(self._ids.size),
            "breaker": self.breaker.state,
        }

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FrequencyCap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FrequencyCap(limit={self.limit}, window={self.window:g}, name={self.name!r})"
