"""Record-before-send: every order is in the database before its request goes out.

The fast path is one INSERT on the repository's loop-thread journal (a dedicated SQLite
connection whose WAL commit survives kill -9), never waiting for the write lock: when another
writer holds it for a commit (~1–5 ms with an fsync) the loop polls it (and keeps serving ticks)
for up to `JOURNAL_WAIT_S` rather than block a worker thread in SQLite's busy handler, whose
sleeps grow 1, 2, 5, 10, 15… ms. Otherwise — no journal (PostgreSQL, fakes), or still busy —
`repo.record_order` runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from trader.execution.ports import OrderJournalPort, RepositoryPort

log = logging.getLogger("trader.execution")

JOURNAL_WAIT_S = 0.05  # how long the loop polls a busy write lock before the worker-thread path
JOURNAL_POLL_S = 0.0005


class OrderRecorder:
    """Records orders before they are sent; `record` answers which path took it."""

    def __init__(self, repo: RepositoryPort, *, fast: bool = True) -> None:
        self.repo = repo
        self.fast = fast
        self._journal: OrderJournalPort | None = None
        self._tried = not fast

    async def record(self, args: tuple[Any, ...]) -> str:
        """`args` are `RepositoryPort.record_order`'s; returns "journal" or "thread"."""
        if await self._journal_record(args) is not None:
            return "journal"
        await asyncio.to_thread(self.repo.record_order, *args)
        return "thread"

    async def _journal_record(self, args: tuple[Any, ...]) -> bool | None:
        journal = self._open()
        if journal is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + JOURNAL_WAIT_S
        while True:
            recorded = journal.record(*args)
            if recorded is not None or loop.time() >= deadline:
                return recorded
            await asyncio.sleep(JOURNAL_POLL_S)

    def _open(self) -> OrderJournalPort | None:
        """The repository's loop-thread journal (opened once), or None."""
        if not self._tried:
            self._tried = True
            try:
                self._journal = self.repo.order_journal()
            except Exception as exc:  # the worker-thread path always works
                log.warning("order journal unavailable (%s): recording via worker thread", exc)
        return self._journal

    def close(self) -> None:
        """Release the journal's connection (it is reopened if the recorder is used again)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._tried = not self.fast
