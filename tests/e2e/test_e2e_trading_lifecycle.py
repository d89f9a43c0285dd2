"""End to end: a paper trading run on a worker, stopped by the two ends a long run can meet.

1. *Cancelled from the UI*: the run trades on the simulator, then its state is set to
   Cancelling exactly as the UI's Cancel button does; the worker stops the process. The run
   must end Cancelled, the loop must shut down cleanly (no order left unresolved, strategy
   state saved on the way out) and no failure alert may be mailed: a cancel is not a failure.
2. *Killed under a live worker* (the OOM killer): the worker marks the run Crashed and its
   `on_crashed` hook mails; the crash automation's `notify-failure` must not mail it again.
3. *Killed with its worker*: the worker and the flow-run process get SIGKILL (a lost machine, the OOM killer),
   so nothing in the run lives to report it; the zombie automation (`deployments.setup
   --zombie-after-s`, shortened here) marks the run Crashed after its heartbeats stop, and the
   crash automation's `notify-failure` run mails an alert that names the run and says it crashed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.smtp_sink import SmtpSink
from tests.e2e.conftest import PrefectServer
from tests.e2e.prefect_api import (
    alive,
    cancel_as_the_ui_does,
    create_run,
    flow_run_pids,
    heartbeats,
    read_run,
    runs_of_deployment,
    state_type,
    wait_final,
    wait_for_notify_run,
    wait_state,
    wait_until,
)
from trader.config import SIM_SECRET_KEY
from trader.storage.db import Database
from trader.storage.repository import Repository

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

# Buys at once and holds (the stop is far away): one order, one fill, then a steady tick stream.
STRATEGY = """\
market: {market}
order_krw: 100000
entry: {{immediate: true}}
exits:
  stop_loss: 0.5
"""
TICKS_BEFORE_STOP = 30
# Prefect's least heartbeat period is 30 s (prefect.yaml sets it); the trigger service looks at
# proactive triggers every 5 s. 40 s keeps a margin for a slow heartbeat on a busy machine.
ZOMBIE_AFTER_S = 40
# A worker polls for new runs every 10 s by default; 2 s keeps the test short.
FAST_WORKER = {"PREFECT_WORKER_QUERY_SECONDS": "2", "UPBIT_SECRET_KEY": "e2e-not-a-real-secret-9f3a"}


def _strategy(tmp_path: Path, market: str) -> Path:
    path = tmp_path / "strategy.yaml"
    path.write_text(STRATEGY.format(market=market))
    return path


def _params(sim_url: str, strategy: Path, db_path: Path) -> dict[str, Any]:
    return {
        "strategy_path": str(strategy),
        "sim_url": sim_url,
        "db_url": f"sqlite:///{db_path}",
        "status_every_s": 2.0,
        "log_every_s": 1.0,  # the test reads the tick count from the run's log
        "shutdown_grace_s": 5.0,
        # no periodic equity saves: a strategy-state save after the cancel is the shutdown's
        "equity_every_s": 1e9,
    }


def _query(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the run's SQLite database as it is (read-only: never races the run's migrations)."""
    if not db_path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as con:
            return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # tables not created yet: the run is still starting
        return []


def _orders_and_fills(db_path: Path) -> tuple[list[tuple[Any, ...]], int]:
    orders = _query(db_path, "select identifier, state from orders")
    fills = _query(db_path, "select count(*) from fills")
    return orders, int(fills[0][0]) if fills else 0


def _strategy_state_ts(db_path: Path) -> int | None:
    rows = _query(db_path, "select max(updated_ts_ms) from strategy_state where name != 'engine'")
    return rows[0][0] if rows else None


def _text(msg: Any) -> str:
    """Subject and decoded plain-text body of a mail."""
    return f"{msg['Subject']}\n{msg.get_body(preferencelist=('plain', 'html')).get_content()}"


def _mails_about(sink: SmtpSink, before: int, run: dict[str, Any]) -> list[Any]:
    """Mails that arrived after the first `before` and name this run (by id or name)."""
    return [m for m in sink.messages[before:] if run["id"] in _text(m) or run["name"] in _text(m)]


def _start_trading(deployed: PrefectServer, sim: Any, tmp_path: Path) -> tuple[str, Path]:
    db_path = tmp_path / "paper.db"
    run_id = create_run(
        deployed.api_url, "trading/trading", _params(sim.base_url, _strategy(tmp_path, sim.market), db_path)
    )
    return run_id, db_path


def _ticks_logged(api: str, run_id: str) -> int:
    """The highest `ticks=N` of the run's status log lines (0 before the first)."""
    r = httpx.post(
        f"{api}/logs/filter",
        json={"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_DESC", "limit": 50},
        timeout=10,
    )
    r.raise_for_status()
    found = [int(m.group(1)) for log in r.json() if (m := re.search(r"\bticks=(\d+)", log["message"]))]
    return max(found, default=0)


def _wait_traded(api: str, run_id: str, db_path: Path, timeout_s: float = 120) -> None:
    """Running, bought (an order filled and recorded) and consuming ticks well after that."""
    wait_state(api, run_id, {"RUNNING"}, timeout_s)

    def traded() -> bool:
        orders, fills = _orders_and_fills(db_path)
        return bool(orders) and fills >= 1

    wait_until(traded, timeout_s, "the trading run to buy")
    wait_until(lambda: _ticks_logged(api, run_id) >= TICKS_BEFORE_STOP, timeout_s, "ticks after the buy")


def test_cancel_from_the_ui_stops_trading_cleanly_without_a_failure_alert(
    deployed: PrefectServer, smtp_sink: SmtpSink, worker_factory: Any, tmp_path: Path
) -> None:
    from trader.sim.server import SimulatorThread

    api = deployed.api_url
    notify_before = {r["id"] for r in runs_of_deployment(api, "notify-failure/notify-failure")}
    with SimulatorThread(speed=300.0) as sim:
        run_id, db_path = _start_trading(deployed, sim, tmp_path)
        worker = worker_factory(log_name="worker-cancel.log", env=FAST_WORKER)
        _wait_traded(api, run_id, db_path)
        pids = flow_run_pids(worker.pid, run_id)
        assert pids, "no process of the worker runs the flow"
        mails_before = len(smtp_sink.messages)
        cancel_ms = int(time.time() * 1000)
        cancel_as_the_ui_does(api, run_id)
        t0 = time.monotonic()
        run = wait_final(api, run_id, 60)
        took = time.monotonic() - t0
        wait_until(lambda: not any(alive(p) for p in pids), 30, "the flow-run process to exit")
    assert state_type(run) == "CANCELLED", run["state"]
    assert took < 45, f"cancel took {took:.0f} s"

    orders, fills = _orders_and_fills(db_path)
    assert orders and fills >= 1
    db = Database.open(f"sqlite:///{db_path}")
    try:
        unresolved = Repository(db).unresolved_orders()
    finally:
        db.close()
    assert unresolved == [], [(o.identifier, o.state) for o in unresolved]
    saved = _strategy_state_ts(db_path)
    assert saved is not None and saved >= cancel_ms, "the strategy state was not saved on the way out"

    # a cancel is not a failure: no alert from the hooks, and no crash automation run
    time.sleep(8)  # an alert would be sent by the hook at once, by the automation within seconds
    assert _mails_about(smtp_sink, mails_before, run) == [], [
        m["Subject"] for m in smtp_sink.messages[mails_before:]
    ]
    notify_after = [
        r for r in runs_of_deployment(api, "notify-failure/notify-failure") if r["id"] not in notify_before
    ]
    assert notify_after == [], [r["parameters"] for r in notify_after]


def test_a_run_killed_under_a_live_worker_is_marked_crashed_and_mailed_once(
    deployed: PrefectServer, smtp_sink: SmtpSink, worker_factory: Any, tmp_path: Path
) -> None:
    """kill -9 of the flow's process only (the OOM killer): the worker sees it exit, marks the
    run Crashed and runs its `on_crashed` hook, which mails; the crash automation's
    notify-failure then finds the run tagged `alert-mailed` and sends nothing more."""
    from trader.sim.server import SimulatorThread

    api = deployed.api_url
    with SimulatorThread(speed=300.0) as sim:
        run_id, db_path = _start_trading(deployed, sim, tmp_path)
        worker = worker_factory(log_name="worker-oom.log", env=FAST_WORKER)
        _wait_traded(api, run_id, db_path)
        pids = flow_run_pids(worker.pid, run_id)
        assert pids, "no process of the worker runs the flow"
        mails_before = len(smtp_sink.messages)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        run = wait_final(api, run_id, 30)
        assert state_type(run) == "CRASHED", run["state"]
        assert "SIGKILL" in run["state"]["message"], run["state"]
        notify = wait_for_notify_run(api, run_id)
        assert state_type(wait_final(api, str(notify[0]["id"]), 120)) == "COMPLETED"
    mails = _mails_about(smtp_sink, mails_before, run)
    assert len(mails) == 1, [m["Subject"] for m in mails]
    subject, text = str(mails[0]["Subject"]), _text(mails[0])
    assert "trading" in subject and "RunCrashed" in subject, subject
    assert "Crashed" in text and "SIGKILL" in text, text
    assert "alert-mailed" in read_run(api, run_id)["tags"]


@pytest.fixture
def short_zombie_threshold(deployed: PrefectServer) -> Iterator[int]:
    """The zombie automation with a 40 s threshold for one test, then the default again."""
    deployed.run("deployments.setup", "--no-deploy", "--zombie-after-s", str(ZOMBIE_AFTER_S))
    try:
        yield ZOMBIE_AFTER_S
    finally:
        deployed.run("deployments.setup", "--no-deploy")


def test_a_killed_run_is_marked_crashed_by_the_heartbeat_automation_and_mailed(
    deployed: PrefectServer,
    smtp_sink: SmtpSink,
    worker_factory: Any,
    tmp_path: Path,
    short_zombie_threshold: int,
) -> None:
    from trader.sim.server import SimulatorThread

    api = deployed.api_url
    with SimulatorThread(speed=300.0) as sim:
        run_id, db_path = _start_trading(deployed, sim, tmp_path)
        worker = worker_factory(log_name="worker-killed.log", env=FAST_WORKER)
        _wait_traded(api, run_id, db_path)
        # the zombie trigger starts counting at a heartbeat: wait for the first one to arrive
        wait_until(lambda: heartbeats(api, run_id), 60, "a heartbeat of the trading run")
        pids = flow_run_pids(worker.pid, run_id)
        assert pids, "no process of the worker runs the flow"
        mails_before = len(smtp_sink.messages)
        # a lost machine: the worker dies first, so nobody is left to report the run
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: not any(alive(p) for p in pids), 10, "the flow-run process to die")
        assert state_type(read_run(api, run_id)) == "RUNNING"  # nobody told the server

        # last heartbeat + threshold + up to one 5 s evaluation period, with room for a busy CI
        run = wait_state(
            api, run_id, {"CRASHED", "FAILED", "CANCELLED", "COMPLETED"}, short_zombie_threshold + 45
        )
    took = time.monotonic() - killed
    assert state_type(run) == "CRASHED", run["state"]
    assert "heartbeat" in (run["state"]["message"] or ""), run["state"]

    # the crash automation starts notify-failure; a new worker (the machine is back) runs it
    notify = wait_for_notify_run(api, run_id)
    worker_factory(run_once=True, log_name="worker-notify-killed.log", env=FAST_WORKER)
    assert state_type(wait_final(api, str(notify[0]["id"]), 120)) == "COMPLETED"
    mails = wait_until(lambda: _mails_about(smtp_sink, mails_before, run), 30, "the crash alert mail")
    assert len(mails) == 1, [m["Subject"] for m in mails]
    mail = mails[0]
    subject, body = str(mail["Subject"]), _text(mail)
    assert "trading" in subject and "RunCrashed" in subject, subject
    assert run_id in body and run["name"] in body, body
    assert "Crashed" in body and "heartbeat" in body, body
    whole = mail.as_string() + body
    for secret in (SIM_SECRET_KEY, FAST_WORKER["UPBIT_SECRET_KEY"]):
        assert secret not in whole
    print(f"killed → Crashed in {took:.0f} s")
