"""`python -m trader backtest`: replay a strategy over recorded candles or ticks and report."""

from __future__ import annotations

import argparse
import sys

from trader import cli_types as t

DESCRIPTION = """Backtest a strategy YAML over candles (pyupbit CSV, Upbit REST layout, parquet) or
trade ticks (CSV timestamp,price,volume). Candles become trades exactly as the simulator's feed
makes them; orders fill by the simulator's matching and fee rules; dates are KST."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("backtest", help="replay a strategy over recorded market data",
                              description=DESCRIPTION)
    p.add_argument("--strategy", metavar="FILE", help="strategy YAML (one market)")
    p.add_argument("--data", metavar="FILE", help="candles or ticks (.csv/.parquet)")
    p.add_argument("--portfolio", metavar="FILE",
                   help="portfolio YAML (several markets, one balance, its risk rules); with --data-dir")
    p.add_argument("--data-dir", type=t.existing_dir, metavar="DIR",
                   help="with --portfolio: one candle file per market, named after it (KRW-XRP_day.parquet)")
    p.add_argument("--from", dest="start", type=t.kst_time, metavar="DATE",
                   help="first day/time (KST), e.g. 2024-03-01")
    p.add_argument("--to", dest="end", type=t.kst_time, metavar="DATE", help="end (exclusive, KST)")
    p.add_argument("--krw", type=t.krw, default="10000000", help="starting KRW (default 10,000,000)")
    p.add_argument("--json", type=t.out_file, metavar="OUT",
                   help="write summary, trades, fills and equity as JSON ('-' = stdout)")
    p.add_argument("--trades", type=t.out_file, metavar="OUT.csv", help="write every fill as CSV")
    p.add_argument("--equity", type=t.out_file, metavar="OUT.csv",
                   help="write the equity curve (per candle) as CSV")
    p.add_argument("--seed", type=t.seed, default=0, help="trade-synthesis and book seed (default 0)")
    p.add_argument("--ticks-per-candle", type=t.ticks_per_candle, default=None,
                   help="trades synthesized per candle (default: the simulator's, 8)")
    p.add_argument("--no-skip", action="store_true",
                   help="feed every trade through the engine (slower; results are identical)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trader.backtest.api import run_backtest
    from trader.backtest.report import render_table, render_trips
    from trader.backtest.runner import TICKS_PER_CANDLE, progress_bar
    from trader.marketdata.candles import MarketDataError
    from trader.strategy.config import StrategyConfigError

    krw = args.krw  # a Decimal > 0 (cli_types.krw)
    tpc = args.ticks_per_candle or TICKS_PER_CANDLE
    if args.portfolio or args.data_dir:
        return _run_portfolio(args, krw, tpc)
    if not args.strategy or not args.data:
        print("error: give --strategy FILE and --data FILE (or --portfolio FILE and --data-dir DIR)",
              file=sys.stderr)
        return 2
    try:
        result = run_backtest(args.strategy, args.data, start=args.start, end=args.end, krw=krw,
                              seed=args.seed, ticks_per_candle=tpc, skip=not args.no_skip,
                              progress=progress_bar())
    except (StrategyConfigError, MarketDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:  # cli_types checked the folders; a write can still fail (/proc, a full disk)
        if args.json and _write_json(args.json, result.to_json()):
            return 0
        if args.trades:
            from trader.backtest.report import write_fills_csv

            write_fills_csv(args.trades, result.output.fills)
        if args.equity:
            with open(args.equity, "w", encoding="utf-8") as fh:
                fh.write("ts_ms,equity_krw\n")
                for ts, e in zip(result.equity_ts.tolist(), result.equity.tolist(), strict=True):
                    fh.write(f"{ts},{e:.0f}\n")
    except OSError as exc:
        print(f"error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    print(render_table(result.summary))
    if result.trips:
        print()
        print(render_trips(result.trips))
    return 0


def _write_json(target: str, data: dict) -> bool:
    """Write the JSON result; True when it went to stdout (nothing else is printed then)."""
    import json

    text = json.dumps(data, ensure_ascii=False, indent=1)
    if target == "-":
        print(text)
        return True
    with open(target, "w", encoding="utf-8") as fh:
        fh.write(text)
    return False


def _run_portfolio(args: argparse.Namespace, krw: object, tpc: int) -> int:
    from trader.backtest.portfolio_api import render_portfolio_table, run_portfolio_backtest
    from trader.backtest.runner import progress_bar
    from trader.marketdata.candles import MarketDataError
    from trader.strategy.config import StrategyConfigError

    if not args.portfolio or not args.data_dir:
        print("error: --portfolio FILE and --data-dir DIR go together", file=sys.stderr)
        return 2
    if args.strategy or args.data:
        print("error: --portfolio names its strategies: drop --strategy/--data", file=sys.stderr)
        return 2
    try:
        result = run_portfolio_backtest(args.portfolio, args.data_dir, start=args.start, end=args.end,
                                        krw=krw, seed=args.seed, ticks_per_candle=tpc,
                                        progress=progress_bar())
    except (StrategyConfigError, MarketDataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.json and _write_json(args.json, result.to_json()):
            return 0
    except OSError as exc:
        print(f"error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    print(render_portfolio_table(result.summary))
    return 0
