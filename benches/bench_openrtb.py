"""OpenRTB door benches: ``rtbcore serve``'s ``POST /openrtb2/auction`` beside its baseline, the
Python peer (``benches/peer/openrtb_server.py``: ``aiohttp`` server and client +
``rtbcore.SecondPriceAuction``), in the same run, on the same config and the same bidders.

- Bidders: ``rtbcore-mock-bidders`` (``rust/loadgen/src/mock_bidders.rs``), five HTTP/1.1
  bidders on loopback ports in one process, each answering one bid per imp at a price drawn
  uniformly in [0.5, 3) USD after a drawn latency; both servers call all five for every
  request (``timeout_ms`` = 150, ``tmax`` = 200 ms, nobody is late).
- Load: ``oha`` (``make bench-tools``: ``cargo install``), a third-party HTTP load generator,
  POSTing one-imp banner requests over keep-alive connections; its JSON report gives the
  answers by status and the latency percentiles. A 1 s warm-up run (connections, pools)
  precedes each measured one.

- ``openrtb auctions/s (5 HTTP bidders)``: closed loop, ``oha -c 64`` for 5 s, bidders
  answering after ``uniform:1:5`` ms. items = auctions answered (200 or 204), the time is the
  oha run; the summary has oha's own rate and the outbound bidder requests/s the bidders
  counted.
- ``openrtb latency at 2K auctions/s offered``: open loop, ``oha -q 2000
  --latency-correction`` (latencies from each request's scheduled send, so a stall is not
  hidden by the sender waiting) for 5 s; the bidders answer after exactly ``fixed:10`` ms.
  Added latency = response time − 10 ms: the exchange's own time (parsing, fan-out, auction,
  answer) plus the loopback hops and the load generator's own time, and the bidders' timer
  overshoot (tokio timers fire up to ~1 ms late) — an upper bound. For ``rtbcore serve`` the
  summary also has the server's own view, from its ``rtbcore_openrtb_added_seconds``
  histogram on ``/metrics`` (each answer's time in the door less its wait for the bidders,
  as bucket upper bounds), which leaves out the load generator and the scheduling of the
  other processes sharing the machine. items = requests offered; read the summary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from launch import Server, serve_available, start_server

ROOT = Path(__file__).resolve().parents[1]
MOCK = Path(os.environ.get("RTBCORE_MOCK_BIDDERS",
                           ROOT / "rust" / "target" / "release" / "rtbcore-mock-bidders"))
PEER = ROOT / "benches" / "peer" / "openrtb_server.py"
BIDDERS = 5
TMAX_MS = 200
BIDDER_LATENCY_MS = 10  # the latency bench's fixed bidder latency
SECONDS = 5
REQUEST = {
    "id": "bench-1", "tmax": TMAX_MS, "at": 2, "cur": ["USD"],
    "imp": [{"id": "1", "banner": {"w": 300, "h": 250, "format": [{"w": 300, "h": 250}]},
             "bidfloor": 0.5, "bidfloorcur": "USD", "tagid": "top"}],
    "site": {"id": "s1", "domain": "news.example", "page": "https://news.example/a"},
    "device": {"ua": "Mozilla/5.0", "ip": "203.0.113.7", "geo": {"country": "USA"}},
    "user": {"id": "u1"},
}


def _oha() -> str | None:
    found = os.environ.get("OHA") or shutil.which("oha")
    if found:
        return found
    home = Path.home() / ".cargo" / "bin" / "oha"
    return str(home) if home.exists() else None


OHA = _oha()

pytestmark = [
    pytest.mark.skipif(not MOCK.exists(), reason=f"{MOCK} is missing: make loadgen"),
    pytest.mark.skipif(OHA is None, reason="oha is missing: make bench-tools"),
]


class MockBidders:
    """``rtbcore-mock-bidders`` in a subprocess: its ports and its counts."""

    def __init__(self, latency: str) -> None:
        self.proc = subprocess.Popen(
            [str(MOCK), "--bidders", str(BIDDERS), "--latency-ms", latency,
             "--price", "uniform:0.5:3"], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.ports = json.loads(self.proc.stdout.readline())["ports"]

    def requests(self) -> int:
        """Bid requests received so far, all bidders."""
        n = 0
        for p in self.ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{p}/stats", timeout=5) as r:
                n += json.loads(r.read())["requests"]
        return n

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=10)  # reads its final counts line and closes the pipe


@contextmanager
def exchange(kind: str, directory: Path, latency: str):
    """A server of ``kind`` ("serve" or "peer") calling five fresh mock bidders."""
    bidders = MockBidders(latency)
    try:
        extra = "".join(
            f'[[openrtb.bidders]]\nname = "bidder{i}"\n'
            f'endpoint = "http://127.0.0.1:{p}/openrtb"\ntimeout_ms = 150\n\n'
            for i, p in enumerate(bidders.ports))
        settings = {"engine.workers": 1, "engine.tmax_ms": TMAX_MS,
                    "openrtb.network_allowance_ms": 20}
        srv = start_server(kind, directory, {"pub": ["publish", "subscribe"]}, settings,
                           extra_toml=extra, peer=PEER)
        try:
            yield srv, bidders
        finally:
            srv.stop()
    finally:
        bidders.stop()


@pytest.fixture(params=["serve", "peer"])
def kind(request):
    if request.param == "serve" and not serve_available():
        pytest.skip("rtbcore serve is not in this build")
    return request.param


def oha(srv: Server, body: Path, seconds: float, *args: str) -> dict:
    cmd = [OHA, "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-m", "POST",
           "-T", "application/json", "-D", str(body), "--worker-threads", "1", *args,
           f"{srv.http}/openrtb2/auction"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise AssertionError(f"oha failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def _answered(report: dict) -> tuple[int, int, int]:
    codes = report.get("statusCodeDistribution", {})
    ok, empty = int(codes.get("200", 0)), int(codes.get("204", 0))
    return ok, empty, sum(int(v) for v in codes.values()) - ok - empty


def _added_buckets(srv: Server) -> dict[float, int] | None:
    """``rtbcore serve``'s ``rtbcore_openrtb_added_seconds`` histogram: upper bound (s) ->
    cumulative count; None for a server without it (the peer)."""
    if srv.kind != "serve":
        return None
    with urllib.request.urlopen(f"{srv.http}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("rtbcore_openrtb_added_seconds_bucket{le="):
            le, n = line.split('le="', 1)[1].split('"}')
            out[float(le)] = int(n)
    return out


def _bucket_quantile(before: dict[float, int], after: dict[float, int], q: float) -> float:
    """The upper bound (s) of the bucket holding quantile ``q`` of what was observed between
    the two snapshots (an upper bound of the quantile)."""
    delta = sorted((le, after[le] - before.get(le, 0)) for le in after)
    total = delta[-1][1]
    return next((le for le, n in delta if n >= q * total), float("inf"))


def _name(kind: str, what: str) -> str:
    return ("gateway_" if kind == "serve" else "python_peer_") + what


def _body(tmp_path: Path) -> Path:
    body = tmp_path / "request.json"
    body.write_text(json.dumps(REQUEST))
    return body


@pytest.mark.benchmark(group="openrtb auctions/s (5 HTTP bidders)")
def test_auctions(benchmark, kind, tmp_path):
    benchmark.name = _name(kind, "auctions_5_bidders")
    body = _body(tmp_path)
    got: dict = {}
    with exchange(kind, tmp_path, "uniform:1:5") as (srv, bidders):
        oha(srv, body, 1, "-c", "64")

        def run() -> None:
            before = bidders.requests()
            t = time.perf_counter()
            got["report"] = oha(srv, body, SECONDS, "-c", "64")
            got["seconds"] = time.perf_counter() - t
            got["outbound"] = bidders.requests() - before

        benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    report = got["report"]
    ok, empty, other = _answered(report)
    rate = report["summary"]["requestsPerSec"]
    outbound = got["outbound"] / got["seconds"]
    benchmark.extra_info.update(items=ok + empty, baseline=kind == "peer", oha=report,
                                outbound_per_s=outbound)
    benchmark.extra_info["summary"] = (
        f"{(ok + empty) / SECONDS / 1e3:.1f}K auctions/s answered ({ok} with a bid, {empty} "
        f"204, {other} other), {outbound / 1e3:.1f}K bidder requests/s out; oha -c 64, "
        f"bidders uniform:1:5 ms")
    print(f"\n{benchmark.name}: {benchmark.extra_info['summary']} (oha: {rate:.0f}/s)")
    assert other == 0, report.get("statusCodeDistribution")
    assert ok > 0


@pytest.mark.benchmark(group="openrtb latency at 2K auctions/s offered")
def test_latency_2k(benchmark, kind, tmp_path):
    benchmark.name = _name(kind, "latency_2k")
    body = _body(tmp_path)
    rate = 2000
    got: dict = {}
    with exchange(kind, tmp_path, f"fixed:{BIDDER_LATENCY_MS}") as (srv, bidders):
        oha(srv, body, 1, "-c", "128", "-q", str(rate))

        def run() -> None:
            before, hist = bidders.requests(), _added_buckets(srv)
            got["report"] = oha(srv, body, SECONDS, "-c", "128", "-q", str(rate),
                                "--latency-correction")
            got["outbound"] = bidders.requests() - before
            if hist is not None:
                after = _added_buckets(srv)
                assert after is not None
                got["server"] = {q: _bucket_quantile(hist, after, q) * 1e3
                                 for q in (0.5, 0.99, 0.999)}

        benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    report = got["report"]
    ok, empty, other = _answered(report)
    pct = report["latencyPercentiles"]
    ms = {q: (pct[q] or 0.0) * 1e3 for q in ("p50", "p99", "p99.9")}
    added = {q: v - BIDDER_LATENCY_MS for q, v in ms.items()}
    benchmark.extra_info.update(items=rate * SECONDS, oha=report, outbound=got["outbound"],
                                **{f"response_{q}_ms": v for q, v in ms.items()},
                                **{f"added_{q}_ms": v for q, v in added.items()},
                                server_added_ms=got.get("server"))
    benchmark.extra_info["summary"] = (
        f"{rate / 1e3:.0f}K auctions/s offered for {SECONDS} s; response p50 "
        f"{ms['p50']:.1f} ms, p99 {ms['p99']:.1f} ms; added (response - the bidders' "
        f"{BIDDER_LATENCY_MS} ms) p50 {added['p50']:.1f} ms, p99 {added['p99']:.1f} ms, "
        f"p99.9 {added['p99.9']:.1f} ms"
        + ("; in the server (its own time, the bidders' wait taken out) p50 <= "
           f"{srv_ms[0.5]:g} ms, p99 <= {srv_ms[0.99]:g} ms, p99.9 <= {srv_ms[0.999]:g} ms"
           if (srv_ms := got.get("server")) else "")
        + f"; {ok + empty} answered ({other} other), {got['outbound']} bidder requests")
    print(f"\n{benchmark.name}: {benchmark.extra_info['summary']}")
    assert ok > 0 and other == 0, report.get("statusCodeDistribution")
