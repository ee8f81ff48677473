"""Demo section: the exchange server, with buyers bidding over real WebSocket connections."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time

import numpy as np

from rtbcore.exchange import Exchange

BUYERS = ("acme", "bolt", "cato", "dune")


def sign_token(secret: str, buyer: str, scopes: list[str], ttl_s: int = 3600) -> str:
    """A protocol token (``Auth.token``): HMAC-SHA256 over ``v1.<payload>``, base64url."""
    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    payload = b64(json.dumps({"sub": buyer, "scopes": scopes,
                              "exp": int(time.time()) + ttl_s}).encode())
    sig = hmac.new(secret.encode(), f"v1.{payload}".encode(), hashlib.sha256).digest()
    return f"v1.{payload}.{b64(sig)}"


async def _buyer(url: str, token: str, seed: int, seconds: float) -> dict[str, object]:
    import websockets

    rng = np.random.default_rng(seed)
    lat: list[float] = []
    sent: dict[str, float] = {}
    won = lost = accepted = 0
    spend = 0
    # max_queue=None: the client keeps reading while it closes, so that the server's close
    # frame is not stuck behind announcements it no longer consumes
    async with websockets.connect(url.replace("http://", "ws://") + "/v1/bidding",
                                  subprotocols=["rtbcore.v1.json"], max_queue=None) as ws:
        async def send(*msgs: dict) -> None:
            await ws.send(json.dumps({"messages": list(msgs)}))

        await send({"auth": {"token": token}}, {"subscribe": {}})
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), end - time.monotonic()))
            except TimeoutError:
                break
            for e in frame.get("events", []):
                if "auctionStarted" in e:
                    a = e["auctionStarted"]
                    q = float(a["attributes"].get("quality_score", "0.5"))
                    amount = int(int(a["floor"]["micros"]) * (1 + 3 * q * rng.random()))
                    n += 1
                    rid = f"r{n}"
                    sent[rid] = time.perf_counter()
                    await send({"requestId": rid, "placeBid": {
                        "auctionId": a["auctionId"], "amount": {"micros": str(amount)}}})
                elif "bidAccepted" in e:
                    accepted += 1
                    t0 = sent.pop(e.get("requestId", ""), None)
                    if t0 is not None:
                        lat.append(time.perf_counter() - t0)
                elif "auctionWon" in e:
                    won += 1
                    spend += int(e["auctionWon"]["price"]["micros"])
                elif "auctionLost" in e:
                    lost += 1
    return {"accepted": accepted, "won": won, "lost": lost, "spend": spend, "lat": lat}


def run(args: argparse.Namespace) -> None:
    """``rtbcore demo``: starts the exchange in this process (port chosen by the OS, demo
    auctions at 200/s), connects four buyers over WebSocket (JSON subprotocol, HMAC tokens),
    each bidding on every announcement, and prints what each got and the round-trip latency."""
    seconds = 1.5 if getattr(args, "quick", False) else 4.0
    secret = secrets.token_urlsafe(24)
    cfg = {"server": {"port": 0}, "auth": {"token_secret": secret},
           "engine": {"tmax_ms": 50}, "demo": {"traffic": 200.0}}
    print("\n== exchange server: rtbcore serve with four buyers over WebSocket ==")
    with Exchange(cfg) as ex:
        url = ex.url
        tokens = [sign_token(secret, b, ["bid", "subscribe"]) for b in BUYERS]

        async def main() -> list[dict[str, object]]:
            return await asyncio.gather(*(
                _buyer(ex.url, t, args.seed + i, seconds) for i, t in enumerate(tokens)))

        t0 = time.perf_counter()
        stats = asyncio.run(main())
        wall = time.perf_counter() - t0
    # stopped: the demo traffic has ended, what closed is still readable
    closed = sum(1 for _ in ex.results(timeout=0.2))
    print(f"  {url}: {closed} auctions closed in {wall:.1f} s")
    for name, s in zip(BUYERS, stats, strict=True):
        print(f"  {name}: {s['accepted']} bids accepted, {s['won']} won, {s['lost']} lost, "
              f"spend {int(s['spend']) / 1e6:.4f} USD")
    lat = np.concatenate([np.asarray(s["lat"], dtype=float) for s in stats]) * 1e3
    if lat.size:
        print(f"  PlaceBid -> BidAccepted round trip (Python client, same machine): "
              f"p50 {np.percentile(lat, 50):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms")
