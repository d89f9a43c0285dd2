"""One trader per account and database (issue 15, item 1), and a market the exchange does not list
(item 4), with real `python -m trader run --paper --sim-url URL --db URL` processes over loopback.

A second trader on the same database and account is refused with exit code 2 and a message naming
the holder (pid, host, since); the first trades on unharmed (its recorded fills are exactly the
simulator's trades); the guard is free again once the first exits, or is killed with SIGKILL.
The same on PostgreSQL (an advisory lock), where the guard lives on the server.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trader.storage.db import Database
from trader.storage.repository import Repository
from trader.upbit.rest import UpbitRestClient

REPO_ROOT = Path(__file__).resolve().parents[3]
STRATEGY = """\
market: {market}
order_krw: 100000
entry: {{immediate: true}}
exits:
  take_profit: [{{gain: 0.003, sell: 1.0}}]
  stop_loss: 0.003
"""
HOLDER = re.compile(
    r"another trader holds this account and database: pid (\d+) on (\S+) since "
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST"
)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADER_", "UPBIT_"))}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO_ROOT), TRADER_VAR_DIR=str(tmp_path / "var"))
    return env


def _trader(
    tmp_path: Path, sim: Any, db_url: str, *extra: str, market: str | None = None
) -> subprocess.Popen[str]:
    strategy = tmp_path / "s.yaml"
    strategy.write_text(STRATEGY.format(market=market or sim.market))
    return subprocess.Popen(
        [sys.executable, "-m", "trader", "run", "--paper", "--sim-url", sim.base_url, "--db", db_url,
         "--strategy", str(strategy), *extra],
        cwd=tmp_path, env=_env(tmp_path), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_trading(proc: subprocess.Popen[str], market: str, timeout_s: float = 60.0) -> list[str]:
    """Lines of stdout until the run announces it trades (the guard is held by then)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(f"trading {market} (paper)"):
            return lines
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError("the run did not start:\n" + "".join(lines) + out + err[-3000:])


def _finish(proc: subprocess.Popen[str], timeout_s: float = 90.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


async def _exchange_trades(sim: Any) -> set[tuple[str, str, Any, Any]]:
    async with UpbitRestClient(sim.access_key, sim.secret_key, sim.base_url) as rest:
        closed = await rest.closed_orders(sim.market)
        detailed = [await rest.get_order(uuid=o.uuid) for o in closed]
    return {(t.trade_uuid, t.side, t.price, t.volume) for o in detailed for t in o.trades}


def _db_trades(db_url: str) -> set[tuple[str, str, Any, Any]]:
    db = Database.open(db_url)
    try:
        fills = Repository(db).fills()
        assert len(fills) == len({f.trade_uuid for f in fills})  # nothing doubled
        return {(f.trade_uuid, f.side, f.price, f.volume) for f in fills}
    finally:
        db.close()


def _second_refused(tmp_path: Path, sim: Any, db_url: str, holder_pid: int) -> None:
    rc, out, err = _finish(_trader(tmp_path, sim, db_url, "--max-runtime-s", "30"), 60)
    assert rc == 2, out + err[-3000:]
    m = HOLDER.search(err)
    assert m, err[-3000:]
    assert int(m.group(1)) == holder_pid and m.group(2) == socket.gethostname().split(".")[0]
    assert "Traceback" not in err
    assert "stopped (" not in out  # it never traded


def _two_traders(tmp_path: Path, make_sim: Any, db_url: str) -> None:
    sim = make_sim(speed=3000.0, paused=False, krw=1_000_000, start="2024-01-02T09:00")
    first = _trader(tmp_path, sim, db_url, "--max-runtime-s", "12")
    _wait_trading(first, sim.market)
    _second_refused(tmp_path, sim, db_url, first.pid)
    rc, out, err = _finish(first)
    assert rc == 0, out + err[-3000:]
    sim.control.pause()  # nothing moves while the books are compared
    exchange = asyncio.run(_exchange_trades(sim))
    assert exchange, "the first trader made no trades: the test would prove nothing"
    assert _db_trades(db_url) == exchange  # the first is unharmed: its fills are the exchange's

    # free again after a clean exit ...
    again = _trader(tmp_path, sim, db_url, "--max-runtime-s", "30")
    _wait_trading(again, sim.market)
    # ... and after SIGKILL (the kernel / the server drop the lock with the process)
    again.send_signal(signal.SIGKILL)
    _finish(again)
    third = _trader(tmp_path, sim, db_url, "--max-runtime-s", "1")
    _wait_trading(third, sim.market)
    rc, out, err = _finish(third)
    assert "another trader holds" not in err
    assert rc in (0, 3), out + err[-3000:]  # 3: the killed run may have left an order to reconcile


@pytest.fixture
def pg_schema_url(pg_url: str) -> Any:
    """A URL whose search_path is a fresh schema of the test database, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    schema = f"t_guard_{uuid.uuid4().hex[:16]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_a_second_trader_on_one_sqlite_database_is_refused_and_the_first_is_unharmed(
    tmp_path: Path, make_sim: Any
) -> None:
    _two_traders(tmp_path, make_sim, f"sqlite:///{tmp_path / 'paper.db'}")


@pytest.mark.postgres
def test_a_second_trader_on_one_postgres_database_is_refused_and_the_first_is_unharmed(
    tmp_path: Path, make_sim: Any, pg_schema_url: str
) -> None:
    _two_traders(tmp_path, make_sim, pg_schema_url)


def test_a_market_the_exchange_does_not_list_is_refused_at_start(tmp_path: Path, make_sim: Any) -> None:
    sim = make_sim()  # replays KRW-ETH
    assert sim.market == "KRW-ETH"
    rc, out, err = _finish(_trader(tmp_path, sim, f"sqlite:///{tmp_path / 'p.db'}", "--max-runtime-s", "20",
                                   market="KRW-BTC"), 60)
    assert rc == 2, out + err[-3000:]
    assert f"error: KRW-BTC is not listed by the exchange at {sim.base_url} (it lists KRW-ETH)" in err
    assert "Traceback" not in err


class _Listing:
    def __init__(self, rows: Any) -> None:
        self.rows = rows

    async def markets(self) -> Any:
        if isinstance(self.rows, BaseException):
            raise self.rows
        return self.rows


async def test_the_listing_check_names_a_few_listed_markets_and_lets_an_unreachable_exchange_pass() -> None:
    from trader.compose import ComposeError, check_listed
    from trader.upbit.errors import RetryableError

    rows = [{"market": f"KRW-C{i:02d}"} for i in range(12)] + [{"market": "BTC-ETH"}]
    with pytest.raises(ComposeError) as exc:
        await check_listed(_Listing(rows), "KRW-BTC", "http://x", lambda m: None)
    assert str(exc.value) == ("KRW-BTC is not listed by the exchange at http://x (it lists "
                              + ", ".join(f"KRW-C{i:02d}" for i in range(10)) + " and 2 more)")
    await check_listed(_Listing(rows), "BTC-ETH", "http://x", lambda m: None)  # listed: no error
    warnings: list[str] = []
    await check_listed(_Listing(RetryableError(0, "network_error", "ConnectError")), "KRW-BTC", "http://x",
                       warnings.append)
    assert warnings == ["could not check that KRW-BTC is listed at http://x: 0 network_error: ConnectError"]
