"""`python -m flows.demo` (what `make demo` / `python -m trader demo` run): the whole product, locally.

1. a fresh var/demo/ (database) and var/reports/demo/ (report, charts, mail) on every run;
2. a local SMTP sink (aiosmtpd on 127.0.0.1) that stores what it receives as .eml files;
3. the Upbit simulator replaying the window [--start, --start + --days) of
   data/KRW-ETH_15m_2024.parquet — cut as `backtest --from/--to` cuts it, with the backtest's
   initial KRW, seed and trades per candle — in lockstep: it applies one trade, then waits until
   the loop has handled it and settled its orders (trader/compose.py builds the run);
4. the `trading` flow in paper mode until the replay ends, confirming orders inside the loop
   (`--order-subflows`: one `place-order` subflow per order instead). Every order meets the market
   as of the trade that decided it, as in the backtest, so the run's fills — and the
   `fingerprint` printed — are the backtest's:
   `python -m trader backtest --strategy S --data D --from START --to END` prints the same one.
   `--free-running` replays at `--speed` (default max) without lockstep instead: the market moves
   on while an order is on its way, and fills no longer match a backtest (a warning says so);
5. the `report` flow over everything traded ("all" period, up to the window's end), e-mailed to
   the sink; the summary, the artifact and the report read the same ledger for the same window;
6. a summary table (saying when a position is still open at the window's end) and where to look;
   the figures are also written to var/reports/demo/summary.json (bench/demo.py reads them).

Prefect runs against a temporary local API server (ephemeral mode) whose database lives in
var/prefect/, so the first run pays its migration (~20 s) and later runs start in ~5–10 s;
no network access is needed. Set PREFECT_API_URL to run it against your own server (and see the
runs in its UI).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timedelta
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
# the backtest's defaults (trader/backtest/cli.py): the demo must replay the trades it sees
INITIAL_KRW = Decimal(10_000_000)
SEED = 0
MAX_TRADING_S = 120.0  # wall-clock cap of the trading part, whatever the span


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


def window_end(start: str, days: float) -> str:
    """The window's exclusive end, `days` after `start`, in the same notation (KST unless `start`
    carries an offset)."""
    end = datetime.fromisoformat(start) + timedelta(days=days)
    return end.isoformat(timespec="minutes") if not (end.second or end.microsecond) else end.isoformat()


def _kst(ts_ms: int) -> str:
    from trader.compose import KST
    from trader.timeutil import ms_to_datetime

    return ms_to_datetime(ts_ms).astimezone(KST).strftime("%Y-%m-%d %H:%M:%S KST")


def _won(value: object) -> str:
    """A KRW amount as a person reads it: thousands separators, no fraction of a won."""
    return f"{Decimal(str(value)):,.0f}"


def _ledger(db_url: str, market: str) -> dict[str, Any]:
    """What executed, from the run's database: fills per reason and the round trips (the one
    metrics module, as the backtest and the report count them)."""
    from collections import Counter

    from trader.metrics import round_trips
    from trader.storage.db import Database
    from trader.storage.repository import Repository

    with Database.open(db_url) as db:
        fills = Repository(db).fills(market=market)
    trips = round_trips(fills, market=market)
    counts = Counter(f.reason or "?" for f in fills)
    open_trip = next((t for t in trips if not t.closed), None)
    return {
        "by_reason": ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) or "none",
        "closed_trips": sum(t.closed for t in trips),
        "open_since_ms": open_trip.entry_ts if open_trip else None,
    }


def _ms_pair(summary: dict) -> str:
    p50, worst = summary.get("tick_to_order_ms_p50"), summary.get("tick_to_order_ms_max")
    return "–" if p50 is None else f"{p50:.1f} / {worst:.1f}"


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def _holding(summary: dict, ledger: dict, end: str) -> str:
    volume = Decimal(summary["volume"])
    if not volume:
        return f"none at the window's end ({end} KST)"
    coin = summary["market"].split("-")[1]
    price = summary.get("last_price")
    value = f", worth {_won(volume * Decimal(str(price)))} KRW at {_won(price)}" if price else ""
    since = f", open since {_kst(ledger['open_since_ms'])}" if ledger["open_since_ms"] else ""
    return f"OPEN at the window's end: {volume.normalize():f} {coin}{value}{since}"


def window_sim(strategy: Path, data: Path, start: str, days: float, *, lockstep: bool = True,
               speed: str | None = None) -> Any:
    """The demo's simulator: the window [start, start + days) of `data` with the backtest's
    initial KRW, seed and trades per candle, in lockstep (or free-running, at speed max by default)."""
    from trader.backtest.runner import TICKS_PER_CANDLE
    from trader.compose import PaperSim
    from trader.strategy.config import load_strategy

    market = load_strategy(strategy).market
    return PaperSim(market=market, data=data, start=start, end=window_end(start, days), lockstep=lockstep,
                    speed=speed or "max", seed=SEED, ticks_per_candle=TICKS_PER_CANDLE, krw=INITIAL_KRW,
                    paused=not lockstep)  # free-running: resumed once the loop is subscribed


def trade(opts: Any, strategy: Path, db_url: str, workdir: Path, *, order_subflows: bool = False,
          max_trading_s: float = MAX_TRADING_S) -> tuple[dict[str, Any], float]:
    """The demo's trading part: start the simulator for `opts`, run the `trading` flow on it until
    the replay ends; (the flow's summary, wall seconds)."""
    import asyncio

    from flows.trading import trading
    from trader.compose import start_simulator

    t0 = time.monotonic()
    sim = start_simulator(opts, workdir)
    try:
        summary = asyncio.run(
            trading(
                strategy_path=str(strategy),
                paper=True,
                sim_url=sim.base_url,
                db_url=db_url,
                max_runtime_s=max_trading_s,  # the replay's end stops it long before
                status_every_s=5.0,
                log_every_s=15.0,
                shutdown_grace_s=10.0,
                equity_every_s=3600.0,  # hourly points: plenty for the charts, 30× fewer writes
                order_subflows=order_subflows,
                lockstep=opts.lockstep,
                resume_sim=opts.paused,
            )
        )
    finally:
        sim.stop()
    return summary, time.monotonic() - t0


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
        from flows.report import report
        from trader.compose import FREE_RUNNING_WARNING
        from trader.reporting.periods import trading_day

        opts = window_sim(args.strategy, args.data, args.start, args.days, lockstep=not args.free_running,
                          speed=args.speed)
        lockstep, end = opts.lockstep, str(opts.end)
        mode = "lockstep: the backtest's fills" if lockstep else f"free-running at speed {opts.replay_speed}"
        print(f"demo: simulator replaying {args.data.name} {args.start} → {end} KST ({mode})", flush=True)
        if opts.free_running_at_max:
            print(f"demo: warning: {FREE_RUNNING_WARNING}", flush=True)
        print("demo: trading flow (paper) …", flush=True)
        summary, t_trade = trade(opts, args.strategy, os.environ["TRADER_DATABASE_URL"], var / "demo",
                                 order_subflows=args.order_subflows, max_trading_s=args.max_trading_s)
        last_ms = int(summary.get("last_tick_ts_ms") or 0)
        day = trading_day(last_ms) if last_ms else datetime.fromisoformat(end).date()
        print(f"demo: report flow for everything up to trading day {day} …", flush=True)
        result = report(date=day.isoformat(), period="all", out_dir=str(reports), send=True)
        mails = sink.wait_for(1, timeout_s=15)
    elapsed = time.monotonic() - t0

    ledger = _ledger(os.environ["TRADER_DATABASE_URL"], summary["market"])
    files = result["files"]
    open_note = " (+1 open)" if ledger["open_since_ms"] else ""
    rate = summary["ticks"] / t_trade if t_trade > 0 else 0.0
    rows = [
        ("market / mode", f"{summary['market']} / {summary['mode']}, {mode}"),
        ("window", f"{args.start} → {end} KST"),
        ("stopped because", str(summary["stop_reason"])),
        ("market time reached", _kst(last_ms) if last_ms else "–"),
        ("ticks / decisions", f"{summary['ticks']:,} / {summary['decisions']}"),
        ("orders / fills / errors", f"{summary['orders']} / {summary['fills']} / {summary['errors']}"),
        ("fills by reason", ledger["by_reason"]),
        ("round trips", f"{ledger['closed_trips']}{open_note}"),
        ("realized P&L (KRW)", _won(summary["realized_pnl"])),
        ("fees (KRW)", _won(summary["fees"])),
        ("KRW at the end", _won(summary["krw"])),
        ("position", _holding(summary, ledger, end)),
        ("tick→order p50 / max (ms)", _ms_pair(summary)),
        ("report", result["subject"]),
        ("report HTML", files.get("html", "–")),
        ("charts", ", ".join(Path(p).name for k, p in files.items() if str(p).endswith(".png"))),
        ("e-mail received", f"{len(mails)} message(s) in {reports / 'mail'}"),
        ("time", f"{elapsed:.0f} s (trading part {t_trade:.1f} s, {rate:,.0f} trades/s)"),
    ]
    print("\nDemo finished\n" + _table(rows))
    check = (
        f"python -m trader backtest --strategy {_rel(args.strategy)} --data {_rel(args.data)} "
        f"--from {args.start} --to {end}"
    )
    print(f"\nfingerprint {summary['fingerprint']}")
    if lockstep:
        print(f"  the same as the backtest's:  {check}")
    print(
        "\nOpen the report:  xdg-open "
        + str(files.get("html", reports / "report.html"))
        + "\nSee the runs in Prefect's UI:  PREFECT_HOME=var/prefect .venv/bin/prefect server start "
        "--host 127.0.0.1 --port 4200   then http://127.0.0.1:4200"
    )
    figures = {
        "fingerprint": summary["fingerprint"], "lockstep": lockstep, "ticks": summary["ticks"],
        "fills": summary["fills"], "trading_s": t_trade, "trades_per_s": rate, "total_s": elapsed,
        "window": [args.start, end], "position_open": bool(Decimal(summary["volume"])), "mails": len(mails),
    }
    (reports / "summary.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0 if mails else 1


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(PROJECT_DIR)) if path.is_relative_to(PROJECT_DIR) else str(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trader demo", description=__doc__.split("\n")[0])
    p.add_argument("--strategy", type=Path, default=DEFAULT_STRATEGY, help="strategy YAML")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="candles the simulator replays")
    p.add_argument("--start", default=DEFAULT_START, help="market time to start from (ISO, KST)")
    p.add_argument("--days", type=float, default=DEFAULT_DAYS, help="span of market time to trade")
    p.add_argument(
        "--free-running",
        action="store_true",
        help="replay at --speed without lockstep (fills then differ from the backtest's)",
    )
    p.add_argument("--speed", help="simulator speed (× real time) or 'max' (default: max)")
    p.add_argument(
        "--order-subflows",
        action="store_true",
        help="confirm each order in a place-order subflow (one flow run per order) instead of the loop",
    )
    p.add_argument("--max-trading-s", type=float, default=MAX_TRADING_S, help="wall-clock cap of trading")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_demo(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
