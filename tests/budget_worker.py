"""A bidder process for the multi-process tests of rtbcore.distributed.SharedBudget.

``python budget_worker.py CONFIG_JSON``: spends random amounts on the campaigns through a
SharedBudget until every campaign is exhausted or time runs out, then closes it. Its spend per
campaign goes to a shared int64 file (micro-units), row = worker index: column 0 is what was
granted so far (a lower bound of its spend), column 1 an upper bound written *before* each call,
so a test that kills the process still knows what it may have spent. Prints "ready NODE" once the
budget is set up and a JSON line of stats at the end.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from rtbcore.distributed import SharedBudget


def main() -> None:
    cfg = json.loads(sys.argv[1])
    campaigns = cfg["campaigns"]
    n = len(campaigns)
    counters = np.memmap(cfg["counters"], dtype=np.int64, mode="r+",
                         shape=(cfg["workers"], n, 2))
    row = counters[cfg["index"]]
    rng = np.random.default_rng(cfg["index"])
    batch = cfg.get("batch", 16)
    lo = np.zeros(n, dtype=np.int64)
    with SharedBudget(cfg["url"], dict.fromkeys(campaigns, cfg["budget"]),
                      cfg["lease_fraction"], ttl=cfg["ttl"], interval=cfg["interval"],
                      retry_after=cfg.get("retry_after", 0.5)) as b:
        print("ready", b.node, flush=True)
        deadline = time.monotonic() + cfg["seconds"]
        max_units = cfg["max_amount_units"]
        while time.monotonic() < deadline:
            which = rng.integers(0, n, batch)
            units = rng.integers(1000, max_units + 1, batch)
            row[:, 1] = lo + np.bincount(which, weights=units, minlength=n).astype(np.int64)
            m = b.try_spend_many(np.asarray(campaigns)[which], units / 1e6)
            lo += np.bincount(which[m], weights=units[m], minlength=n).astype(np.int64)
            row[:, 0] = lo
            row[:, 1] = lo
            if not m.all():
                done = all(
                    b.local(c)["exhausted"] and b.local(c)["available"] * 1e6 < max_units
                    for c in campaigns
                )
                if done:
                    break
            time.sleep(cfg.get("pause", 0.0))
        stats = b.stats()
    stats["spent_units"] = lo.tolist()
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
