"""SharedBudget against real redis-server processes: several bidder processes spending one
budget, one of them killed mid-run, Redis stopped and restarted, and a local Redis Cluster."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rtbcore.distributed import SharedBudget
from rtbcore.distributed._redis import connect
from rtbcore.errors import InvalidInputError, StoreUnavailable

from redis_servers import RedisServer

WORKER = str(Path(__file__).with_name("budget_worker.py"))


def _start_workers(tmp_path, url, workers, **cfg):
    campaigns = cfg.setdefault("campaigns", [7])
    counters = tmp_path / "counters.bin"
    np.zeros((workers, len(campaigns), 2), dtype=np.int64).tofile(counters)
    procs = []
    for i in range(workers):
        c = dict(cfg, url=url, workers=workers, index=i, counters=str(counters))
        procs.append(subprocess.Popen([sys.executable, WORKER, json.dumps(c)],
                                      stdout=subprocess.PIPE, text=True))
    nodes = []
    for p in procs:
        word, node = p.stdout.readline().split()
        assert word == "ready"
        nodes.append(node)
    shape = (workers, len(campaigns), 2)
    return procs, nodes, lambda: np.fromfile(counters, dtype=np.int64).reshape(shape)


def _finish(procs, timeout=30):
    out = []
    for p in procs:
        # read() through the text wrapper: readline() may have buffered the last line already,
        # which communicate() (reading the raw pipe) would miss; the workers stop by themselves
        stdout = p.stdout.read()
        p.stdout.close()
        p.wait(timeout=timeout)
        if p.returncode == 0:
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        else:
            out.append(None)
    return out


def _snapshot(url, campaign):
    """The campaign's keys as Redis holds them (micro-units), read without a SharedBudget (which
    would draw money itself)."""
    client = connect(url, None, 2.0, 2.0)
    try:
        h = {k.decode(): int(v) for k, v in client.hgetall(f"{{cmp:{campaign}}}").items()}
        leases = {k.decode(): int(v)
                  for k, v in client.hgetall(f"{{cmp:{campaign}}}:leases").items()}
    finally:
        client.close()
    return {**{k: h.get(k, 0) for k in ("budget", "spent", "held", "used")}, "leases": leases}


def _run_four(tmp_path, url, campaigns):
    budget = 40.0
    procs, _, counters = _start_workers(
        tmp_path, url, 4, campaigns=campaigns, budget=budget, lease_fraction=0.02,
        ttl=5.0, interval=0.2, seconds=20.0, max_amount_units=20_000,
    )
    stats = _finish(procs)
    spent = counters()[:, :, 0]
    assert (counters()[:, :, 0] == counters()[:, :, 1]).all()
    for j, c in enumerate(campaigns):
        s = _snapshot(url, c)
        total = int(spent[:, j].sum())
        # never more than the budget; what is left is less than one spend per node
        assert total <= round(budget * 1e6)
        assert total > round(budget * 1e6) - 4 * 20_000
        # every node gave back its lease and what it drew and did not spend, and reported
        # its spend
        assert s["spent"] == s["used"] == total
        assert s["held"] == 0 and s["leases"] == {}
    calls = sum(st["redis_calls"] for st in stats)
    grants = sum(st["granted"] for st in stats)
    assert grants > 5 * calls          # the point of leases: far fewer calls than spends
    return stats


def test_four_processes_spend_one_budget_exactly(tmp_path, redis_url):
    _run_four(tmp_path, redis_url, [7])


def test_kill_9_mid_run_strands_at_most_one_lease_until_the_ttl(tmp_path, redis_url):
    budget, ttl = 500.0, 1.5
    lease = budget * 0.05
    procs, nodes, counters = _start_workers(
        tmp_path, redis_url, 4, campaigns=[3], budget=budget, lease_fraction=0.05, ttl=ttl,
        interval=0.2, seconds=20.0, max_amount_units=20_000, pause=0.004,
    )
    time.sleep(0.4)
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    procs[0].stdout.close()
    killed_at = time.monotonic()
    s = _snapshot(redis_url, 3)
    assert nodes[0] in s["leases"]                   # the dead node's lease is still held
    assert s["leases"][nodes[0]] <= round(lease * 1e6)    # stranded: at most one lease
    # after its TTL, the next call on the campaign (a live node's renewal) returns it
    while nodes[0] in _snapshot(redis_url, 3)["leases"]:
        assert time.monotonic() < killed_at + ttl + 1.0, "the dead node's lease outlived its TTL"
        time.sleep(0.05)
    assert time.monotonic() >= killed_at + ttl - 0.5
    stats = _finish(procs[1:])
    c = counters()
    final = _snapshot(redis_url, 3)
    assert all(st is not None for st in stats)
    hi = int(c[:, 0, 1].sum())                        # the killed node counted at its maximum
    assert hi <= round(budget * 1e6)                  # never overspent
    survivors = int(c[1:, 0, 0].sum())
    killed_lo = int(c[0, 0, 0])
    assert final["held"] == 0 and final["leases"] == {}
    # what the crash stranded for good: the dead node's drawn money it had not spent, at most
    # one draw step, which is at most a lease (its spend is known within one batch: lo..hi)
    lost = final["spent"] - survivors - killed_lo
    assert 0 <= lost <= round(lease * 1e6) + int(c[0, 0, 1] - killed_lo)
    # the rest of the budget (the dead node's lease included) was spent by the others
    assert final["spent"] > round(budget * 1e6) - 3 * 20_000


def test_redis_stopped_and_restarted_stops_then_resumes_bidding(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True)
    try:
        budget = 50.0
        b = SharedBudget(server.url, {"c": budget}, 0.02, ttl=1.0, interval=0.1,
                         retry_after=0.05, socket_timeout=0.3)
        try:
            assert b.breaker.state == "closed"
            granted = 0
            for _ in range(200):
                granted += b.try_spend("c", 0.01)
            server.stop()
            deadline = time.monotonic() + 5
            while b.breaker.state == "closed" and time.monotonic() < deadline:
                granted += b.try_spend("c", 0.01)
                time.sleep(0.01)
            assert b.breaker.state in ("open", "half_open")
            assert b.stats()["last_error"]
            # the drawn money is spent, then bidding stops: no call can draw more
            while b.try_spend("c", 0.01):
                granted += 1
            time.sleep(0.3)
            assert not b.try_spend("c", 0.01)
            assert b.local("c")["available"] < 0.01
            server.start()
            deadline = time.monotonic() + 5
            while not b.try_spend("c", 0.01) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert b.breaker.state == "closed"
            assert b.stats()["breaker_opened"] >= 1
            granted += 1
            spent_local = b.local("c")["spent"]
        finally:
            b.close()
        snap = _snapshot(server.url, "c")
        assert round(spent_local * 100) == granted
        assert snap["used"] == granted * 10_000 == snap["spent"]   # all reported, rest refunded
        assert snap["held"] == 0
    finally:
        server.stop()


def test_unreachable_redis_at_construction_raises_store_unavailable(tmp_path):
    from redis_servers import free_port

    with pytest.raises(StoreUnavailable, match="cannot reach Redis"):
        SharedBudget(f"redis://127.0.0.1:{free_port()}/0", {1: 10.0}, socket_timeout=0.2)


def test_threads_share_one_budget_exactly(redis_url):
    with SharedBudget(redis_url, {1: 30.0, 2: 30.0}, 0.1, draw_fraction=0.5, interval=0.05,
                      ttl=2.0) as b:
        grants = [0, 0, 0, 0]

        def spend(i):
            deadline = time.monotonic() + 5
            c = 1 + i % 2
            while time.monotonic() < deadline:
                if b.try_spend(c, 0.01):
                    grants[i] += 1
                elif b.local(c)["exhausted"]:
                    return
                else:
                    time.sleep(0.001)      # refused: wait for the refill thread

        ts = [threading.Thread(target=spend, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert grants[0] + grants[2] == 3000 and grants[1] + grants[3] == 3000
        assert b.local(1)["spent"] == pytest.approx(30.0)


def test_block_form_agrees_with_scalar_calls(redis_url):
    with SharedBudget(redis_url, {"a": 1.0, "b": 1.0}, lease_fraction=1.0,
                      draw_fraction=1.0) as b:
        time.sleep(0.05)
        amounts = np.full(30, 0.07)
        camp = np.array(["a", "b"] * 15)
        m = b.try_spend_many(camp, amounts)
        assert m.sum() == 28 and not m[-2:].any()     # 14 x 0.07 = 0.98 per campaign
        assert b.local("a")["spent"] == pytest.approx(0.98)
        slots = b.slots(["b", "a"])
        assert slots.tolist() == [1, 0]
        assert b.try_spend_slots(slots, [0.02, 0.03]).tolist() == [True, False]
        with pytest.raises(InvalidInputError, match=r"campaigns\[1\] = 'z'"):
            b.try_spend_many(["a", "z"], [0.1, 0.1])
        with pytest.raises(InvalidInputError, match=r"amounts\[0\] must be >= 0"):
            b.try_spend_many(["a"], [-1.0])
        with pytest.raises(InvalidInputError, match="unknown campaign 'z'"):
            b.try_spend("z", 0.1)
        assert b.local("a")["spent"] == pytest.approx(0.98)    # refused calls change nothing


def test_bad_arguments_are_refused(redis_url):
    with pytest.raises(InvalidInputError, match="lease_fraction"):
        SharedBudget(redis_url, {1: 1.0}, lease_fraction=0.0)
    with pytest.raises(InvalidInputError, match="interval"):
        SharedBudget(redis_url, {1: 1.0}, ttl=1.0, interval=2.0)
    with pytest.raises(InvalidInputError, match="hash-tag"):
        SharedBudget(redis_url, {"a{b}": 1.0})
    with pytest.raises(InvalidInputError, match=r"budgets\[1\] must be >= 0"):
        SharedBudget(redis_url, {1: -1.0})
    with pytest.raises(InvalidInputError, match="redis_url"):
        SharedBudget("http://x", {1: 1.0})
    with SharedBudget(redis_url, {1: 5.0}):
        pass
    with pytest.raises(InvalidInputError, match="already has budget 5"):
        SharedBudget(redis_url, {1: 6.0})


def test_set_budget_raises_and_refuses_below_spend(redis_url):
    with SharedBudget(redis_url, {1: 1.0}, lease_fraction=0.5, draw_fraction=1.0) as b:
        assert b.try_spend(1, 0.5)
        with pytest.raises(InvalidInputError, match="below what the nodes have"):
            b.set_budget(1, 0.1)
        b.set_budget(1, 2.0)
        assert b.snapshot(1)["budget"] == 2.0


@pytest.mark.slow
def test_four_processes_on_a_redis_cluster(tmp_path, redis_cluster):
    campaigns = [1, 2, 3, 4, 5, 6]
    c = redis_cluster.nodes[0].client()
    try:
        slots = {c.cluster("keyslot", f"{{cmp:{i}}}") for i in campaigns}
        owners = {s[2][1] for s in c.cluster("slots") for sl in slots if s[0] <= sl <= s[1]}
    finally:
        c.close()
    cc = connect(redis_cluster.url, True, 5.0, 5.0)
    try:
        for i in campaigns:
            cc.delete(f"{{cmp:{i}}}", f"{{cmp:{i}}}:leases", f"{{cmp:{i}}}:expiry")
    finally:
        cc.close()
    assert len(owners) >= 2                           # the campaigns live on several masters
    _run_four(tmp_path, redis_cluster.url, campaigns)

