"""The exchange server (``rtbcore serve``) embedded in a Python program.

The server runs on its own native threads: no Python and no GIL per message. Python configures,
starts and stops it, opens auctions (``open_auction``) and consumes their results::

    with Exchange({"server": {"port": 0}}) as ex:
        ex.open_auction("a1", attributes={"vertical": "news"}, floor_micros=1000, tmax_s=0.05)
        for result in ex.results(timeout=1.0):
            print(result.auction_id, result.winner, result.price_micros)
            break

The protocol and the configuration are documented in ``docs/exchange.md`` and
``docs/protocol.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import tomllib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from _rtbcore import _Gateway

from rtbcore.errors import InvalidInputError, QueueClosed

__all__ = ["Exchange", "AuctionResult", "OpenedAuction", "load_exchange_config"]


@dataclass(frozen=True)
class AuctionResult:
    """One closed auction: the winner (None: no sale), its price in micros, how it closed."""

    auction_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    winner: str | None = None
    bid_id: str | None = None
    price_micros: int = 0
    n_bids: int = 0
    closed_by: str = "deadline"
    publisher: str | None = None


@dataclass(frozen=True)
class OpenedAuction:
    """An auction the exchange opened: its id and deadline (unix seconds)."""

    auction_id: str
    deadline: float


def load_exchange_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads an ``exchange.toml``; errors name the file."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise InvalidInputError(f"{p}: cannot read the exchange config: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise InvalidInputError(f"{p}: {e}") from e


class Exchange:
    """The rtbcore exchange server, started in this process.

    ``config`` is a path to an ``exchange.toml``, a dict of its tables, or None (defaults:
    127.0.0.1:8080, a development API key). ``host``, ``port`` and ``demo_traffic`` override
    the file. ``dev_key`` (default: True when there is no config) generates a development API
    key with every scope, read from :attr:`dev_key`.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        demo_traffic: float | None = None,
        dev_key: bool | None = None,
        threads: int = 2,
    ) -> None:
        if config is None:
            tables: dict[str, Any] = {}
            base = Path.cwd()
        elif isinstance(config, Mapping):
            tables = json.loads(json.dumps(dict(config)))
            base = Path.cwd()
        else:
            tables = load_exchange_config(config)
            base = Path(config).resolve().parent
        server = tables.setdefault("server", {})
        if host is not None:
            server["host"] = host
        if port is not None:
            if not 0 <= port <= 65535:
                raise InvalidInputError(f"port = {port}: must be in 0..=65535")
            server["port"] = port
        if demo_traffic is not None:
            tables.setdefault("demo", {})["traffic"] = float(demo_traffic)
        if threads < 1:
            raise InvalidInputError(f"threads = {threads}: must be >= 1")
        self._json = json.dumps(tables)
        self._base = str(base)
        self._dev_key = config is None if dev_key is None else bool(dev_key)
        self._threads = threads
        self._gw: _Gateway | None = None

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> Exchange:
        """Binds the port and starts serving (a no-op when running)."""
        if not self.running:
            self._gw = _Gateway(self._json, self._base, self._dev_key, self._threads)
        return self

    def stop(self) -> None:
        """Drains and stops: no new auctions or connections, open auctions finish (or are
        cancelled, per ``server.shutdown``), results are delivered, sockets close with 1001."""
        if self._gw is not None:
            self._gw.stop()

    def __enter__(self) -> Exchange:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> _Gateway:
        if self._gw is None or not self._gw.running:
            raise QueueClosed(
                "the exchange is not running: call start() or use it as a context manager")
        return self._gw

    # facts -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._gw is not None and self._gw.running

    @property
    def host(self) -> str:
        return self._running().host

    @property
    def port(self) -> int:
        return self._running().port

    @property
    def url(self) -> str:
        """``http://HOST:PORT``; the WebSocket is at ``ws://HOST:PORT/v1/bidding``."""
        return f"http://{self.host}:{self.port}"

    @property
    def dev_key(self) -> str | None:
        """The development API key (buyer ``dev``, every scope), if one was generated."""
        return self._running().dev_key

    @property
    def event_log_path(self) -> str:
        return self._running().event_log_path

    def metrics_text(self) -> str:
        """What ``/metrics`` serves (Prometheus text format)."""
        return self._running().metrics_text()

    def auctions_open(self) -> int:
        return self._running().auctions_open()

    # auctions --------------------------------------------------------------------------------

    def open_auction(
        self,
        auction_id: str = "",
        *,
        attributes: Mapping[str, str] | None = None,
        floor_micros: int = 0,
        tmax_s: float | None = None,
        expected_bids: int = 0,
    ) -> OpenedAuction:
        """Opens an auction, announced to every subscribed buyer whose filters match.

        ``auction_id`` empty: the exchange picks one. ``tmax_s`` None: the configured default.
        Raises InvalidInputError naming the field (bad id, amount, duplicate id, draining).
        """
        attrs = {str(k): str(v) for k, v in (attributes or {}).items()}
        if not 0 <= expected_bids <= 2**32 - 1:
            raise InvalidInputError(f"expected_bids = {expected_bids}: must be in 0..=2**32-1")
        aid, deadline = self._running().open_auction(
            auction_id, attrs, int(floor_micros), tmax_s, int(expected_bids))
        return OpenedAuction(aid, deadline)

    def next_result(self, timeout: float = 0.0) -> AuctionResult | None:
        """The next closed auction, waiting up to ``timeout`` seconds (None if none came)."""
        if self._gw is None:
            return None
        d = self._gw.next_result(timeout)
        return None if d is None else AuctionResult(**d)

    def results(self, timeout: float | None = None) -> Iterator[AuctionResult]:
        """Closed auctions as they come; ends after ``timeout`` seconds without one (None:
        only when the exchange stops)."""
        while True:
            r = self.next_result(0.1 if timeout is None else timeout)
            if r is not None:
                yield r
            elif timeout is not None or not self.running:
                return

    def __iter__(self) -> Iterator[AuctionResult]:
        return self.results()

    async def __aiter__(self) -> AsyncIterator[AuctionResult]:
        while True:
            r = await asyncio.to_thread(self.next_result, 0.1)
            if r is not None:
                yield r
            elif not self.running:
                return
