"""A TCP relay between the agent and the host that delays each direction by RTT/2, delays
each new connection by one RTT (the TCP handshake it would otherwise answer at once), can
limit the bandwidth with a TCP-like slow start, and counts connections and round trips: a
round trip starts each time the agent sends after the host spoke (or first) on a
connection, so a TLS handshake is one and each sequential HTTP request another; requests in
flight together count once. Used by bench/latency.py (times) and the round-trip budget
tests (counts, at RTT 0)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.pki import init_pki
from tests.live import AgentProcess, HostProcess, LiveWorld, free_port

SEGMENT = 1460

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def serve_in_thread(handler: Handler, port: int) -> asyncio.AbstractEventLoop:
    """An asyncio server on 127.0.0.1:``port`` in a thread of its own, listening when this
    returns; stop it with ``loop.call_soon_threadsafe(loop.stop)``."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(handler, "127.0.0.1", port))
        ready.set()
        with contextlib.suppress(RuntimeError):
            loop.run_forever()
        server.close()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(5)
    return loop


@dataclass
class _Direction:
    """One direction of one connection: when its bytes may leave (delay, slow start)."""

    cwnd: int = 10 * SEGMENT
    window_start: float = 0.0
    sent_in_window: int = 0
    free_at: float = 0.0  # the link is busy until then (bandwidth)


@dataclass
class Relay:
    """127.0.0.1:port → 127.0.0.1:target, delayed; counters reset per workflow."""

    target: int
    rtt: float = 0.0
    bytes_per_second: float = 0.0  # 0: unlimited
    port: int = field(default_factory=free_port)
    connections: int = 0
    round_trips: int = 0
    # Round trips on the connections that were open at the last reset (a workflow's own
    # requests on a warm connection, apart from what opens new ones meanwhile).
    warm_round_trips: int = 0
    opened: int = 0  # connections ever opened (an id per connection)
    _warm_below: int = 0

    def start(self) -> Relay:
        self.loop = serve_in_thread(self._connection, self.port)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)

    def reset(self) -> None:
        self.connections = self.round_trips = self.warm_round_trips = 0
        self._warm_below = self.opened

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.opened += 1
        number = self.opened
        await asyncio.sleep(self.rtt)  # SYN, SYN-ACK
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        last: dict[str, Any] = {"from": "host", "number": number}
        await asyncio.gather(self._pipe(reader, up_writer, last, "agent"),
                             self._pipe(up_reader, writer, last, "host"))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    last: dict[str, Any], side: str) -> None:
        loop = asyncio.get_running_loop()
        direction = _Direction()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                due, chunk = item
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(chunk)
                with contextlib.suppress(OSError):
                    await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(deliver())
        try:
            while chunk := await reader.read(65536):
                if side == "agent" and last["from"] == "host":
                    self.round_trips += 1
                    if last["number"] <= self._warm_below:
                        self.warm_round_trips += 1
                last["from"] = side
                queue.put_nowait((self._due(direction, len(chunk), loop.time()), chunk))
        except OSError:
            pass
        finally:
            queue.put_nowait(None)
            await sender

    def _due(self, direction: _Direction, size: int, now: float) -> float:
        """When ``size`` bytes read now arrive on the other side."""
        start = now
        if self.bytes_per_second and self.rtt:
            if now - direction.window_start > self.rtt:  # a new window of the slow start
                direction.window_start, direction.sent_in_window = now, 0
            if direction.sent_in_window + size > direction.cwnd:
                start = max(start, direction.window_start + self.rtt)
                direction.window_start, direction.sent_in_window = start, 0
                direction.cwnd = min(direction.cwnd * 2,
                                     max(int(self.bytes_per_second * self.rtt), SEGMENT))
            direction.sent_in_window += size
        if self.bytes_per_second:
            start = max(start, direction.free_at)
            direction.free_at = start + size / self.bytes_per_second
            start = direction.free_at
        return start + self.rtt / 2


@contextlib.contextmanager
def relayed_world(root: Path, *, host_args: tuple[str, ...] = (), agent_host_config: str = ""
                  ) -> Iterator[tuple[LiveWorld, Relay]]:
    """The reference host and an enrolled `dmp-agent run` that reaches it through a
    `Relay` (RTT 0 until the caller sets one)."""
    pki = root / "pki"
    init_pki(pki)
    host = HostProcess(pki, root / "host", *host_args)
    host.start()
    relay = Relay(host.port).start()
    agent = AgentProcess(root / "agent", f"https://127.0.0.1:{relay.port}", pki,
                         host_config=agent_host_config)
    try:
        agent.enrol()
        agent.start()
        yield LiveWorld(host, agent, pki, root), relay
    finally:
        agent.stop()
        relay.stop()
        host.stop()
