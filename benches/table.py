"""Prints the bench table with ratios from a pytest-benchmark JSON file.

Convention for every benchmark in benches/: put it in a ``group``, set
``benchmark.extra_info["items"]`` to how many items (bids, records, calls...) one call handles,
and ``benchmark.extra_info["baseline"] = True`` on the baselines. Each rtbcore row is then shown
with its items/s (from the median) and its ratio to every baseline of its group, all from the
one run. A row's ``extra_info["ratio"]`` (a string) replaces those ratios when the bench
measured its own (e.g. paired rounds). A row's ``extra_info["summary"]`` (a short string, e.g.
latency percentiles or memory per connection) is shown after its ratios.

    python benches/table.py out/bench.json [--markdown] [--write docs/benchmarks.md]
    python benches/table.py out/bench-exchange.json --update docs/benchmarks.md

``--write PATH`` replaces PATH with a fixed header (how to read the table, the machine) and the
Markdown table; ``make bench`` writes ``docs/benchmarks.md`` this way. ``--update PATH`` replaces
only the groups of this run in PATH's table (``make bench-exchange`` does this).
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
    cores = info.get("cpu", {}).get("count")
    cpu = f"{cpu} ({cores} logical CPUs)" if cores else cpu
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
            if b.get("extra_info", {}).get("ratio"):
                # a ratio the bench measured itself (e.g. from paired rounds), not from medians
                ratios.append(b["extra_info"]["ratio"])
            elif not b.get("extra_info", {}).get("baseline"):
                for bb in base:
                    bitems = bb.get("extra_info", {}).get("items", 1)
                    r = (items / med) / (bitems / bb["stats"]["median"])
                    ratios.append(f"{r:.1f}x vs {bb['name'].removeprefix('test_')}")
            if b.get("extra_info", {}).get("summary"):
                ratios.append(b["extra_info"]["summary"])
            name = b["name"].removeprefix("test_")
            rows.append((group, name, f"{med * 1e3:.3f} ms", _rate(items / med), "; ".join(ratios)))
    return rows


HEADER = """\
# Benchmarks

Written by `make bench` (`benches/table.py --write docs/benchmarks.md`); do not edit by hand.

How to read it:

- Each benchmark is in a *group*; the rtbcore rows of a group sit beside their baselines (pure
  Python, numpy, the standard library or a well-known package) measured in the same run, and
  the *ratio* column divides the rtbcore row's throughput by each baseline's. A ratio above 1
  means rtbcore handled more items per second. Read ratios, not absolute figures: both sides
  share the machine and its noise.
- *median* is the median time of one call over the benchmark's rounds; *throughput* is the
  items one call handles (bids, records, calls, campaigns ...) divided by that median.
- The benchmarks live in `benches/bench_*.py`, one module per area; each row's code there
  says what one call does and which baseline it is compared with.
- Figures depend on the machine and on its load: a shared or busy machine gives lower and
  noisier figures. Re-run `make bench` on a quiet machine before comparing.
- Server benches (`exchange ...`, `openrtb ...`) drive a real server from the outside over
  loopback, beside a peer written in Python the way a user would; their summary column has
  the figures that matter (rates, latency percentiles). How the OpenRTB ones are set up and
  how their added latency is measured: `docs/openrtb.md`, *Performance*.
"""


def markdown(data: dict, rows: list[tuple[str, str, str, str, str]]) -> str:
    header = ("group", "benchmark", "median", "throughput", "ratio (same run)")
    lines = [
        f"Machine: {_machine(data)}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    return "\n".join(lines) + "\n"


def update(path: Path, data: dict, rows: list[tuple[str, str, str, str, str]]) -> str:
    """``path``'s table with the groups of ``rows`` replaced (or added) and the others kept, so
    that one area can be re-measured alone; the groups re-measured are named with their
    machine under the table's own machine line."""
    groups = {r[0] for r in rows}
    kept, notes, machine = [], [], None
    for line in path.read_text().splitlines():
        if line.startswith("Machine: ") and machine is None:
            machine = line
        elif line.startswith("Re-measured alone: "):
            if not set(line.split("`")[1::2]) <= groups:
                notes.append(line)
        elif line.startswith("| ") and not line.startswith("| group |"):
            cells = tuple(c.strip() for c in line.strip().strip("|").split(" | "))
            if len(cells) == 5 and cells[0] not in groups:
                kept.append(cells)
    merged = sorted(kept + rows, key=lambda r: r[0])  # stable: each group keeps its order
    named = ", ".join(f"`{g}`" for g in sorted(groups))
    notes.append(f"Re-measured alone: {named} on {_machine(data)}.")
    table = markdown(data, merged).split("\n", 1)[1]  # without markdown()'s machine line
    return HEADER + "\n" + (machine or f"Machine: {_machine(data)}.") + "\n" + "\n".join(
        notes) + "\n" + table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--write", type=Path, metavar="PATH",
                    help="write the header and the Markdown table to PATH (docs/benchmarks.md)")
    ap.add_argument("--update", type=Path, metavar="PATH",
                    help="replace only this run's groups in PATH's table, keeping the others")
    args = ap.parse_args()
    data = json.loads(args.json.read_text())
    rows = build_rows(data)
    if args.update is not None:
        args.update.write_text(update(args.update, data, rows))
        print(f"updated {args.update} ({len(rows)} rows)")
    if args.write is not None:
        args.write.write_text(HEADER + "\n" + markdown(data, rows))
        print(f"wrote {args.write} ({len(rows)} rows)")
    header = ("group", "benchmark", "median", "throughput", "ratio (same run)")
    print(f"machine: {_machine(data)}")
    if args.markdown:
        print(markdown(data, rows), end="")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for r in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=False)))


if __name__ == "__main__":
    main()
