"""The loop-thread order journal: same row as Repository.record_order, never waits for the write
lock (falls back to the worker thread), and a recorded order survives kill -9 of the process."""

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import asdict
from decimal import Decimal as D
from pathlib import Path

from tests.unit.execution.fakes import FakeExchange
from trader.domain import Intent, IntentKind
from trader.execution.order_manager import OrderManager
from trader.portfolio import Portfolio
from trader.storage.db import Database
from trader.storage.repository import OrderJournal, Repository

REPO_ROOT = Path(__file__).resolve().parents[3]
ARGS = ("KRW-BTC", "bid", "limit", D("5000000"), D("0.00100000"), None, "entry", 1234)


def open_repo(path: Path) -> tuple[Database, Repository]:
    db = Database.open(f"sqlite:///{path}")
    return db, Repository(db)


def test_journal_row_equals_repository_row_and_is_idempotent(tmp_path):
    db, repo = open_repo(tmp_path / "j.db")
    journal = repo.order_journal()
    assert journal is not None and journal.synchronous == "NORMAL"
    assert journal.record("at-j", "i1", *ARGS) is True
    assert journal.record("at-j", "i1", *ARGS) is False  # already recorded
    assert repo.record_order("at-j", "i1", *ARGS) is False  # the repository sees it too
    assert repo.record_order("at-r", "i1", *ARGS) is True
    a, b = repo.order("at-j"), repo.order("at-r")
    assert a is not None and b is not None
    strip = lambda row: {k: v for k, v in asdict(row).items() if k not in ("id", "identifier")}  # noqa: E731
    assert strip(a) == strip(b)
    raw = sqlite3.connect(tmp_path / "j.db")
    cols = (
        "uuid, intent_id, market, side, ord_type, price, volume, krw_amount, state, reason,"
        " executed_volume, paid_fee, avg_price, error, created_ts_ms, updated_ts_ms"
    )
    rows = raw.execute(f"SELECT {cols} FROM orders ORDER BY id").fetchall()
    raw.close()
    assert rows[0] == rows[1]  # byte for byte the same stored text
    assert a.state == "recorded" and a.price == D("5000000") and a.volume == D("0.001")
    assert [o.identifier for o in repo.unresolved_orders()] == ["at-j", "at-r"]
    journal.close()
    assert journal.record("at-x", "i1", *ARGS) is None  # closed: the caller falls back
    db.close()


def test_journal_never_waits_for_a_held_write_lock(tmp_path):
    db, repo = open_repo(tmp_path / "j.db")
    journal = repo.order_journal()
    assert journal is not None
    other = sqlite3.connect(tmp_path / "j.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    assert journal.record("at-busy", "i1", *ARGS) is None
    other.execute("COMMIT")
    assert journal.record("at-busy", "i1", *ARGS) is True
    other.close()
    journal.close()
    db.close()


def test_no_journal_for_an_in_memory_database():
    db = Database.open("sqlite://")
    assert Repository(db).order_journal() is None
    db.close()


class CheckingExchange(FakeExchange):
    """Asserts through the repository (another connection) that the order is stored first."""

    repo: Repository

    async def create_order(self, market, side, ord_type, *, identifier, **kw):
        row = await asyncio.to_thread(self.repo.order, identifier)
        assert row is not None, "order sent before it was recorded"
        return await super().create_order(market, side, ord_type, identifier=identifier, **kw)


def manager(repo: Repository, **kw) -> tuple[CheckingExchange, OrderManager]:
    ex = CheckingExchange(D("1000000"), D("5000000"))
    ex.repo = repo
    return ex, OrderManager(ex, repo, Portfolio(D("1000000")), namespace="t", market_poll_s=0.001, **kw)


def buy(iid: str) -> Intent:
    return Intent("KRW-BTC", IntentKind.BUY, "entry", 1, iid, krw=D("100000"))


async def test_order_manager_records_on_the_journal_and_falls_back_when_the_lock_is_held(tmp_path):
    db, repo = open_repo(tmp_path / "om.db")
    _ex, om = manager(repo)
    order = await om.submit_intent_fast(buy("b1"))
    assert order.record_path == "journal"
    assert (await om.confirm(order)).status == "filled"
    # another writer holds the lock when the next order is recorded: the loop must not block on
    # it; the worker-thread path waits for the lock instead, and the order is still stored first
    other = sqlite3.connect(tmp_path / "om.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.2, lambda: other.execute("COMMIT"))
    timer.start()
    order2 = await om.submit_intent_fast(buy("b2"))
    timer.join()
    other.close()
    assert order2.record_path == "thread"
    assert (await om.confirm(order2)).status == "filled"
    assert [o.state for o in repo.orders()] == ["done", "done"]
    om.close()
    db.close()


async def test_a_short_lock_hold_is_waited_out_on_the_loop_not_in_a_worker_thread(tmp_path):
    db, repo = open_repo(tmp_path / "short.db")
    _ex, om = manager(repo)
    other = sqlite3.connect(tmp_path / "short.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def ticker() -> None:  # the loop keeps running while the order waits for the lock
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    spinner = asyncio.create_task(ticker())
    timer = threading.Timer(0.005, lambda: other.execute("COMMIT"))
    timer.start()
    order = await om.submit_intent_fast(buy("b1"))
    timer.join()
    spinner.cancel()
    other.close()
    assert order.record_path == "journal" and ticks > 1
    assert repo.order(order.identifier) is not None
    om.close()
    db.close()


async def test_fast_record_off_uses_the_repository(tmp_path):
    db, repo = open_repo(tmp_path / "off.db")
    _ex, om = manager(repo, fast_record=False)
    order = await om.submit_intent_fast(buy("b1"))
    assert order.record_path == "thread"
    om.close()
    db.close()


KILL_SCRIPT = """
import os, signal, sys
from dataclasses import asdict
from decimal import Decimal as D
from trader.storage.db import Database
from trader.storage.repository import Repository
journal = Repository(Database.open("sqlite:///" + sys.argv[1])).order_journal()
args = ("KRW-BTC", "ask", "market", None, D("0.5"), None, "stop_loss", 1)
assert journal.record("at-kill", "i1", *args) is True
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_journal_record_survives_kill_9_of_the_process(tmp_path):
    path = tmp_path / "kill.db"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(path)], cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    db, repo = open_repo(path)
    row = repo.order("at-kill")
    assert row is not None and row.state == "recorded" and row.volume == D("0.5")
    db.close()
    assert isinstance(OrderJournal, type) and os.path.exists(path)
