"""A TCP proxy for the client tests that injects network faults between a client and
``rtbcore serve``: ``drop()`` cuts every connection, ``stall()`` / ``resume()`` stop and restart
forwarding (both directions) without closing, ``delay`` holds each chunk, ``cut_mid_frame()``
forwards only the first bytes of the next server chunk, then cuts."""

from __future__ import annotations

import asyncio
import contextlib


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.delay = 0.0
        self.connections = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._cut_next = False
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def drop(self) -> None:
        for w in self._writers:
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._writers.clear()

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut_mid_frame(self) -> None:
        self._cut_next = True

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            cw.transport.abort()
            return
        self.connections += 1
        self._writers += [cw, uw]

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, downstream: bool) -> None:
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    await self._flowing.wait()
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    if downstream and self._cut_next and len(data) > 2:
                        self._cut_next = False
                        w.write(data[: len(data) // 2])
                        await w.drain()
                        self.drop()
                        return
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    w.transport.abort()

        await asyncio.gather(pipe(cr, uw, False), pipe(ur, cw, True))
