"""The Python peer of the OpenRTB door: ``POST /openrtb2/auction`` written the way a user would
build it with ``aiohttp`` and ``rtbcore``, without the gateway. It reads the same
``exchange.toml`` as ``rtbcore serve`` (``[engine]`` ``tmax_ms``/``max_tmax_ms``,
``[openrtb]`` ``network_allowance_ms``, ``max_body_bytes`` and ``[[openrtb.bidders]]``).

    python benches/peer/openrtb_server.py --config exchange.toml [--host 127.0.0.1] [--port 0]

Per request: the body is parsed with ``json`` and checked (id, imps, a media type per imp,
floors); the request, its ``tmax`` replaced by the bidders' time, is POSTed to every bidder in
parallel over one pooled keep-alive ``aiohttp.ClientSession``, each within
``min(timeout_ms, tmax - network_allowance_ms - 5)``; late answers are dropped. Each imp is
then one ``rtbcore.SecondPriceAuction`` (``at`` = 2, no increment) or
``rtbcore.FirstPriceAuction`` (``at`` = 1) with the imp's floor as reserve, over the bids in
the bidders' ``cur`` = USD. The answer is a BidResponse with the winner of each imp at its
clearing price, or 204.

Left out (a peer, not a product): deals, floor rules, currencies other than USD, bid
adjustments, block lists, notices, WebSocket buyers and ``/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from pathlib import Path

import aiohttp
from aiohttp import web

import rtbcore

JSON = "application/json"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status)


def _invalid(req: object) -> str | None:
    """The first problem with the request, or None."""
    if not isinstance(req, dict):
        return "request must be a JSON object"
    if not isinstance(req.get("id"), str) or not req["id"]:
        return "request.id must be a non-empty string"
    imps = req.get("imp")
    if not isinstance(imps, list) or not imps:
        return "request.imp must contain at least one element"
    seen = set()
    for i, imp in enumerate(imps):
        if not isinstance(imp, dict) or not isinstance(imp.get("id"), str) or not imp["id"]:
            return f"request.imp[{i}].id must be a non-empty string"
        if imp["id"] in seen:
            return f"request.imp[{i}].id duplicates another imp's"
        seen.add(imp["id"])
        if not any(isinstance(imp.get(k), dict) for k in ("banner", "video", "audio", "native")):
            return f"request.imp[{i}] must have one of banner, video, audio, native"
        floor = imp.get("bidfloor", 0)
        if not isinstance(floor, (int, float)) or floor < 0:
            return f"request.imp[{i}].bidfloor must be a number >= 0"
    tmax = req.get("tmax")
    if tmax is not None and (not isinstance(tmax, int) or tmax <= 0):
        return "request.tmax must be a positive integer of milliseconds"
    if req.get("at", 2) not in (1, 2):
        return "request.at must be 1 or 2"
    return None


class Door:
    def __init__(self, config: dict) -> None:
        engine, ortb = config.get("engine", {}), config.get("openrtb", {})
        self.tmax_ms = int(engine.get("tmax_ms", 100))
        self.max_tmax_ms = int(engine.get("max_tmax_ms", 60_000))
        self.allowance_ms = int(ortb.get("network_allowance_ms", 20))
        self.max_body = int(ortb.get("max_body_bytes", 1 << 20))
        self.bidders = [(b["name"], b["endpoint"], int(b["timeout_ms"]))
                        for b in ortb.get("bidders", [])]
        self.session: aiohttp.ClientSession | None = None
        self.n = 0

    async def start(self, _app: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            headers={"Content-Type": JSON, "x-openrtb-version": "2.6"})

    async def stop(self, _app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def call(self, endpoint: str, body: bytes, seconds: float, request_id: str):
        """A bidder's BidResponse in time, or None (no bid, error, late, invalid)."""
        assert self.session is not None
        try:
            async with asyncio.timeout(seconds):
                async with self.session.post(endpoint, data=body) as r:
                    if r.status != 200:
                        return None
                    resp = json.loads(await r.read())
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None
        return resp if isinstance(resp, dict) and resp.get("id") == request_id else None

    async def auction(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > self.max_body:
            return _error(413, f"request body is larger than {self.max_body} bytes")
        try:
            req = json.loads(await request.read())
        except ValueError as e:
            return _error(400, f"request body is not valid JSON: {e}")
        problem = _invalid(req)
        if problem:
            return _error(400, problem)
        tmax = min(req.get("tmax") or self.tmax_ms, self.max_tmax_ms)
        budget = tmax - self.allowance_ms if tmax > 2 * self.allowance_ms else max(tmax // 2, 1)
        bidder_ms = max(budget - 5, 1)
        calls = []
        for _name, endpoint, timeout_ms in self.bidders:
            within = min(timeout_ms, bidder_ms)
            body = json.dumps({**req, "tmax": within}).encode()
            calls.append(self.call(endpoint, body, within / 1000, req["id"]))
        answers = await asyncio.gather(*calls)
        bids: dict[str, list[tuple[rtbcore.Bid, dict, str]]] = {}
        for (name, _e, _t), resp in zip(self.bidders, answers, strict=True):
            if resp is None or resp.get("cur", "USD") != "USD":
                continue
            for seatbid in resp.get("seatbid") or ():
                seat = seatbid.get("seat") or name
                for bid in seatbid.get("bid") or ():
                    price = bid.get("price")
                    if isinstance(price, (int, float)) and price > 0:
                        here = bids.setdefault(bid.get("impid"), [])
                        here.append((rtbcore.Bid(len(here), float(price)), bid, seat))
        seats: dict[str, list[dict]] = {}
        for imp in req["imp"]:
            here = bids.get(imp["id"])
            if not here:
                continue
            floor = float(imp.get("bidfloor", 0))
            auction = (rtbcore.FirstPriceAuction(reserve_price=floor) if req.get("at") == 1
                       else rtbcore.SecondPriceAuction(reserve_price=floor, increment=0.0))
            won = auction.run(b for b, _, _ in here)
            if won is None:
                continue
            winner, price = won
            _b, bid, seat = here[winner.bidder_id]
            seats.setdefault(seat, []).append({**bid, "price": round(price, 6)})
        if not seats:
            return web.Response(status=204)
        self.n += 1
        return web.json_response({
            "id": req["id"], "bidid": f"peer-{self.n}", "cur": "USD",
            "seatbid": [{"seat": s, "bid": b} for s, b in seats.items()]})


async def ready(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    door = Door(tomllib.loads(args.config.read_text()))
    app = web.Application(client_max_size=door.max_body)
    app.on_startup.append(door.start)
    app.on_cleanup.append(door.stop)
    app.router.add_post("/openrtb2/auction", door.auction)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/healthz", ready)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"rtbcore peer: listening on http://{host}:{port}", file=sys.stderr, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
