"""SharedPacer: pacers on several nodes steering on one campaign's shared spend, and the
spend-rate guard."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from rtbcore import AdaptivePacer, LinearPacer, PIDPacer
from rtbcore.distributed import SharedBudget, SharedPacer
from rtbcore.errors import InvalidInputError

WORKER = str(Path(__file__).with_name("pacing_worker.py"))


def _used(url, campaign):
    r = redis.Redis.from_url(url)
    try:
        return int(r.hget(f"{{cmp:{campaign}}}", "used") or 0) / 1e6
    finally:
        r.close()


def test_three_nodes_pace_one_campaign_together(redis_url):
    budget, total = 60.0, 4.0
    start = time.time() + 2.0                # the day starts once every node is up
    cfg = {"start": start, "url": redis_url, "budget": budget, "total": total, "cost": 0.02,
           "rate": 1500, "guard": 10.0}
    procs = [subprocess.Popen([sys.executable, WORKER, json.dumps(dict(cfg, seed=i))],
                              stdout=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    time.sleep(max(0.0, start + total / 2 - time.time()))
    half = _used(redis_url, "c")
    out = []
    for p in procs:
        stdout = p.stdout.read()            # not communicate(): readline() may have buffered it
        p.stdout.close()
        assert p.wait(timeout=30) == 0
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    spent = sum(o["spent"] for o in out)
    # unpaced, the three nodes would offer ~3 x 1500 x 0.02 = 90 per second: the budget would
    # be gone before mid-day; paced together they follow the line and land near the budget
    assert spent <= budget + 1e-9
    assert spent >= 0.8 * budget
    assert 0.3 * budget <= half <= 0.7 * budget


def test_guard_trips_above_the_bound_and_clears(redis_url):
    with SharedBudget(redis_url, {1: 1000.0, 2: 1000.0}, 0.1, draw_fraction=1.0) as b:
        pacer = PIDPacer([1000.0, 1000.0], total=1000.0, clock=lambda: 0.0, start=0.0)
        shared = SharedPacer(pacer, b, guard=1.2, guard_window=100.0)
        assert shared.update(elapsed=0.0).tolist() == [False, False]
        # the line asks for 1 per second: campaign 1 spends 1.3 per second, campaign 2 1.1
        for t in range(1, 11):
            for _ in range(13):
                assert b.try_spend(1, 0.1)
            for _ in range(11):
                assert b.try_spend(2, 0.1)
            shared.update(elapsed=float(t))
        assert shared.guarded.tolist() == [True, False]
        assert shared.should_bid(0.1, elapsed=10.0).tolist() == [False, True]
        assert shared.try_bid(0.1, elapsed=10.0).tolist() == [False, True]
        # campaign 1 goes quiet: once the window holds less than 1.2x the line, it is free
        for t in range(11, 200, 10):
            shared.update(elapsed=float(t))
        assert shared.guarded.tolist() == [False, False]
        assert shared.try_bid(0.1, elapsed=191.0).tolist() == [True, True]
        assert shared.spent() == pytest.approx([13.1, 11.2])


def test_adaptive_pacer_and_arguments(redis_url):
    with SharedBudget(redis_url, {"a": 10.0}) as b:
        prof = np.ones(24)
        shared = SharedPacer(AdaptivePacer([10.0], prof, total=100.0, clock=lambda: 0.0), b)
        shared.update(elapsed=50.0)
        assert shared.multiplier(elapsed=50.0)[0] > 1.0          # nothing spent by midday
        with pytest.raises(InvalidInputError, match="PIDPacer"):
            SharedPacer(LinearPacer(), b)
        with pytest.raises(InvalidInputError, match="shape"):
            SharedPacer(PIDPacer([1.0, 2.0]), b)
        with pytest.raises(InvalidInputError, match="guard"):
            SharedPacer(PIDPacer([10.0]), b, guard=0.5)
