"""The OpenRTB door of the installed ``rtbcore serve``, end to end: two HTTP bidders (Python
``http.server`` on loopback) and a WebSocket buyer (``rtbcore.client``) bid on the same imp; the
BidResponse carries the second price, and the win notice reaches the winner with its macros
substituted. The rules themselves are tested in rust/gateway/tests/openrtb.rs."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import urllib.error
import urllib.request
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from exchange_client import ServeProcess, write_config

from rtbcore.client import BiddingClient

pytestmark = pytest.mark.timeout(120)


def _bidder(price: float, notices: list[str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"id": req["id"], "cur": "USD", "seatbid": [{"bid": [{
                "id": f"b{price}", "impid": req["imp"][0]["id"], "price": price,
                "adm": "<a>${AUCTION_PRICE}</a>", "crid": "c1",
                "nurl": f"http://127.0.0.1:{self.server.server_port}/win?p=${{AUCTION_PRICE}}"
                        "&id=${AUCTION_ID}"}]}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            notices.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url + "/openrtb2/auction", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_http_bidders_and_a_websocket_buyer_share_the_auction(tmp_path) -> None:
    notices: list[str] = []
    a, b = _bidder(1.5, notices), _bidder(2.5, notices)
    extra = "".join(
        f'\n[[openrtb.bidders]]\nname = "{n}"\nendpoint = "http://127.0.0.1:{s.server_port}/"\n'
        "timeout_ms = 300\n" for n, s in (("alpha", a), ("beta", b)))
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text() + extra)
    s = ServeProcess("--config", str(cfg))
    request = {"id": "r1", "at": 2, "tmax": 400, "site": {"domain": "news.example"},
               "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "bidfloor": 0.5}]}

    async def main() -> tuple[int, bytes, list[str]]:
        ws = s.url.replace("http://", "ws://") + "/v1/bidding"
        async with BiddingClient(ws, api_key="key-acme").connect() as conn:
            await conn.subscribe(event_types=["auction_started", "auction_lost"])
            post = asyncio.create_task(asyncio.to_thread(
                _post, s.url, json.dumps(request).encode()))
            seen = []
            async for ev in conn.stream_events():
                seen.append(ev.type)
                if ev.type == "auction_started":
                    assert ev.attributes, "the imp's attributes reach WebSocket buyers"
                    await conn.place_bid(ev.call_id, 2.0)
                if ev.type == "auction_lost":
                    break
            status, body = await post
            return status, body, seen

    try:
        status, body, seen = asyncio.run(main())
        assert status == 200, body
        resp = json.loads(body)
        bid = resp["seatbid"][0]["bid"][0]
        assert resp["id"] == "r1" and resp["seatbid"][0]["seat"] == "beta"
        # second price among 1.5 (alpha), 2.0 (the WebSocket buyer), 2.5 (beta): 2.0
        assert bid["price"] == pytest.approx(2.0)
        assert bid["adm"] == "<a>2</a>", bid["adm"]  # ${AUCTION_PRICE} substituted
        assert seen[0] == "auction_started" and seen[-1] == "auction_lost"
        for _ in range(50):
            if notices:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert len(notices) == 1 and "id=r1" in notices[0] and "p=2&" in notices[0], notices
        # bad input: a 400 naming the field, and the rejection counted
        status, body = _post(s.url, json.dumps({**request, "imp": []}).encode())
        assert status == 400 and b"request.imp must contain at least one element" in body
        with urllib.request.urlopen(s.url + "/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'rtbcore_openrtb_requests_total{outcome="invalid"} 1' in metrics, metrics
    finally:
        s.kill()
        for srv in (a, b):
            srv.shutdown()
            srv.server_close()


def _gzip_bidder(seen: list[dict]) -> ThreadingHTTPServer:
    """A bidder configured with ``gzip = true``: it records the request's encoding headers,
    inflates the body with Python's ``gzip`` and answers gzip-compressed."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            encoding = self.headers.get("Content-Encoding")
            req = json.loads(gzip.decompress(raw) if encoding == "gzip" else raw)
            seen.append({"encoding": encoding, "accept": self.headers.get("Accept-Encoding"),
                         "id": req["id"]})
            body = gzip.compress(json.dumps({"id": req["id"], "seatbid": [{"seat": "zipseat",
                "bid": [{"id": "z1", "impid": req["imp"][0]["id"], "price": 3.0,
                         "crid": "c1"}]}]}).encode())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _post_headers(url: str, body: bytes,
                  headers: dict[str, str]) -> tuple[int, Message, bytes]:
    req = urllib.request.Request(url + "/openrtb2/auction", data=body,
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_gzip_requests_answers_and_bidders(tmp_path) -> None:
    seen: list[dict] = []
    bidder = _gzip_bidder(seen)
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text() + (
        f'\n[openrtb]\nmax_body_bytes = 65536\n'
        f'[[openrtb.bidders]]\nname = "zip"\n'
        f'endpoint = "http://127.0.0.1:{bidder.server_port}/"\ntimeout_ms = 300\ngzip = true\n'))
    s = ServeProcess("--config", str(cfg))
    request = {"id": "gz1", "at": 2, "tmax": 400, "site": {"domain": "news.example"},
               "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "bidfloor": 0.5}]}
    try:
        status, headers, body = _post_headers(
            s.url, gzip.compress(json.dumps(request).encode()),
            {"Content-Encoding": "gzip", "Accept-Encoding": "gzip"})
        assert status == 200, body
        assert headers.get("Content-Encoding") == "gzip", headers
        resp = json.loads(gzip.decompress(body))
        assert resp["id"] == "gz1" and resp["seatbid"][0]["seat"] == "zipseat"
        # one bidder: second price falls to the floor
        assert resp["seatbid"][0]["bid"][0]["price"] == pytest.approx(0.5)
        assert seen == [{"encoding": "gzip", "accept": "gzip", "id": "gz1"}]

        # q=0 refuses gzip: a plain answer
        status, headers, body = _post_headers(
            s.url, json.dumps({**request, "id": "gz2"}).encode(), {"Accept-Encoding": "gzip;q=0"})
        assert status == 200 and "Content-Encoding" not in headers, headers
        assert json.loads(body)["id"] == "gz2"

        # a zip bomb: 32 MiB of whitespace inflates far past max_body_bytes
        bomb = gzip.compress(json.dumps(request).encode() + b" " * (32 << 20))
        assert len(bomb) < 65536
        status, _, body = _post_headers(s.url, bomb, {"Content-Encoding": "gzip"})
        assert status == 413 and b"once gzip is undone" in body, body
        status, _, body = _post_headers(s.url, b"\x1f\x8b\x08\x00broken",
                                        {"Content-Encoding": "gzip"})
        assert status == 400 and b"not valid gzip" in body, body
        status, _, body = _post_headers(s.url, json.dumps(request).encode(),
                                        {"Content-Encoding": "br"})
        assert status == 415, body
        assert json.loads(body)["error"]["message"].startswith('Content-Encoding "br"'), body

        with urllib.request.urlopen(s.url + "/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'rtbcore_openrtb_bidder_bids_total{bidder="zip"} 2' in metrics, metrics
        errors = [ln for ln in metrics.splitlines()
                  if ln.startswith('rtbcore_openrtb_bidder_errors_total{bidder="zip"')]
        assert len(errors) == 8 and all(ln.endswith(" 0") for ln in errors), errors
        assert 'rtbcore_openrtb_requests_total{outcome="unsupported_encoding"} 1' in metrics
    finally:
        s.kill()
        bidder.shutdown()
        bidder.server_close()
