"""Shared test oracles and helpers: brute-force reference implementations written from the
definitions, independently of the kernels, and small fixtures' building blocks.

Clearing (the contract of rtbcore's kernels: a bid is valid when its price is finite and >= 0
and its quality finite and > 0; eligible when also price > 0 and price >= the reserve; bids rank
by price * quality, ties to the lower index):
- single slot: sort the eligible bids, apply the rule (:func:`oracle_single`);
- GSP: each slot pays the next bid's adjusted value over its own quality (:func:`oracle_gsp`);
- VCG: the payment is the externality, by enumerating every assignment of bidders to slots
  (:func:`oracle_vcg_externality`), or Myerson's integral over the bidder's own allocation curve
  (:func:`oracle_vcg_myerson`);
- :func:`oracle_second_price_segments` and :func:`oracle_engine` apply the same rules to a
  segment layout and to an engine auction (bids keyed by bidder, ties to the lower bidder id).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from rtbcore import NO_BIDDER, make_bids


class FakeClock:
    """An injectable clock: time moves only when the test says so."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def bid_range(lo: int, hi: int, *, bidder: int | None = None, quality_mod: int | None = None
              ) -> np.ndarray:
    """Bid records for auction ids ``lo..hi-1``: price id / 2, timestamp id * 11, kind id % 3;
    bidder ``bidder`` (default id % 7), quality 1 + id % ``quality_mod`` (default 1.0)."""
    ids = np.arange(lo, hi, dtype=np.uint64)
    who = ids % 7 if bidder is None else bidder
    quality = 1.0 if quality_mod is None else 1.0 + ids % quality_mod
    return make_bids(ids, who, ids * 0.5, quality, ids % 3, ids * 11)


# ---- clearing --------------------------------------------------------------------------------


def valid(p: float, q: float) -> bool:
    """The bid rule: finite price >= 0, finite quality > 0, and a finite adjusted bid p * q."""
    return math.isfinite(p) and p >= 0 and math.isfinite(q) and q > 0 and math.isfinite(p * q)


def eligible(p: float, q: float, r: float) -> bool:
    return valid(p, q) and p > 0 and p >= r


def ranked(prices, quality, r):
    """Local indices of eligible bids, best first, ties to the lower index."""
    idx = [i for i in range(len(prices)) if eligible(prices[i], quality[i], r)]
    return sorted(idx, key=lambda i: (-prices[i] * quality[i], i))


def oracle_single(prices, quality, r, rule, inc):
    """(winner local index or -1, price, min_to_win list, loss_reason list)."""
    n = len(prices)
    rk = ranked(prices, quality, r)
    if not rk:
        mtw = [r if valid(prices[i], quality[i]) else math.nan for i in range(n)]
        reason = [100 if valid(prices[i], quality[i]) else 3 for i in range(n)]
        return -1, 0.0, mtw, reason
    w = rk[0]
    pw, qw = prices[w], quality[w]
    floor = max(r, prices[rk[1]] * quality[rk[1]] / qw) if len(rk) > 1 else r
    price = pw if rule == "first" else min(pw, floor + inc)
    target = pw * qw if rule == "first" else price * qw
    mtw, reason = [], []
    for i in range(n):
        if i == w:
            mtw.append(floor)
            reason.append(0)
        elif not valid(prices[i], quality[i]):
            mtw.append(math.nan)
            reason.append(3)
        else:
            mtw.append(max(r, target / quality[i]))
            reason.append(102 if eligible(prices[i], quality[i], r) else 100)
    return w, price, mtw, reason


def oracle_gsp(prices, quality, r, ctrs, inc):
    rk = ranked(prices, quality, r)
    out = []
    for s in range(len(ctrs)):
        if s >= len(rk):
            out.append((-1, 0.0))
            continue
        i = rk[s]
        nxt = prices[rk[s + 1]] * quality[rk[s + 1]] if s + 1 < len(rk) else 0.0
        out.append((i, min(prices[i], max(r, nxt / quality[i]) + inc)))
    return out


def welfare(assign, adj, ctrs):
    """Welfare of an assignment (slot -> bidder or None) counting only the bidders in adj."""
    return sum(ctrs[s] * adj[b] for s, b in enumerate(assign) if b is not None and b in adj)


def best_welfare(bidders, adj, ctrs):
    """Max welfare over every assignment of `bidders` to slots (each slot at most one bidder)."""
    k = len(ctrs)
    pool = list(bidders) + [None] * k
    best = 0.0
    for perm in itertools.permutations(pool, k):
        used = [b for b in perm if b is not None]
        if len(used) != len(set(used)):
            continue
        best = max(best, welfare(perm, adj, ctrs))
    return best


def oracle_vcg_externality(prices, quality, r, ctrs):
    """Per-unit VCG prices by brute-force externality. With r > 0 the seller holds k phantom
    reserve bids of adjusted value r (valid for quality 1, where the floor r*q is r)."""
    rk = ranked(prices, quality, r)
    adj = {i: prices[i] * quality[i] for i in rk}
    for j in range(len(ctrs) if r > 0 else 0):
        adj[("phantom", j)] = r
    alloc = [rk[s] if s < len(rk) else None for s in range(len(ctrs))]
    out = []
    for s, i in enumerate(alloc):
        if i is None:
            out.append((-1, 0.0))
            continue
        others = {b: a for b, a in adj.items() if b != i}
        without = best_welfare(others, others, ctrs)
        # with i present, others keep the slots the optimal allocation gives them; phantoms
        # fill the slots real bidders leave empty
        with_alloc = list(alloc)
        ph = [b for b in adj if isinstance(b, tuple)]
        for t in range(len(with_alloc)):
            if with_alloc[t] is None and ph:
                with_alloc[t] = ph.pop(0)
        with_i = welfare(with_alloc, others, ctrs)
        total = without - with_i
        out.append((i, total / (ctrs[s] * quality[i])))
    return out


def slot_of(prices, quality, r, ctrs, i, z):
    """Slot factor bidder i gets when it bids z (others fixed), 0 when none."""
    p = list(prices)
    p[i] = z
    rk = ranked(p, quality, r)
    return ctrs[rk.index(i)] if i in rk and rk.index(i) < len(ctrs) else 0.0


def oracle_vcg_myerson(prices, quality, r, ctrs, i):
    """Per-unit payment of bidder i by Myerson's formula over its own allocation curve."""
    b, q = prices[i], quality[i]
    x_b = slot_of(prices, quality, r, ctrs, i, b)
    if x_b == 0.0:
        return 0.0
    cuts = {0.0, b, r}
    for j in range(len(prices)):
        if j != i and eligible(prices[j], quality[j], r):
            cuts.add(prices[j] * quality[j] / q)
    pts = sorted(c for c in cuts if 0.0 <= c <= b)
    integral = 0.0
    for lo, hi in itertools.pairwise(pts):
        if hi > lo:
            integral += slot_of(prices, quality, r, ctrs, i, (lo + hi) / 2) * (hi - lo)
    return (b * x_b - integral) / x_b


def oracle_second_price_segments(offsets, prices, reserve):
    """Second price (quality 1, no increment) per auction ``offsets[a]:offsets[a + 1]``:
    (winner global index or -1, price 0 when unsold) lists."""
    winner, price = [], []
    for a in range(len(offsets) - 1):
        s, e = int(offsets[a]), int(offsets[a + 1])
        seg = [float(p) for p in prices[s:e]]
        w, p, _, _ = oracle_single(seg, [1.0] * len(seg), reserve, "second", 0.0)
        winner.append(-1 if w < 0 else s + w)
        price.append(p)
    return winner, price


def oracle_engine(mech, bids, reserve, increment, ctrs=None):
    """bids: {bidder: (price, quality)} -> list of (winner_bidder, price, min_to_win) per slot
    (winner_bidder NO_BIDDER when nothing sold), ties to the lowest bidder id; VCG by its closed
    form over the ranked adjusted values."""
    order = sorted(bids)
    prices = [bids[b][0] for b in order]
    quality = [bids[b][1] for b in order]
    if mech in ("first_price", "second_price"):
        rule = "first" if mech == "first_price" else "second"
        w, price, mtw, _ = oracle_single(prices, quality, reserve, rule, increment)
        return [(NO_BIDDER, 0.0, math.nan)] if w < 0 else [(order[w], price, mtw[w])]
    rk = ranked(prices, quality, reserve)
    k = len(ctrs)

    def adj(r):
        return prices[rk[r]] * quality[rk[r]] if r < len(rk) else 0.0

    rows = []
    gsp = oracle_gsp(prices, quality, reserve, ctrs, increment) if mech == "gsp" else None
    for s in range(k):
        if s >= len(rk):
            rows.append((NO_BIDDER, 0.0, math.nan))
            continue
        i = rk[s]
        p, q = prices[i], quality[i]
        if gsp is not None:
            pay = gsp[s][1]
        else:
            total = 0.0
            for j in range(s, k):
                nxt = ctrs[j + 1] if j + 1 < k else 0.0
                total += (ctrs[j] - nxt) * adj(j + 1)
            pay = min(p, max(reserve, total / (ctrs[s] * q)))
        rows.append((order[i], pay, max(reserve, adj(s + 1) / q)))
    return rows
