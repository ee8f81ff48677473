"""Exchange server benches: ``rtbcore serve`` (the Rust gateway) beside its baseline, the Python
peer (``benches/peer/server.py``: websockets + protobuf + ``rtbcore.AuctionEngine``), both
driven from the outside by ``rtbcore-loadgen`` (``rust/loadgen``) over real loopback sockets,
in the same run. Without ``rtbcore serve`` in the build its rows are skipped and the peer's
rows stand alone. How the load generator measures: ``docs/loadgen.md``.

Both servers get the same exchange.toml: second price, one engine worker (the load generator
needs the machine's other core).

- ``exchange batched``: 10 buyers, closed loop, frames of 100 PlaceBid; every auction closes
  when all 10 have bid, so each bid costs the server an announcement, an answer and a result.
  items = bids acknowledged; the time is the whole run (connect, load, drain).
- ``exchange one bid per frame``: the same with 1 bid per frame (64 auctions in flight).
  Both throughput rows give the CPU time the server and the load generator used per bid: on
  two shared cores, their sum bounds the rate (two CPU-seconds per second).
- ``exchange latency at 50K bids/s`` (and at 2K bids/s, which the peer carries): open
  loop, auctions closing at their 100 ms deadline; the summary column has the HDR p50 / p99 of
  PlaceBid -> BidAccepted and of auction close -> AuctionWon delivered, and the rate offered
  over the send phase. items = bids offered and the time is the whole run (with its drain), so
  the throughput column is neither a capacity nor the offered rate: read the summary.
- ``exchange 10K idle connections``: 10,000 authenticated idle connections; the summary has
  the server's RSS per connection. items = connections, time = the run (connect + 1 s
  settle + close).
- ``exchange 100K idle connections``: the same with 100,000 (``rtbcore serve`` only, from five
  127.0.0.x source addresses), run where the open-file hard limit allows it (>= 101,024 per
  process) and skipped, with the reason, where it does not.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path

import pytest

from launch import Server, serve_available, start_server

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = Path(os.environ.get("RTBCORE_LOADGEN",
                              ROOT / "rust" / "target" / "release" / "rtbcore-loadgen"))
BUYERS = 10
IDLE = 10_000
IDLE_100K = 100_000
SETTINGS = {"engine.workers": 1, "engine.tmax_ms": 1000, "auth.auth_timeout_s": 10.0,
            "server.max_connections": IDLE_100K + 1000}

pytestmark = pytest.mark.skipif(
    not LOADGEN.exists(),
    reason=f"{LOADGEN} is missing: cargo build --release -p rtbcore-loadgen (make bench does)")


@pytest.fixture(scope="module", params=["serve", "peer"])
def server(request, tmp_path_factory):
    if request.param == "serve" and not serve_available():
        pytest.skip("rtbcore serve is not in this build")
    buyers = {f"b{i}": ["bid", "subscribe"] for i in range(BUYERS)}
    buyers["pub"] = ["publish", "subscribe"]
    buyers.update({f"idle{i}": ["bid"] for i in range(IDLE)})
    d = tmp_path_factory.mktemp(f"exchange-{request.param}")
    srv = start_server(request.param, d, buyers, SETTINGS)
    (d / "buyers.txt").write_text("\n".join(srv.keys[f"b{i}"] for i in range(BUYERS)) + "\n")
    (d / "idle.txt").write_text("\n".join(srv.keys[f"idle{i}"] for i in range(IDLE)) + "\n")
    srv.dir = d  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def loadgen(srv: Server, *args: str, keys: str = "buyers.txt", timeout: float = 300) -> dict:
    d = srv.dir  # type: ignore[attr-defined]
    cmd = [str(LOADGEN), "--url", srv.url, "--keys", str(d / keys),
           "--publisher-key", srv.keys["pub"], "--server-pid", str(srv.proc.pid), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"rtbcore-loadgen failed: {out.stderr.strip()}")
    report = json.loads(out.stdout)
    assert not report.get("errors"), report["errors"]
    return report


def _name(srv: Server, test_name: str) -> str:
    """``gateway_<what>`` / ``python_peer_<what>`` from ``test_<what>[<kind>]``."""
    what = test_name.removeprefix("test_").split("[")[0]
    return ("gateway_" if srv.kind == "serve" else "python_peer_") + what


def _throughput(benchmark, srv: Server, bids: int, *args: str) -> None:
    benchmark.name = _name(srv, benchmark.name)
    got: dict = {}

    def run() -> None:
        got.update(loadgen(srv, "--buyers", str(BUYERS), "--max-bids", str(bids),
                           "--duration", "120", *args))

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info["items"] = got["bids_acked"]
    benchmark.extra_info["baseline"] = srv.kind == "peer"
    benchmark.extra_info["loadgen"] = got
    lat = got["latency"]["place_to_accept"]
    cpu = got["cpu"]
    benchmark.extra_info["summary"] = (
        f"{got['bids_acked_per_s'] / 1e3:.0f}K bids/s acked by the load generator's clock, "
        f"{got['results_per_s'] / 1e3:.0f}K results/s; CPU per bid: server "
        f"{cpu['server_us_per_bid']:.2f} us, load generator {cpu['loadgen_us_per_bid']:.2f} us")
    print(f"\n{benchmark.name}: {got['bids_acked']} bids acked, "
          f"{got['bids_acked_per_s']:.0f} bids/s, {got['results_per_s']:.0f} results/s, "
          f"PlaceBid->BidAccepted p99 {lat['p99_us']:.0f} us (closed loop: queueing)")
    assert got["bids_unanswered"] == 0
    assert got["bids_acked"] == got["bids_sent"] and got["results"] == got["bids_acked"]


@pytest.mark.benchmark(group="exchange batched (100 bids/frame)")
def test_batched(benchmark, server):
    bids = 2_000_000 if server.kind == "serve" else 200_000
    _throughput(benchmark, server, bids, "--bids-per-frame", "100")


@pytest.mark.benchmark(group="exchange one bid per frame")
def test_one_bid_per_frame(benchmark, server):
    bids = 500_000 if server.kind == "serve" else 60_000
    _throughput(benchmark, server, bids, "--bids-per-frame", "1", "--window", "64")


def _latency(benchmark, srv: Server, rate: int) -> None:
    benchmark.name = _name(srv, benchmark.name)
    got: dict = {}

    def run() -> None:
        got.update(loadgen(srv, "--buyers", str(BUYERS), "--rate", str(rate), "--duration", "5",
                           "--warmup", "1", "--close", "deadline", "--tmax-ms", "100"))

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    acc, won = got["latency"]["place_to_accept"], got["latency"]["close_to_won"]
    benchmark.extra_info["items"] = got["bids_sent"]  # offered: no ratio, the summary says it
    benchmark.extra_info["loadgen"] = got
    for q in ("p50", "p99", "p999"):
        benchmark.extra_info[f"place_to_accept_{q}_us"] = acc and acc[f"{q}_us"]
        benchmark.extra_info[f"close_to_won_{q}_us"] = won and won[f"{q}_us"]
    late = got["bids_rejected"]

    def us(h: dict | None, q: str) -> str:
        return "-" if not h else f"{h[q + '_us']:.0f} us" if h[q + "_us"] < 1e4 else \
            f"{h[q + '_us'] / 1e3:.0f} ms"

    benchmark.extra_info["summary"] = (
        f"{got['bids_sent'] / got['send_phase_s'] / 1e3:.1f}K bids/s offered for "
        f"{got['send_phase_s']:.0f} s; "
        f"PlaceBid->BidAccepted p50 {us(acc, 'p50')}, p99 {us(acc, 'p99')}; close->AuctionWon "
        f"p50 {us(won, 'p50')}, p99 {us(won, 'p99')}; {got['bids_acked']}/{got['bids_sent']} "
        f"accepted" + (f", {late} rejected (deadline passed)" if late else ""))
    print(f"\n{benchmark.name}: {benchmark.extra_info['summary']}")


@pytest.mark.benchmark(group="exchange latency at 50K bids/s offered")
def test_latency_50k(benchmark, server):
    _latency(benchmark, server, 50_000)


@pytest.mark.benchmark(group="exchange latency at 2K bids/s offered")
def test_latency_2k(benchmark, server):
    _latency(benchmark, server, 2_000)


@pytest.mark.benchmark(group="exchange 10K idle connections")
def test_idle_connections(benchmark, server):
    _idle(benchmark, server, IDLE, "test_idle_10k_connections")


@pytest.mark.benchmark(group="exchange 100K idle connections")
def test_idle_100k_connections(benchmark, server):
    if server.kind != "serve":
        pytest.skip("the peer's memory per connection is measured at 10K")
    # each process (the server, the load generator) holds one end of every connection
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE_100K + 1024:
        pytest.skip(f"the open-file hard limit ({hard}) is below {IDLE_100K + 1024}: raise it "
                    "(ulimit -Hn, which needs CAP_SYS_RESOURCE) for the 100K run")
    # one source address's ephemeral ports would run out
    sources = ",".join(f"127.0.0.{i}" for i in range(1, 6))
    _idle(benchmark, server, IDLE_100K, "test_idle_100k_connections", "--source-addrs", sources)


def _idle(benchmark, server, n: int, name: str, *args: str) -> None:
    benchmark.name = _name(server, name)
    got: dict = {}

    def run() -> None:
        got.update(loadgen(server, "--buyers", "0", "--idle", str(n), *args, keys="idle.txt"))

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    idle = got["idle"]
    benchmark.extra_info["items"] = idle["held"]
    benchmark.extra_info["baseline"] = server.kind == "peer"
    benchmark.extra_info["idle"] = idle
    per = idle["server_bytes_per_connection"]
    benchmark.extra_info["summary"] = (
        f"{per / 1024:.1f} KiB server RSS per idle connection "
        f"({idle['server_rss_before_bytes'] / 2**20:.0f} -> "
        f"{idle['server_rss_after_bytes'] / 2**20:.0f} MiB), {idle['held']} held in "
        f"{idle['connect_s']:.1f} s")
    print(f"\n{benchmark.name}: {benchmark.extra_info['summary']}")
    assert idle["held"] == n, idle
