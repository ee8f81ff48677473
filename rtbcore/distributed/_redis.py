"""Connecting to Redis (one server or a cluster) and running the scripts with EVALSHA."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis
import redis.cluster
import redis.exceptions as rex
from redis.backoff import NoBackoff
from redis.retry import Retry

from rtbcore.errors import InvalidInputError, StoreUnavailable

# What counts as "the store is unavailable" (the breaker opens) rather than a bug: refused or
# dropped connections, time-outs, a server still loading its data after a restart, a cluster
# that is down or moving slots.
OUTAGE: tuple[type[BaseException], ...] = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.ReadOnlyError,
    OSError,
)


def connect(
    url: str, cluster: bool | None, socket_timeout: float, connect_timeout: float
) -> Any:
    """A redis-py client for ``url``: ``RedisCluster`` when ``cluster`` is True, or when it is
    None and the server says it runs in cluster mode; else a plain ``Redis``. The server must
    answer now (StoreUnavailable if not). Fails fast (no client-side retries): the callers
    have their own retry policy."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise InvalidInputError(
            f"redis_url must be a redis://, rediss:// or unix:// URL, got {url!r}"
        )
    opts: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
    }
    try:
        if cluster is None:
            probe = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **opts)
            try:
                cluster = probe.info("cluster").get("cluster_enabled") == 1
            finally:
                probe.close()
        if cluster:
            return redis.cluster.RedisCluster.from_url(
                url, retry=Retry(NoBackoff(), 0), **opts
            )
        client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **opts)
        try:
            client.ping()
        except BaseException:
            client.close()
            raise
        return client
    except OUTAGE as e:
        raise StoreUnavailable(f"cannot reach Redis at {url}: {e}") from e
    except rex.RedisError as e:
        raise StoreUnavailable(f"Redis at {url} refused the connection: {e}") from e


class Script:
    """A Lua script run with EVALSHA, loaded (SCRIPT LOAD) when the server does not know it."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.sha = hashlib.sha1(body.encode()).hexdigest()

    def run_many(self, client: Any, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]) -> list:
        """Run the script once per (keys, args), pipelined; returns the replies in order (an
        exception object for a call that failed). Calls refused for an unknown script did not
        run, so they are run again after loading it."""
        out = self._pipeline(client, calls)
        missing = [i for i, r in enumerate(out) if isinstance(r, rex.NoScriptError)]
        if missing:
            client.script_load(self.body)
            again = self._pipeline(client, [calls[i] for i in missing])
            for i, r in zip(missing, again, strict=True):
                out[i] = r
        return out

    def _pipeline(self, client: Any, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]) -> list:
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
        res: list = pipe.execute(raise_on_error=False)
        for r in res:
            # a dropped connection fails the whole batch: the breaker decides what then
            if isinstance(r, OUTAGE):
                raise r
        return res
