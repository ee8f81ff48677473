"""The pieces of SharedBudget on their own: the Cython spend ledger against a Python oracle,
and the budget script's invariant under random calls from several nodes on a real Redis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore._fastpath import _SpendLedger
from rtbcore.distributed import _lua
from rtbcore.distributed._redis import Script, connect
from rtbcore.errors import InvalidInputError

SYNC = Script(_lua.SYNC)
INIT = Script(_lua.INIT)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("credit"), st.integers(0, 2), st.integers(0, 3_000_000)),
        st.tuples(st.just("spend"), st.integers(0, 2), st.integers(0, 1_000_000)),
        st.tuples(st.just("block"), st.lists(st.tuples(st.integers(0, 2),
                                                       st.integers(0, 1_000_000)),
                                             max_size=20)),
        st.tuples(st.just("drain"), st.integers(0, 2)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_ledger_matches_an_integer_oracle(seq):
    woken = []
    led = _SpendLedger({"a": 0, "b": 1, 7: 2}, lambda: woken.append(1))
    for s in range(3):
        led.set_low(s, 100_000)
    names = ["a", "b", 7]
    avail, spent = [0, 0, 0], [0, 0, 0]
    for op in seq:
        if op[0] == "credit":
            led.credit(op[1], op[2])
            avail[op[1]] += op[2]
        elif op[0] == "spend":
            ok = led.try_spend(names[op[1]], op[2] / 1e6)
            assert ok == (avail[op[1]] >= op[2])
            if ok:
                avail[op[1]] -= op[2]
                spent[op[1]] += op[2]
        elif op[0] == "block":
            slots = np.array([s for s, _ in op[1]], dtype=np.int64)
            units = np.array([u for _, u in op[1]], dtype=np.int64)
            m = led.try_spend_slots(slots, units / 1e6)
            for (s, u), got in zip(op[1], m.tolist(), strict=True):
                want = avail[s] >= u
                assert got == want
                if want:
                    avail[s] -= u
                    spent[s] += u
        else:
            assert led.drain(op[1]) == avail[op[1]]
            avail[op[1]] = 0
        for s in range(3):
            assert led.avail_units(s) == avail[s] and led.spent_units(s) == spent[s]
        touched = {op[1]} if op[0] == "spend" else {s for s, _ in op[1]} if op[0] == "block" \
            else set()
        for s in touched:
            if avail[s] < 100_000:
                assert s in led.wanting()         # ran low: the refill thread is asked


def test_ledger_wakes_the_refill_thread_once_per_crossing():
    woken = []
    led = _SpendLedger({"a": 0}, lambda: woken.append(1))
    led.set_low(0, 500_000)
    led.credit(0, 1_000_000)
    assert led.wanting() == [] and led.try_spend("a", 0.4) and woken == []
    assert led.try_spend("a", 0.2) and woken == [1] and led.wanting() == [0]
    assert led.try_spend("a", 0.1) and woken == [1]          # already asked
    led.credit(0, 1_000_000)
    assert led.wanting() == []
    assert not led.try_spend("a", 5.0) and woken == [1, 1]   # a refusal asks too


def test_ledger_refuses_bad_input_and_changes_nothing():
    led = _SpendLedger({"a": 0})
    led.credit(0, 1_000_000)
    for bad, match in [(-1.0, ">= 0"), (float("nan"), "NaN"), (1e-9, "resolution"),
                       (1e13, "too large"), ("x", "amount")]:
        with pytest.raises(InvalidInputError, match=match):
            led.try_spend("a", bad)
    with pytest.raises(InvalidInputError, match="unknown campaign"):
        led.try_spend("zz", 0.1)
    with pytest.raises(InvalidInputError, match=r"amounts\[1\]"):
        led.try_spend_slots(np.array([0, 0]), np.array([0.5, -1.0]))
    with pytest.raises(InvalidInputError, match=r"campaigns\[0\]"):
        led.try_spend_slots(np.array([3]), np.array([0.5]))
    assert led.avail_units(0) == 1_000_000 and led.spent_units(0) == 0


calls = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 400), st.integers(0, 300),
              st.booleans(), st.sampled_from([1, 5, 60_000])),
    min_size=1, max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(calls)
def test_budget_script_never_grants_more_than_the_budget(redis_server, seq):
    client = connect(redis_server.url, None, 2.0, 2.0)
    keys = ["{cmp:h}", "{cmp:h}:leases", "{cmp:h}:expiry"]
    try:
        client.delete(*keys)
        budget = 1_000
        assert INIT.run_many(client, [(keys[:1], [budget])]) == [budget]
        unspent = [0, 0, 0, 0]           # each node's drawn money (it spends nothing here)
        for node, draw, target, refund, ttl in seq:
            give = unspent[node] if refund else 0
            (r,) = SYNC.run_many(client, [(keys, [f"n{node}", draw, target, give, 0, ttl])])
            drawn, mine, b, spent, held = (int(x) for x in r[:5])
            unspent[node] += drawn - give
            assert drawn <= draw and mine <= target
            assert b == budget and 0 <= spent and 0 <= held
            assert spent + held <= budget
            leases = {k.decode(): int(v) for k, v in client.hgetall(keys[1]).items()}
            assert held == sum(leases.values()) and leases.get(f"n{node}", 0) == mine
            assert spent == sum(unspent)
    finally:
        client.close()
