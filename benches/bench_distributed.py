"""rtbcore.distributed benches against a real redis-server started for this module, each beside
the naive design measured in the same run.

- ``shared budget spend``: ``SharedBudget.try_spend`` from a Python loop (the lease is large
  enough that no refill is due during a round; the background thread renews once a second),
  against the naive designs with one Redis call per bid: ``INCRBYFLOAT`` (no check at all), and
  a Lua script that checks the budget and spends (what a correct per-bid design needs).
  items = spends. ``redis_calls_per_s`` in the JSON's extra_info: the Redis calls the
  SharedBudget made per second of the round.
- ``shared budget block``: ``try_spend_many`` on 1M spends over 16 campaigns.
- ``frequency cap``: ``FrequencyCap.allow`` on blocks of 10k users drawn from a Zipf
  distribution over 1M users (limit 3 per window; a warm-up pass fills the cache, as a running
  bidder's is), against one script round trip per check. items = checks; ``cache_hit_rate``
  in extra_info.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis

from rtbcore.distributed import FrequencyCap, SharedBudget, _lua
from rtbcore.distributed._redis import Script

from redis_servers import RedisServer

CALLS = 200_000
NAIVE_CALLS = 2_000
BLOCK = 1_000_000
USERS_BLOCK = 10_000
YEAR = 366 * 86_400.0

NAIVE_SPEND = Script("""
local b = tonumber(redis.call('HGET', KEYS[1], 'budget'))
local s = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local c = tonumber(ARGV[1])
if s + c > b then return 0 end
redis.call('HINCRBY', KEYS[1], 'spent', c)
return 1
""")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("bench-redis"))
    yield server.url
    server.stop()


def _loop(f, campaign, n):
    granted = 0
    for _ in range(n):
        granted += f(campaign, 0.001)
    return granted


@pytest.mark.benchmark(group="shared budget spend")
def test_shared_budget_try_spend(benchmark, url):
    benchmark.extra_info["items"] = CALLS
    with SharedBudget(url, {f"b{time.time_ns()}": 1e9}, 0.01) as b:
        (c,) = b.campaigns
        calls0, t0 = b.stats()["redis_calls"], time.monotonic()
        granted = benchmark.pedantic(_loop, args=(b.try_spend, c, CALLS), rounds=15,
                                     iterations=1)
        benchmark.extra_info["redis_calls_per_s"] = (
            (b.stats()["redis_calls"] - calls0) / (time.monotonic() - t0)
        )
    assert granted == CALLS


@pytest.mark.benchmark(group="shared budget spend")
def test_naive_incrbyfloat_per_bid(benchmark, url):
    benchmark.extra_info["items"] = NAIVE_CALLS
    benchmark.extra_info["baseline"] = True
    r = redis.Redis.from_url(url)
    key = f"naive:{time.time_ns()}"

    def run():
        for _ in range(NAIVE_CALLS):
            r.incrbyfloat(key, 0.001)

    benchmark.pedantic(run, rounds=5, iterations=1)
    r.close()


@pytest.mark.benchmark(group="shared budget spend")
def test_naive_checked_script_per_bid(benchmark, url):
    benchmark.extra_info["items"] = NAIVE_CALLS
    benchmark.extra_info["baseline"] = True
    r = redis.Redis.from_url(url)
    key = f"{{naive:{time.time_ns()}}}"
    r.hset(key, "budget", 10**15)

    def run():
        granted = 0
        for _ in range(NAIVE_CALLS):
            (ok,) = NAIVE_SPEND.run_many(r, [([key], [1000])])
            granted += ok
        return granted

    assert benchmark.pedantic(run, rounds=5, iterations=1) == NAIVE_CALLS
    r.close()


@pytest.mark.benchmark(group="shared budget block")
def test_shared_budget_try_spend_many(benchmark, url):
    benchmark.extra_info["items"] = BLOCK
    tag = time.time_ns() % 10**9
    budgets = {tag * 100 + i: 1e9 for i in range(16)}
    rng = np.random.default_rng(0)
    with SharedBudget(url, budgets, 0.01) as b:
        ids = np.array(b.campaigns, dtype=np.int64)[rng.integers(0, 16, BLOCK)]
        amounts = rng.uniform(0.0001, 0.001, BLOCK)
        m = benchmark.pedantic(b.try_spend_many, args=(ids, amounts), rounds=5, iterations=1)
    assert m.all()


def _zipf_users(rng, n):
    return (rng.zipf(1.3, n) % 1_000_000).astype(np.int64)


@pytest.mark.benchmark(group="frequency cap")
def test_frequency_cap_allow(benchmark, url):
    rounds = 10
    benchmark.extra_info["items"] = USERS_BLOCK
    rng = np.random.default_rng(0)
    with FrequencyCap(url, 3, YEAR, name=f"fb{time.time_ns()}") as cap:
        for _ in range(20):                           # warm-up: the cache a running node has
            cap.allow(_zipf_users(rng, USERS_BLOCK))
        blocks = iter([_zipf_users(rng, USERS_BLOCK) for _ in range(rounds)])
        before = cap.stats()

        def setup():
            return (next(blocks),), {}

        benchmark.pedantic(cap.allow, setup=setup, rounds=rounds, iterations=1)
        after = cap.stats()
        benchmark.extra_info["cache_hit_rate"] = (
            (after["cache_hits"] - before["cache_hits"]) / (after["checks"] - before["checks"])
        )


@pytest.mark.benchmark(group="frequency cap")
def test_frequency_one_round_trip_per_check(benchmark, url):
    benchmark.extra_info["items"] = NAIVE_CALLS
    benchmark.extra_info["baseline"] = True
    rng = np.random.default_rng(1)
    users = _zipf_users(rng, NAIVE_CALLS).tolist()
    r = redis.Redis.from_url(url)
    script = Script(_lua.FREQUENCY)
    name = f"fn{time.time_ns()}"
    window_ms = int(YEAR * 1000)

    def run():
        allowed = 0
        for u in users:
            ((count, _),) = script.run_many(r, [([f"{name}:{{{u}}}"], [1, window_ms])])
            allowed += count <= 3
        return allowed

    benchmark.pedantic(run, rounds=3, iterations=1)
    r.close()
