"""The dynamic pricing auction against a brute-force transcription of its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore import AuctionBatch, DynamicAuction, InvalidBidError, InvalidInputError


def demand_at(d: list[float], x: float) -> float:
    m = len(d)
    if m == 1:
        return d[0]
    pos = x * (m - 1)
    j = min(math.floor(pos), m - 2)
    return d[j] + (d[j + 1] - d[j]) * (pos - j)


def oracle(sizes, prices, times, base, demand, limit, decay, duration):
    """Take the earliest unprocessed bid (lowest index among equal times) until none is left."""
    units, revenue, paid, reason = [], [], [0.0] * len(prices), [0] * len(prices)
    start = 0
    for a, size in enumerate(sizes):
        left = list(range(start, start + size))
        sold, rev = 0, 0.0
        while left:
            i = min(left, key=lambda k: (times[k], k))
            left.remove(i)
            p = prices[i]
            if not (math.isfinite(p) and p >= 0):
                reason[i] = 3
            elif sold == limit:
                reason[i] = 102
            else:
                posted = base[a] * demand_at(demand, sold / limit) * math.exp(
                    -decay * times[i] / duration)
                if p > 0 and p >= posted:
                    paid[i], sold, rev = posted, sold + 1, rev + posted
                else:
                    reason[i] = 100
        units.append(sold)
        revenue.append(rev)
        start += size
    return units, revenue, paid, reason


price = st.sampled_from([0.0, 0.5, 1.0, 2.0]) | st.floats(0, 5)
when = st.sampled_from([0.0, 1.0, 2.0]) | st.floats(0, 2)


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 8), min_size=1, max_size=5),
    data=st.data(),
    limit=st.integers(1, 5),
    demand=st.lists(st.floats(0.1, 3.0), min_size=1, max_size=4),
    decay=st.sampled_from([0.0, 0.7]) | st.floats(0, 3),
)
def test_matches_the_definition(sizes, data, limit, demand, decay):
    m = sum(sizes)
    prices = data.draw(st.lists(price, min_size=m, max_size=m))
    times = data.draw(st.lists(when, min_size=m, max_size=m))
    base = data.draw(st.lists(st.floats(0, 2), min_size=len(sizes), max_size=len(sizes)))
    batch = AuctionBatch.from_sizes(sizes, prices)
    r = DynamicAuction(demand=demand, supply_limit=limit, time_decay=decay, duration=2.0).clear(
        batch, times, base_price=base)
    units, revenue, paid, reason = oracle(sizes, prices, times, base, demand, limit, decay, 2.0)
    assert r.units.tolist() == units
    assert r.paid.tolist() == paid
    assert r.loss_reason.tolist() == reason
    np.testing.assert_allclose(r.revenue, revenue, rtol=1e-12, atol=0)
    assert np.all(r.units <= limit)


def test_scarcity_and_decay_directions():
    # one auction, ten identical bids arriving over its life
    batch = AuctionBatch([0, 10], np.full(10, 10.0))
    times = np.linspace(0, 1, 10)
    rising = DynamicAuction(1.0, demand=lambda x: 1 + x, supply_limit=10).clear(batch, times)
    assert np.all(np.diff(rising.paid) > 0)          # the price climbs as units sell
    decaying = DynamicAuction(1.0, supply_limit=10, time_decay=1.0).clear(batch, times)
    assert np.all(np.diff(decaying.paid) < 0)        # and falls with time on a flat curve
    assert decaying.paid[-1] == pytest.approx(math.exp(-1.0))
    capped = DynamicAuction(1.0, supply_limit=3).clear(batch, times)
    assert capped.units.tolist() == [3] and capped.loss_reason.tolist().count(102) == 7


def test_bad_input():
    batch = AuctionBatch([0, 2], [1.0, float("nan")])
    a = DynamicAuction(supply_limit=2)
    with pytest.raises(InvalidBidError, match=r"^prices\[1\] = NaN"):
        a.clear(batch, [0.0, 0.5])
    r = a.clear(batch, [0.0, 0.5], on_invalid="skip")
    assert r.loss_reason.tolist() == [0, 3] and r.n_invalid == 1
    with pytest.raises(InvalidInputError, match=r"^times\[1\] = 2: must be finite and in"):
        a.clear(batch, [0.0, 2.0])
    with pytest.raises(InvalidInputError, match="^times: has 1 entries"):
        a.clear(batch, [0.0])
    with pytest.raises(InvalidInputError, match="^base_price"):
        a.clear(batch, [0.0, 0.5], base_price=[-1.0])
    with pytest.raises(InvalidInputError, match="quality"):
        a.clear(AuctionBatch([0, 1], [1.0], quality=[2.0]), [0.0])
    for kw, msg in ((dict(supply_limit=0), "^supply_limit"), (dict(demand=[1.0, 0.0]),
                    r"^demand\[1\]"), (dict(demand=[]), "^demand"),
                    (dict(time_decay=-1.0), "^time_decay"), (dict(duration=0.0), "^duration"),
                    (dict(base_price=float("inf")), "^base_price")):
        with pytest.raises(InvalidInputError, match=msg):
            DynamicAuction(**kw)
