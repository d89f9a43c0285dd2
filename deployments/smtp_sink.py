"""A local SMTP sink (aiosmtpd on loopback) that keeps every message it receives.

The demo delivers its report e-mail here and saves the `.eml` next to the report; the e2e tests
assert on what arrived. Nothing leaves the machine.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on `host` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class _Handler:
    save_dir: Path | None
    messages: list[EmailMessage] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            (self.save_dir / f"mail-{len(self.messages) + 1:03d}.eml").write_bytes(raw)
        with self.arrived:
            self.messages.append(msg)  # type: ignore[arg-type]
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


class SmtpSink:
    """`with SmtpSink(save_dir) as sink:` — a plain SMTP server on 127.0.0.1:`sink.port`."""

    def __init__(self, save_dir: Path | None = None, host: str = "127.0.0.1", port: int | None = None):
        from aiosmtpd.controller import Controller

        self.host = host
        self.port = port or free_port(host)
        self._handler = _Handler(save_dir)
        self._controller = Controller(self._handler, hostname=host, port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self._handler.messages)

    def wait_for(self, count: int = 1, timeout_s: float = 30.0) -> list[EmailMessage]:
        """Block until `count` messages arrived (or the timeout passed); return them all."""
        with self._handler.arrived:
            self._handler.arrived.wait_for(lambda: len(self._handler.messages) >= count, timeout=timeout_s)
        return self.messages

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
