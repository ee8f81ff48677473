"""A small client of the exchange protocol for the tests: the JSON subprotocol over the
``websockets`` package (a client that is not the server's own code), and the ``rtbcore serve``
process helpers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import websockets

RTBCORE = [str(Path(sys.executable).parent / "rtbcore")]

KEYS = {"pub": ("key-pub", ["publish", "subscribe", "metrics"]),
        "acme": ("key-acme", ["bid", "subscribe"]),
        "bolt": ("key-bolt", ["bid", "subscribe"])}


def write_config(d: Path, *, shutdown: str = "finish", extra: str = "") -> Path:
    lines = []
    for buyer, (key, scopes) in KEYS.items():
        digest = hashlib.sha256(key.encode()).hexdigest()
        lines.append(f'[[keys]]\nbuyer = "{buyer}"\nsha256 = "{digest}"\n'
                     f"scopes = {json.dumps(scopes)}\n")
    (d / "keys.toml").write_text("\n".join(lines))
    cfg = d / "exchange.toml"
    cfg.write_text(f'[server]\nport = 0\nshutdown = "{shutdown}"\ndrain_timeout_s = 3\n{extra}\n'
                   '[auth]\nkeys_file = "keys.toml"\n[engine]\ntmax_ms = 200\n'
                   '[events]\npath = "events.ring"\nmax_records = 65536\n')
    return cfg


class Buyer:
    """One authenticated connection (JSON subprotocol)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, url: str, key: str) -> Buyer:
        ws = await websockets.connect(url.replace("http://", "ws://") + "/v1/bidding",
                                      subprotocols=["rtbcore.v1.json"], open_timeout=5)
        b = cls(ws)
        await b.send({"auth": {"apiKey": key}})
        res = await b.next()
        assert res["authResult"]["ok"], res
        return b

    async def send(self, *msgs: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"messages": list(msgs)}))

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        while not self.events:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation of the
            # caller that lands as a frame arrives, and a task stopped that way never stops
            async with asyncio.timeout(timeout):
                raw = await self.ws.recv()
            self.events.extend(json.loads(raw).get("events", []))
        return self.events.pop(0)

    async def until(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            e = await self.next(timeout)
            if kind in e:
                return e

    async def close(self) -> None:
        await self.ws.close()


def seq(e: dict[str, Any]) -> int:
    return int(e.get("seq", "0"))


class ServeProcess:
    """``rtbcore serve`` in a child process; the port is read from its "listening" line."""

    LISTENING = re.compile(r"rtbcore serve: listening on (http://[\d.]+:\d+)")

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # the installed command, run outside the checkout (whose rtbcore/ has no built modules)
        self.proc = subprocess.Popen(
            [*RTBCORE, "serve", *args], cwd=cwd or tempfile.gettempdir(),
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.lines: list[str] = []
        deadline = time.monotonic() + 30
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise AssertionError(f"serve exited: {self.lines}")
            self.lines.append(line)
            m = self.LISTENING.search(line)
            if m:
                self.url = m.group(1)
                # keep reading: a server whose stderr pipe fills up would block on its logging
                self._drain = threading.Thread(target=self._read_rest, daemon=True)
                self._drain.start()
                return
        raise AssertionError(f"no listening line: {self.lines}")

    def _read_rest(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if len(self.lines) > 10_000:
                del self.lines[:5_000]

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        rc = self.proc.wait(timeout)
        assert self.proc.stderr is not None
        drain = getattr(self, "_drain", None)
        if drain is not None:
            drain.join(10)
        elif not self.proc.stderr.closed:
            self.lines.extend(self.proc.stderr.readlines())
        if not self.proc.stderr.closed and (drain is None or not drain.is_alive()):
            self.proc.stderr.close()
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(10)
