"""An HTTP CONNECT proxy on loopback, as a pharmacy's network has one: it opens the tunnels
the agent asks for, each to the address its map gives (so a test can name a host only the
proxy reaches), and records them."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from tests.live import free_port
from tests.relay import serve_in_thread


@dataclass
class ConnectProxy:
    routes: dict[str, tuple[str, int]]  # "name:port" asked → where the tunnel really goes
    port: int = field(default_factory=free_port)
    tunnels: list[str] = field(default_factory=list)  # every CONNECT target, in order

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ConnectProxy:
        self.loop = serve_in_thread(self._client, self.port)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        route = self.routes.get(target)
        if method != "CONNECT" or route is None:
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            writer.close()
            return
        self.tunnels.append(target)
        up_reader, up_writer = await asyncio.open_connection(*route)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()
