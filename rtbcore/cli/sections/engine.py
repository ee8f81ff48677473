"""Demo section: the streaming engine on a synthetic day."""

from __future__ import annotations

import argparse
import time

import numpy as np

from rtbcore.engine import AuctionEngine
from rtbcore.sim.market import synthetic_stream


def run(args: argparse.Namespace) -> None:
    """``rtbcore demo``: the engine on a synthetic day (24 hours of auctions whose volume follows
    a diurnal curve, 1-100 bidders each, updates and cancels mixed in), timed around the engine
    calls only; prints bids/s, auctions/s and the latency percentiles."""
    from tqdm import tqdm

    rng = np.random.default_rng(args.seed)
    total = getattr(args, "auctions", None) or (20_000 if getattr(args, "quick", False)
                                                 else 200_000)
    hours = np.arange(24)
    weight = 1.0 + 0.6 * np.sin((hours - 10) / 24 * 2 * np.pi)  # trough at 04:00
    per_hour = np.maximum(1, (weight / weight.sum() * total).astype(int))
    print("\n== streaming engine: a synthetic day through AuctionEngine(workers=2) ==")
    chunks = []
    first = 0
    for n in tqdm(per_hour, desc="generating the day", unit="h", leave=False):
        for c in range(0, int(n), 2_000):  # each hour arrives as slices of 2000 auctions
            m = min(2_000, int(n) - c)
            chunks.append(synthetic_stream(rng, first, m))
            first += m
    n_bids = sum(c[2][0].size for c in chunks)
    got = 0
    busy = 0.0
    with AuctionEngine(workers=2, mechanism="second_price", tmax_ms=80) as eng:
        for ids, expected, (a, b, p, k) in tqdm(chunks, desc="engine", unit="slice"):
            t0 = time.perf_counter()
            eng.open(ids, expected_bids=expected)
            eng.submit(a, b, p, kinds=k)
            got += eng.poll(max_n=1 << 22).shape[0]
            busy += time.perf_counter() - t0
        t0 = time.perf_counter()
        while got < first:
            r = eng.poll(max_n=1 << 22, timeout_ms=1000)
            if r.shape[0] == 0:
                break
            got += r.shape[0]
        busy += time.perf_counter() - t0
        s = eng.stats()
    print(
        f"{n_bids:,} bid events for {first:,} auctions in {busy:.2f} s: "
        f"{n_bids / busy / 1e6:.1f}M bids/s, {got / busy / 1e3:.0f}k auctions/s"
    )
    print(
        f"closed by all bids {s['closed_all_bids']:,}, deadline {s['closed_deadline']:,}, "
        f"shutdown {s['closed_shutdown']:,}; updates {s['bids_updated']:,}, cancels "
        f"{s['bids_cancelled']:,}, rejected late {s['rejected_late']:,} / unknown "
        f"{s['rejected_unknown']:,}"
    )
    print(
        f"last bid -> result p50 {s['last_bid_to_result_p50_ns'] / 1e3:.0f} us, "
        f"p99 {s['last_bid_to_result_p99_ns'] / 1e3:.0f} us, "
        f"p999 {s['last_bid_to_result_p999_ns'] / 1e3:.0f} us (flat out, so this includes "
        f"queueing behind ~100k-bid blocks; benches/bench_engine.py measures it at 1M bids/s); "
        f"pinned {s['pinned']}/{s['workers']} workers"
    )
