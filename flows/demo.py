"""`python -m flows.demo` (what `make demo` / `python -m trader demo` run): the whole product, locally.

1. a fresh var/demo/ (database) and var/reports/demo/ (report, charts, mail) on every run;
2. a local SMTP sink (aiosmtpd on 127.0.0.1) that stores what it receives as .eml files;
3. the Upbit simulator replaying data/KRW-ETH_15m_2024.parquet at full speed (it starts paused
   and is resumed the moment the trader's two WebSockets are connected, so no tick is missed);
4. the `trading` flow in paper mode over a bounded span of market time (`--days`, from `--start`),
   one `place-order` subflow per intent; the replay pauses while an order is in flight
   (flows/lockstep.py), so the fast market waits for our orders as the real one effectively does;
   limit orders time out in market time (the replayed trades' timestamps), as in the backtest,
   so the strategy file is used as it is, whatever the replay speed;
5. the `report` flow over everything traded ("all" period), e-mailed to the sink;
6. a summary table and where to look.

Prefect runs against a temporary local API server (ephemeral mode) whose database lives in
var/prefect/, so the first run pays its migration (~20 s) and later runs start in ~5–10 s;
no network access is needed. Set PREFECT_API_URL to run it against your own server (and see the
runs in its UI).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from deployments.env import OFFLINE_ENV, PROJECT_DIR

DEFAULT_STRATEGY = PROJECT_DIR / "trader/strategy/examples/demo.yaml"
DEFAULT_DATA = PROJECT_DIR / "data/KRW-ETH_15m_2024.parquet"
# trader/strategy/examples/demo.yaml is tuned so that these three weeks show entries and every
# kind of exit it declares
DEFAULT_START = "2024-01-01T09:00"  # KST, a trading-day boundary
DEFAULT_DAYS = 21.0
MAX_TRADING_S = 120.0  # wall-clock cap of the trading part, whatever the span
# While a limit order rests the replay slows to this many × real time. Its timeout is market
# time (the order manager reads the ticks' timestamps), so the pace no longer changes what
# `timeout_s` means; the slowdown is kept because following a resting order takes wall time
# (a place-order subflow starts in ~1–5 s, a cancel is a REST round trip): at speed max the
# whole three weeks replay meanwhile (measured: 1 decision instead of 12–14), and the market
# time a cancel takes would let the order fill after its deadline, unlike in the backtest.
RESTING_SPEED = 60.0
KST_OFFSET = timedelta(hours=9)


def _prepare_env(var: Path, smtp_port: int) -> None:
    """Offline Prefect with its home in var/prefect, and the trader pointed at var/demo + the sink."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("PREFECT_API_URL"):  # else: the user's own server (and its home)
        os.environ["PREFECT_HOME"] = str(var / "prefect")
        os.environ["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "true"
    os.environ.update(
        {
            "TRADER_VAR_DIR": str(var / "demo"),
            "TRADER_DATABASE_URL": f"sqlite:///{(var / 'demo' / 'trader.db').as_posix()}",
            "TRADER_SMTP_HOST": "127.0.0.1",
            "TRADER_SMTP_PORT": str(smtp_port),
            "TRADER_SMTP_MODE": "insecure",
            "TRADER_SMTP_TIMEOUT_S": "10",
            "TRADER_MAIL_FROM": "autotrader-demo@localhost",
            "TRADER_MAIL_TO": '["you@localhost"]',
        }
    )
    os.environ.pop("TRADER_SMTP_USER", None)
    os.environ.pop("TRADER_SMTP_PASSWORD", None)


def _resume_when_connected(control: Any, stop: threading.Event, clients: int = 2) -> None:
    """Resume the paused simulator once the trader's public and private sockets are connected."""
    while not stop.is_set():
        try:
            if int(control.state().get("ws_clients", 0)) >= clients:
                control.resume()
                return
        except Exception:  # the simulator answers once it is up; keep asking
            pass
        time.sleep(0.05)


def _kst_to_utc_iso(kst: str, plus_days: float = 0.0) -> str:
    dt = datetime.fromisoformat(kst) - KST_OFFSET + timedelta(days=plus_days)
    return dt.replace(tzinfo=None).isoformat(timespec="seconds")


def _won(value: object) -> str:
    """A KRW amount as a person reads it: thousands separators, no fraction of a won."""
    return f"{Decimal(str(value)):,.0f}"


def _exits_by_reason(db_url: str) -> str:
    """Fills per reason from the database (what actually executed, not what was decided)."""
    from collections import Counter

    from trader.storage.db import Database
    from trader.storage.repository import Repository

    with Database.open(db_url) as db:
        counts = Counter(f.reason or "?" for f in Repository(db).fills())
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) or "none"


def _ms_pair(summary: dict) -> str:
    p50, worst = summary.get("tick_to_order_ms_p50"), summary.get("tick_to_order_ms_max")
    return "–" if p50 is None else f"{p50:.1f} / {worst:.1f}"


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def run_demo(args: argparse.Namespace) -> int:
    var = (PROJECT_DIR / "var").resolve()
    reports = var / "reports" / "demo"
    for path in (var / "demo", reports):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    t0 = time.monotonic()

    from deployments.smtp_sink import SmtpSink

    with SmtpSink(save_dir=reports / "mail") as sink:
        _prepare_env(var, sink.port)
        # prefect is imported only now: its settings are read from the environment set above
        import asyncio

        from flows.report import report
        from flows.trading import trading
        from trader.reporting.periods import trading_day
        from trader.sim.server import SimulatorProcess

        until_utc = _kst_to_utc_iso(args.start, args.days)
        print(
            f"demo: simulator replaying {args.data.name} from {args.start} KST for {args.days:g} days",
            flush=True,
        )
        sim = SimulatorProcess(
            args=["--speed", args.speed, "--data", str(args.data), "--start", args.start, "--paused"]
        )
        sim.start()
        stop = threading.Event()
        resumer = threading.Thread(target=_resume_when_connected, args=(sim.control, stop), daemon=True)
        resumer.start()
        try:
            print("demo: trading flow (paper) …", flush=True)
            summary = asyncio.run(
                trading(
                    strategy_path=str(args.strategy),
                    paper=True,
                    sim_url=sim.base_url,
                    db_url=os.environ["TRADER_DATABASE_URL"],
                    until=until_utc,
                    max_runtime_s=args.max_trading_s,
                    status_every_s=5.0,
                    log_every_s=15.0,
                    shutdown_grace_s=10.0,
                    equity_every_s=3600.0,  # hourly points: plenty for the charts, 30× fewer writes
                    # the replay pauses while an order is in flight (the market waits for us)
                    sim_lockstep=True,
                    sim_resting_speed=RESTING_SPEED,
                    order_subflows=args.order_subflows,
                )
            )
        finally:
            stop.set()
            sim.stop()
        t_trade = time.monotonic() - t0
        last_ms = int(summary.get("last_tick_ts_ms") or 0)
        day = trading_day(last_ms) if last_ms else datetime.now(UTC).date()
        print(f"demo: report flow for everything up to trading day {day} …", flush=True)
        result = report(date=day.isoformat(), period="all", out_dir=str(reports), send=True)
        mails = sink.wait_for(1, timeout_s=15)
    elapsed = time.monotonic() - t0

    files = result["files"]
    rows = [
        ("market / mode", f"{summary['market']} / {summary['mode']}"),
        ("stopped because", str(summary["stop_reason"])),
        ("market time reached", datetime.fromtimestamp(last_ms / 1000, UTC).isoformat() if last_ms else "–"),
        ("ticks / decisions", f"{summary['ticks']:,} / {summary['decisions']}"),
        ("orders / fills / errors", f"{summary['orders']} / {summary['fills']} / {summary['errors']}"),
        ("fills by reason", _exits_by_reason(os.environ["TRADER_DATABASE_URL"])),
        ("realized P&L (KRW)", _won(summary["realized_pnl"])),
        ("fees (KRW)", _won(summary["fees"])),
        ("KRW / coin at the end", f"{_won(summary['krw'])} / {Decimal(summary['volume']).normalize():f}"),
        ("tick→order p50 / max (ms)", _ms_pair(summary)),
        ("report", result["subject"]),
        ("report HTML", files.get("html", "–")),
        ("charts", ", ".join(Path(p).name for k, p in files.items() if str(p).endswith(".png"))),
        ("e-mail received", f"{len(mails)} message(s) in {reports / 'mail'}"),
        ("time", f"{elapsed:.0f} s (trading part {t_trade:.0f} s)"),
    ]
    print("\nDemo finished\n" + _table(rows))
    print(
        "\nOpen the report:  xdg-open "
        + str(files.get("html", reports / "report.html"))
        + "\nSee the runs in Prefect's UI:  PREFECT_HOME=var/prefect .venv/bin/prefect server start "
        "--host 127.0.0.1 --port 4200   then http://127.0.0.1:4200"
    )
    return 0 if mails else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trader demo", description=__doc__.split("\n")[0])
    p.add_argument("--strategy", type=Path, default=DEFAULT_STRATEGY, help="strategy YAML")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="candles the simulator replays")
    p.add_argument("--start", default=DEFAULT_START, help="market time to start from (ISO, KST)")
    p.add_argument("--days", type=float, default=DEFAULT_DAYS, help="span of market time to trade")
    p.add_argument("--speed", default="max", help="simulator speed (× real time) or 'max'")
    p.add_argument(
        "--no-order-subflows",
        dest="order_subflows",
        action="store_false",
        help="confirm orders in the engine instead of one place-order subflow per intent",
    )
    p.add_argument("--max-trading-s", type=float, default=MAX_TRADING_S, help="wall-clock cap of trading")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_demo(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
