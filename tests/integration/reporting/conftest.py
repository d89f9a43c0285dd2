"""Real loopback services for the report mail tests: an aiosmtpd server, a silent server, a
refused port, and a SQLite database seeded with the hand-built ledger of the unit tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from tests.unit.reporting.conftest import S, case_fills


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never says a word (no SMTP greeting)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for c in held:
            c.close()
        srv.close()


@pytest.fixture
def refused_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


@pytest.fixture
def seeded_db(tmp_path) -> str:
    """SQLite with the hand-built ledger: a KRW balance snapshot, the six fills, equity points."""
    from trader.storage.db import Database
    from trader.storage.repository import Repository

    url = f"sqlite:///{tmp_path / 'trader.db'}"
    db = Database.open(url)
    repo = Repository(db)
    fills = case_fills()
    repo.add_balance_snapshot(
        fills[0].ts_ms - 60_000,
        [{"currency": "KRW", "balance": "1000000", "locked": "0", "avg_buy_price": "0"}],
        "exchange",
    )
    for f in fills:
        repo.record_fill(f)
    # mark prices the engine recorded (equity = the ledger's KRW + volume × price at that time)
    repo.add_equity_point(
        S - 3_600_000, "KRW-BTC", Decimal(51_000_000), Decimal(499_750), Decimal("0.01"), Decimal(1_009_750)
    )
    repo.add_equity_point(
        S + 23 * 3_600_000,
        "KRW-BTC",
        Decimal(48_000_000),
        Decimal(898_975),
        Decimal("0.002"),
        Decimal(994_975),
    )
    db.close()
    return url
