"""A bidder process for the multi-process frequency-cap test: ``python frequency_worker.py
URL NAME LIMIT WINDOW SEED`` checks a random stream of users (ints 0..199, each seen many times)
in blocks and prints a JSON list of how many ads each user was allowed."""

from __future__ import annotations

import json
import sys

import numpy as np

from rtbcore.distributed import FrequencyCap


def main() -> None:
    url, name, limit, window, seed = sys.argv[1:6]
    rng = np.random.default_rng(int(seed))
    allowed = np.zeros(200, dtype=np.int64)
    with FrequencyCap(url, int(limit), float(window), name=name) as cap:
        for _ in range(40):
            users = rng.integers(0, 200, 100)
            m = cap.allow(users)
            np.add.at(allowed, users[m], 1)
    print(json.dumps(allowed.tolist()), flush=True)


if __name__ == "__main__":
    main()
