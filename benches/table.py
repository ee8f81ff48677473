"""Prints the bench table with ratios from a pytest-benchmark JSON file.

Convention for every benchmark in benches/: put it in a ``group``, set
``benchmark.extra_info["items"]`` to how many items (bids, records, calls...) one call handles,
and ``benchmark.extra_info["baseline"] = True`` on the baselines. Each rtbcore row is then shown
with its items/s (from the median) and its ratio to every baseline of its group, all from the
one run.

    python benches/table.py out/bench.json [--markdown]
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import defaultdict
from pathlib import Path


def _rate(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.2f}{unit}/s"
    return f"{x:.1f}/s"


def _machine(data: dict) -> str:
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {}).get("brand_raw") or platform.processor() or "unknown CPU"
    system = f"{info.get('system', '')} {info.get('release', '')}"
    return f"{cpu}, {system}, python {info.get('python_version', '')}"


def build_rows(data: dict) -> list[tuple[str, str, str, str, str]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for b in data["benchmarks"]:
        groups[b.get("group") or "(no group)"].append(b)
    rows = []
    for group in sorted(groups):
        benches = groups[group]
        base = [b for b in benches if b.get("extra_info", {}).get("baseline")]
        for b in sorted(benches, key=lambda b: b["stats"]["median"]):
            med = b["stats"]["median"]
            items = b.get("extra_info", {}).get("items", 1)
            ratios = []
            if not b.get("extra_info", {}).get("baseline"):
                for bb in base:
                    bitems = bb.get("extra_info", {}).get("items", 1)
                    r = (items / med) / (bitems / bb["stats"]["median"])
                    ratios.append(f"{r:.1f}x vs {bb['name'].removeprefix('test_')}")
            name = b["name"].removeprefix("test_")
            rows.append((group, name, f"{med * 1e3:.3f} ms", _rate(items / med), "; ".join(ratios)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table for the README")
    args = ap.parse_args()
    data = json.loads(args.json.read_text())
    rows = build_rows(data)
    header = ("group", "benchmark", "median", "throughput", "ratio (same run)")
    print(f"machine: {_machine(data)}; {data.get('datetime', '')}")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for r in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=False)))


if __name__ == "__main__":
    main()
