"""A bidder process for the shared-pacing test: ``python pacing_worker.py CONFIG_JSON``. Paces
one campaign with a participation PID on the spend of every node (SharedPacer over a
SharedBudget) through a compressed day of ``total`` seconds, offering ``rate`` bid requests per
second of cost ``cost``; prints a JSON line with its spend and the guard's trips."""

from __future__ import annotations

import json
import sys
import time

from rtbcore import PIDPacer
from rtbcore.distributed import SharedBudget, SharedPacer


def main() -> None:
    cfg = json.loads(sys.argv[1])
    total = cfg["total"]
    with SharedBudget(cfg["url"], {"c": cfg["budget"]}, 0.01, ttl=2.0, interval=0.05) as b:
        t0 = cfg["start"]                    # the day starts at one wall-clock time for all
        clock = time.time
        pacer = PIDPacer([cfg["budget"]], total=total, clock=clock, start=t0,
                         output="participation", kp=5.0, ki=10.0, seed=cfg["seed"])
        shared = SharedPacer(pacer, b, guard=cfg.get("guard", 1.2), guard_window=total / 8)
        print("ready", flush=True)
        time.sleep(max(0.0, t0 - clock()))
        trips = 0
        next_update = 0.0
        while (e := clock() - t0) < total:
            if e >= next_update:
                trips += int(shared.update(elapsed=e).any())
                next_update = e + total / 100
            shared.try_bid(cfg["cost"], elapsed=e)
            time.sleep(1.0 / cfg["rate"])
        spent = b.local("c")["spent"]
    print(json.dumps({"spent": spent, "trips": trips}), flush=True)


if __name__ == "__main__":
    main()
