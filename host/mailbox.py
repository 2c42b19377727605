"""A small SMTP server that keeps what it receives: the sandbox's post office (the patient's
mail lands there, and in files one can open) and the notification tests' real server."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import socket
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    """What the server received: (recipients, parsed message), in order; each message also
    written as NNNN.eml into ``directory`` when one is given."""

    def __init__(self, delay: float = 0.0, directory: Path | None = None) -> None:
        self.delay = delay
        self.directory = directory
        self.received: list[tuple[list[str], email.message.EmailMessage]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
            if self.directory is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self.directory / f"{len(self.received):04d}.eml"
                path.write_bytes(envelope.content)
            self.arrived.notify_all()
        if self.delay:
            await asyncio.sleep(self.delay)  # the sender waits for the 250 meanwhile
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` messages arrived in all; False at the timeout."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.received) >= count, timeout)


class RoomySMTP(SMTP):
    # aiosmtpd sizes its StreamReader buffer to the 1001-byte line limit, and on Python 3.11
    # readuntil() then reports "Line too long" for some messages of about that total size
    # whose lines are all short (seen with 78-byte quoted-printable lines). A bigger buffer.
    line_length_limit = 65536


class RoomyController(Controller):
    def factory(self) -> SMTP:
        return RoomySMTP(self.handler, **self.SMTP_kwargs)


class SmtpServer:
    """The server on 127.0.0.1 in a thread of this process: start(), then stop()."""

    def __init__(self, delay: float = 0.0, port: int | None = None,
                 directory: Path | None = None) -> None:
        self.mailbox = Mailbox(delay, directory)
        self.port = port or free_port()
        self.controller = RoomyController(self.mailbox, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
