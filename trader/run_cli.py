"""`python -m trader run` (live or paper trading) and `python -m trader reconcile`.

`run --paper` trades on the simulator (started here as a subprocess, or the one at `--sim-url`)
with the simulator's development keys; without `--paper` it trades on Upbit with the keys from
`UPBIT_ACCESS_KEY`/`UPBIT_SECRET_KEY` and refuses to start without them. Every start reconciles
with the exchange first (crash-only); a mismatch the recorded orders cannot explain stops with
exit code 3 and the difference printed. `reconcile [--adopt] [--yes]` shows the difference and,
on confirmation, adopts the exchange's figures. SIGINT/SIGTERM stop cleanly; a paper run also
stops when the replay runs out of data, and prints `fingerprint <16 hex>` over its fills (the
backtest's definition). The run is built by trader/compose.py, as the Prefect `trading` flow's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from trader import cli_types as t

EXIT_MISMATCH = 3
EXIT_USAGE = 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paper", action="store_true", help="trade on the simulator, not on Upbit")
    p.add_argument("--sim-url", type=t.http_url, help="simulator to use with --paper (default: start one)")
    p.add_argument(
        "--db", type=t.db_url,
        help="database URL (default: TRADER_DATABASE_URL or var/trader.db; paper: var/paper*.db)"
    )
    p.add_argument("--log-level", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   default="INFO",
                   help="DEBUG, INFO, WARNING, ERROR (default INFO)")


def register(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="trade live on Upbit, or on the simulator with --paper",
        description="Run the trading loop. Live needs UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY in the "
        "environment; --paper uses the simulator and its development keys.",
    )
    run.add_argument("--strategy", required=True, help="strategy YAML file")
    _common(run)
    run.add_argument(
        "--direct-orders",
        action="store_true",
        help="send order creations over a kept-alive connection of our own instead of the SDK's request "
        "path (≈2 ms less from tick to order; also TRADER_DIRECT_ORDERS=1)",
    )
    run.add_argument("--krw", type=t.krw, help="paper: initial KRW of the simulator started here")
    run.add_argument("--sim-data", help="paper: market data file for the simulator started here")
    run.add_argument("--sim-speed", type=t.speed_text,
                     help="paper: replay speed of the simulator started here (default 1)")
    run.add_argument(
        "--lockstep",
        action="store_true",
        help="paper: the simulator (started here in lockstep mode at speed max, or a `sim --lockstep` at "
        "--sim-url) waits for this loop to handle each trade before the next, so fills equal a backtest's",
    )
    run.add_argument("--sim-seed", type=t.seed, help="paper: synthesizer seed of the simulator started here")
    run.add_argument("--sim-ticks-per-candle", type=t.ticks_per_candle,
                     help="paper: trades per candle (simulator here)")
    run.add_argument("--sim-start", type=t.kst_time,
                     help="paper: replay start of the simulator here (ISO; KST if naive)")
    run.add_argument(
        "--sim-end",
        type=t.kst_time,
        help="paper: replay end of the simulator here, exclusive (ISO; KST if naive): with --sim-start the "
        "same candles as `backtest --from/--to`",
    )
    run.add_argument("--max-runtime-s", type=t.positive_float(10 * 365 * 86_400),
                     help="stop after this many seconds")
    run.add_argument(
        "--until-ts",
        type=t.kst_time,
        help="stop at this market time, after handling the first trade at or past it (ISO; KST if naive)",
    )
    run.add_argument("--namespace", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    rec = subparsers.add_parser(
        "reconcile",
        help="compare the ledger with the exchange; --adopt takes the exchange's figures",
        description="Resolve recorded orders, rebuild the ledger from stored fills and compare it with "
        "the exchange's balances. With --adopt (after confirmation, or --yes) the exchange's balances "
        "become the ledger's new baseline, recorded in the event log.",
    )
    rec.add_argument("--strategy", help="strategy YAML (gives the market to compare)")
    rec.add_argument("--market", type=t.market, help="market to compare (instead of --strategy)")
    _common(rec)
    rec.add_argument("--adopt", action="store_true", help="adopt the exchange's balances")
    rec.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rec.set_defaults(func=cmd_reconcile)


# ---- wiring ---------------------------------------------------------------------------------
def _setup_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # request lines and migration chatter carry no keys, but bury the decisions
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_ts(text: str) -> int:
    """ISO 8601 → epoch ms (a time without an offset is KST)."""
    from trader.compose import parse_market_time

    return parse_market_time(text, "--until-ts")


def _paper_sim(args: argparse.Namespace, market: str) -> Any:
    from trader.compose import PaperSim

    lockstep = bool(getattr(args, "lockstep", False))
    return PaperSim(
        market=market,
        data=getattr(args, "sim_data", None),
        speed=getattr(args, "sim_speed", None),
        lockstep=lockstep,
        seed=getattr(args, "sim_seed", None),
        ticks_per_candle=getattr(args, "sim_ticks_per_candle", None),
        start=getattr(args, "sim_start", None),
        end=getattr(args, "sim_end", None),
        krw=getattr(args, "krw", None),
        # free-running, the replay would move on before the loop has subscribed (lockstep waits)
        paused=not lockstep,
    )


def resolve_venue(args: argparse.Namespace, settings: Any, *, start_sim: bool, market: str | None) -> Any:
    """Paper (simulator + dev keys) or live (Upbit + env keys); SystemExit with a message otherwise."""
    from trader import compose

    if not args.paper:
        try:
            return compose.live_venue(settings, where=" (or .env), or use --paper to trade on the simulator")
        except compose.ComposeError as exc:
            raise SystemExit(str(exc)) from None
    if args.sim_url:
        return compose.paper_venue(args.sim_url)
    if not start_sim or market is None:
        raise SystemExit("--paper needs --sim-url here (a simulator started now would be a new account)")
    opts = _paper_sim(args, market)
    if opts.free_running_at_max:
        print(f"warning: {compose.FREE_RUNNING_WARNING}", file=sys.stderr, flush=True)
    sim = compose.start_simulator(opts, Path(settings.var_dir))
    print(f"paper trading on the simulator at {sim.base_url}", flush=True)
    return compose.paper_venue(sim.base_url, sim=sim)


# options that only mean something on the simulator; given without --paper they are refused, since
# ignoring them would turn a run meant for the simulator into a live one with the real keys
_PAPER_ONLY = (("sim_url", "--sim-url"), ("krw", "--krw"), ("sim_data", "--sim-data"),
               ("sim_speed", "--sim-speed"), ("lockstep", "--lockstep"), ("sim_seed", "--sim-seed"),
               ("sim_ticks_per_candle", "--sim-ticks-per-candle"), ("sim_start", "--sim-start"),
               ("sim_end", "--sim-end"))


def _paper_only_error(args: argparse.Namespace) -> str | None:
    """The usage error for simulator options given without --paper, None when there are none."""
    from trader.compose import paper_only_problem

    if args.paper:
        return None
    given = [flag for name, flag in _PAPER_ONLY if getattr(args, name, None) not in (None, False)]
    return paper_only_problem(given)


def _sim_data_problem(args: argparse.Namespace, market: str) -> str | None:
    """A simulator started here must replay the strategy's market from a readable file: the message
    naming both markets (or the file's bad line and column), or None."""
    if not args.paper or args.sim_url:
        return None
    from trader.marketdata.candles import MarketDataError, check_data_market, load_frame
    from trader.sim.app import DEFAULT_DATA

    data = args.sim_data or DEFAULT_DATA
    shipped = sorted(DEFAULT_DATA.parent.glob(f"{market}_*.parquet"))
    example = f" (e.g. --sim-data {shipped[0]})" if shipped else ""
    try:
        check_data_market(market, data, fix=f"give --sim-data a {market} candle file{example}, or a strategy "
                          "for the file's market")
        if args.sim_data:  # the simulator would die on a bad cell with its message lost in a traceback
            load_frame(args.sim_data)
    except MarketDataError as exc:
        return str(exc)
    return None


def _db_url(args: argparse.Namespace, settings: Any, *, fresh_paper: bool) -> str:
    from trader.compose import default_db_url

    return str(args.db) if args.db else default_db_url(settings, paper=args.paper, fresh=fresh_paper)


# ---- run ------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from trader.compose import ComposeError
    from trader.strategy.config import StrategyConfigError, load_strategy

    _setup_logging(args.log_level)
    try:
        config = load_strategy(args.strategy)
    except StrategyConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = _paper_only_error(args) or _sim_data_problem(args, config.market)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        until_ms = parse_ts(args.until_ts) if args.until_ts else None
        return asyncio.run(_run(args, config, until_ms))
    except ComposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(f"error: {exc.code}", file=sys.stderr)
            return EXIT_USAGE
        raise


async def _run(args: argparse.Namespace, config: Any, until_ms: int | None) -> int:
    import asyncio
    import signal

    from trader.compose import open_run
    from trader.config import load_settings
    from trader.execution.reconcile import ReconcileMismatch
    from trader.storage.db import redact_url
    from trader.upbit.errors import UpbitError

    settings = load_settings()
    venue = resolve_venue(args, settings, start_sim=True, market=config.market)
    db_url = _db_url(args, settings, fresh_paper=args.paper and not args.sim_url)
    run = await open_run(
        config,
        venue,
        db_url,
        settings=settings,
        direct_orders=bool(getattr(args, "direct_orders", False)),
        lockstep=bool(getattr(args, "lockstep", False)),
        until_ms=until_ms,
        max_runtime_s=args.max_runtime_s,
        namespace=args.namespace,
        resume_sim=venue.sim is not None and not getattr(args, "lockstep", False),
    )
    loop = run.loop
    running = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        running.add_signal_handler(sig, loop.stop, f"signal {sig.name}")
    mode = "paper" if args.paper else "LIVE"
    print(f"trading {config.market} ({mode}) db={redact_url(db_url)}", flush=True)
    try:
        await run.run()
        fingerprint = await asyncio.to_thread(run.fingerprint)
    except ReconcileMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except UpbitError as exc:  # e.g. refused keys: the message is already redacted
        print(f"error: the exchange refused: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            running.remove_signal_handler(sig)
        await run.close()
    s = loop.stats
    print(
        f"stopped ({loop.stop_reason}): ticks={s.ticks} decisions={s.decisions} orders={s.orders} "
        f"fills={s.fills} errors={s.errors}",
        flush=True,
    )
    print(f"fingerprint {fingerprint[:16]}", flush=True)
    return 0


# ---- reconcile ----------------------------------------------------------------------------
def cmd_reconcile(args: argparse.Namespace) -> int:
    import asyncio

    _setup_logging(args.log_level)
    markets: list[str] = []
    if args.strategy:
        from trader.strategy.config import StrategyConfigError, load_strategy

        try:
            markets.append(load_strategy(args.strategy).market)
        except StrategyConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.market:
        markets.append(args.market)
    problem = _paper_only_error(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_reconcile(args, markets))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(f"error: {exc.code}", file=sys.stderr)
            return EXIT_USAGE
        raise


async def _reconcile(args: argparse.Namespace, markets: list[str]) -> int:
    from trader.config import load_settings
    from trader.execution.order_manager import OrderManager
    from trader.execution.reconcile import adopt_exchange, reconcile
    from trader.portfolio import Portfolio
    from trader.storage.db import Database
    from trader.storage.repository import Repository
    from trader.upbit.rest import UpbitRestClient

    settings = load_settings()
    venue = resolve_venue(args, settings, start_sim=False, market=None)
    db = Database.open(_db_url(args, settings, fresh_paper=False))
    repo = Repository(db)
    rest = UpbitRestClient(*venue.keys, venue.rest_url)
    try:
        om = OrderManager(rest, repo, Portfolio())
        _pf, _meta, report = await reconcile(om, repo, markets=markets, raise_on_mismatch=False)
        print(report.describe())
        if report.ok:
            print("ledger and exchange agree.")
            return 0
        if not args.adopt:
            print("MISMATCH: run again with --adopt to take the exchange's figures as the ledger's.")
            return EXIT_MISMATCH
        if not args.yes:
            answer = input("adopt the exchange's balances as the ledger's? [y/N] ").strip().lower()
            if answer not in ("y", "yes"):
                print("nothing changed.")
                return EXIT_MISMATCH
        await adopt_exchange(rest, repo, reason="adopted by the operator", diffs=report.mismatches)
        print("adopted the exchange's balances (recorded in the event log).")
        return 0
    finally:
        await rest.close()
        db.close()
