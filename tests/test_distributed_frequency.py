"""FrequencyCap against a real redis-server: exact across processes, window rollover, the cache,
an unreachable server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from rtbcore.distributed import FrequencyCap
from rtbcore.errors import InvalidInputError, StoreUnavailable

from redis_servers import free_port

WORKER = str(Path(__file__).with_name("frequency_worker.py"))
YEAR = 366 * 86_400.0   # a window no test run straddles in practice


def _four_processes(url, name):
    procs = [
        subprocess.Popen([sys.executable, WORKER, url, name, "3", str(YEAR), str(i)],
                         stdout=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    totals = np.zeros(200, dtype=np.int64)
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        totals += np.array(json.loads(out.strip().splitlines()[-1]))
    # 16,000 checks over 200 users: every user was asked for far more than 3 times
    assert totals.tolist() == [3] * 200
    with FrequencyCap(url, 3, YEAR, name=name) as cap:
        assert cap.count(5) >= 3


def test_exact_across_four_processes(redis_url):
    _four_processes(redis_url, "fc4")


@pytest.mark.slow
def test_exact_across_four_processes_on_a_cluster(redis_cluster):
    _four_processes(redis_cluster.url, f"fc-cluster-{time.time_ns()}")


def test_block_decisions_follow_order_and_repeats(redis_url):
    with FrequencyCap(redis_url, 2, YEAR, name="order") as cap:
        m = cap.allow(np.array([1, 2, 1, 1, 3, 2, 2, 1]))
        assert m.tolist() == [True, True, True, False, True, True, False, False]
        assert cap.allow([3, 3, 4]).tolist() == [True, False, True]
        s = cap.stats()
        assert s["cached"] == 3                                    # 1, 2, 3 are at the cap
        # capped users are answered from the cache, without a call
        assert cap.allow([1, 2, 3, 1]).tolist() == [False] * 4
        assert cap.stats()["redis_calls"] == s["redis_calls"]
        assert cap.stats()["cache_hits"] == 4
        # string ids, a scalar
        assert cap.allow(["u-1", "u-1", "u-1"]).tolist() == [True, True, False]
        assert cap.allow(7).tolist() == [True]
        assert cap.allow(np.array([-5, 2**62, -5, -5], dtype=np.int64)).tolist() == [
            True, True, True, False]
        assert cap.count(-5) == 3 and cap.count(2**62) == 1


def test_window_rollover_on_two_nodes(redis_url):
    window = 1.0
    a = FrequencyCap(redis_url, 2, window, name="roll")
    b = FrequencyCap(redis_url, 2, window, name="roll")
    try:
        r = redis.Redis.from_url(redis_url)
        t_s, t_us = r.time()
        r.close()
        now = t_s + t_us / 1e6
        time.sleep(np.ceil(now / window) * window - now + 0.02)   # just after a window opens
        assert a.allow([9]).tolist() == [True]
        assert b.allow([9, 9]).tolist() == [True, False]
        assert a.allow([9]).tolist() == [False]                    # from a's cache now
        time.sleep(window)                                         # the next window
        assert a.allow([9, 9, 9]).tolist() == [True, True, False]
        assert b.allow([9]).tolist() == [False]
        assert a.count(9) == 4                                     # 3 + 1 in this window
    finally:
        a.close()
        b.close()


def test_unreachable_redis_at_construction():
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnavailable, match="cannot reach Redis"):
        FrequencyCap(url, 3, 60.0)
    with pytest.raises(StoreUnavailable, match="cannot reach Redis"):
        FrequencyCap(url, 3, 60.0, cluster=False, socket_timeout=0.1)


def test_outage_after_start_refuses_unless_fail_open(tmp_path):
    from redis_servers import RedisServer

    server = RedisServer(tmp_path / "r")
    shut = FrequencyCap(server.url, 3, YEAR, socket_timeout=0.2, retry_after=0.05)
    open_ = FrequencyCap(server.url, 3, YEAR, socket_timeout=0.2, retry_after=0.05,
                         fail_open=True)
    try:
        assert shut.allow([1]).tolist() == [True]
        server.stop()
        assert shut.allow([1, 2]).tolist() == [False, False]
        assert shut.breaker.state == "open"
        assert open_.allow([1, 2]).tolist() == [True, True]
        server.start()
        time.sleep(0.1)
        assert shut.allow([1]).tolist() == [True]
        assert shut.breaker.state == "closed"
    finally:
        shut.close()
        open_.close()
        server.stop()


def test_bad_arguments(redis_url):
    with pytest.raises(InvalidInputError, match="limit"):
        FrequencyCap(redis_url, 0, 60.0)
    with pytest.raises(InvalidInputError, match="window"):
        FrequencyCap(redis_url, 3, 0.0)
    with FrequencyCap(redis_url, 3, 60.0) as cap:
        with pytest.raises(InvalidInputError, match="1-D"):
            cap.allow(np.zeros((2, 2), dtype=np.int64))
        with pytest.raises(InvalidInputError, match="dtype"):
            cap.allow(np.array([1.5]))
        with pytest.raises(InvalidInputError, match="braces"):
            cap.allow(["a{b}"])
