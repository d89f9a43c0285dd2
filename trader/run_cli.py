"""`python -m trader run` (live or paper trading) and `python -m trader reconcile`.

`run --paper` trades on the simulator (started here as a subprocess, or the one at `--sim-url`)
with the simulator's development keys; without `--paper` it trades on Upbit with the keys from
`UPBIT_ACCESS_KEY`/`UPBIT_SECRET_KEY` and refuses to start without them. Every start reconciles
with the exchange first (crash-only); a mismatch the recorded orders cannot explain stops with
exit code 3 and the difference printed. `reconcile [--adopt] [--yes]` shows the difference and,
on confirmation, adopts the exchange's figures. SIGINT/SIGTERM stop cleanly.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from trader.timeutil import datetime_to_ms

EXIT_MISMATCH = 3
EXIT_USAGE = 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paper", action="store_true", help="trade on the simulator, not on Upbit")
    p.add_argument("--sim-url", help="simulator to use with --paper (default: start one)")
    p.add_argument(
        "--db", help="database URL (default: TRADER_DATABASE_URL or var/trader.db; paper: var/paper*.db)"
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")


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
    run.add_argument("--krw", type=Decimal, help="paper: initial KRW of the simulator started here")
    run.add_argument("--sim-data", help="paper: market data file for the simulator started here")
    run.add_argument("--sim-speed", help="paper: replay speed of the simulator started here (default 1)")
    run.add_argument(
        "--lockstep",
        action="store_true",
        help="paper: the simulator (started here in lockstep mode at speed max, or a `sim --lockstep` at "
        "--sim-url) waits for this loop to handle each trade before the next, so fills equal a backtest's",
    )
    run.add_argument("--sim-seed", type=int, help="paper: synthesizer seed of the simulator started here")
    run.add_argument("--sim-ticks-per-candle", type=int, help="paper: trades per candle (simulator here)")
    run.add_argument("--sim-start", help="paper: replay start of the simulator here (ISO; KST if naive)")
    run.add_argument("--max-runtime-s", type=float, help="stop after this many seconds")
    run.add_argument("--until-ts", help="stop at this market time (ISO 8601; naive = UTC)")
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
    rec.add_argument("--market", help="market to compare (instead of --strategy)")
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


def _ws_urls(base_http: str) -> tuple[str, str]:
    ws = base_http.rstrip("/").replace("https://", "wss://").replace("http://", "ws://") + "/websocket/v1"
    return ws, ws + "/private"


def parse_ts(text: str) -> int:
    """ISO 8601 → epoch ms (a naive time is UTC)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return datetime_to_ms(dt)


class Venue:
    """Where to trade: URLs, keys, and a simulator process when we started one."""

    def __init__(self, rest_url: str, ws_url: str, private_ws_url: str, keys: tuple[str, str]) -> None:
        self.rest_url = rest_url
        self.ws_url = ws_url
        self.private_ws_url = private_ws_url
        self.keys = keys
        self.sim: Any = None

    def close(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None


def resolve_venue(args: argparse.Namespace, settings: Any, *, start_sim: bool, market: str | None) -> Venue:
    """Paper (simulator + dev keys) or live (Upbit + env keys); SystemExit with a message otherwise."""
    from trader.config import SIM_ACCESS_KEY, SIM_SECRET_KEY

    if args.paper:
        keys = (SIM_ACCESS_KEY, SIM_SECRET_KEY)
        if args.sim_url:
            return Venue(args.sim_url, *_ws_urls(args.sim_url), keys)
        if not start_sim:
            raise SystemExit("--paper needs --sim-url here (a simulator started now would be a new account)")
        from trader.sim.server import SimulatorProcess

        lockstep = bool(getattr(args, "lockstep", False))
        speed = str(getattr(args, "sim_speed", None) or "1")
        # lockstep paces the feed by the loop's acks: real-time pacing on top would only slow it
        sim_args = ["--speed", "max" if lockstep and speed == "1" else speed]
        if lockstep:
            sim_args += ["--lockstep"]
        for flag, name in (("--seed", "sim_seed"), ("--ticks-per-candle", "sim_ticks_per_candle"),
                           ("--start", "sim_start")):
            if getattr(args, name, None) is not None:
                sim_args += [flag, str(getattr(args, name))]
        if getattr(args, "krw", None) is not None:
            sim_args += ["--krw", str(args.krw)]
        if getattr(args, "sim_data", None):
            sim_args += ["--data", str(args.sim_data)]
        if market:
            sim_args += ["--market", market]
        sim = SimulatorProcess(args=sim_args)
        sim.start()
        venue = Venue(sim.base_url, *_ws_urls(sim.base_url), keys)
        venue.sim = sim
        print(f"paper trading on the simulator at {sim.base_url}", flush=True)
        return venue
    ak, sk = settings.upbit_access_key, settings.upbit_secret_key
    if not ak or not sk:
        raise SystemExit(
            "live trading needs Upbit API keys: set UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY in the environment "
            "(or .env), or use --paper to trade on the simulator."
        )
    ws = settings.upbit_ws_url.rstrip("/")
    return Venue(settings.upbit_base_url, ws, ws + "/private", (ak.get_secret_value(), sk.get_secret_value()))


# options that only mean something on the simulator; given without --paper they are refused, since
# ignoring them would turn a run meant for the simulator into a live one with the real keys
_PAPER_ONLY = (("sim_url", "--sim-url"), ("krw", "--krw"), ("sim_data", "--sim-data"),
               ("sim_speed", "--sim-speed"), ("lockstep", "--lockstep"), ("sim_seed", "--sim-seed"),
               ("sim_ticks_per_candle", "--sim-ticks-per-candle"), ("sim_start", "--sim-start"))


def _paper_only_error(args: argparse.Namespace) -> str | None:
    """The usage error for simulator options given without --paper, None when there are none."""
    if args.paper:
        return None
    given = [flag for name, flag in _PAPER_ONLY if getattr(args, name, None) not in (None, False)]
    if not given:
        return None
    verb = "is" if len(given) == 1 else "are"
    return (
        f"{', '.join(given)} {verb} for --paper runs on the simulator; without --paper this runs LIVE "
        "on Upbit with your keys (add --paper, or drop the option)"
    )


def _db_url(args: argparse.Namespace, settings: Any, *, fresh_paper: bool) -> str:
    if args.db:
        return str(args.db)
    if args.paper:
        var = Path(settings.var_dir)
        if fresh_paper:
            # a simulator started now is a brand-new account: it gets a brand-new ledger
            name = "paper-" + time.strftime("%Y%m%d-%H%M%S") + ".db"
            return f"sqlite:///{(var / name).as_posix()}"
        return f"sqlite:///{(var / 'paper.db').as_posix()}"
    return str(settings.db_url)


# ---- run ------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from trader.strategy.config import StrategyConfigError, load_strategy

    _setup_logging(args.log_level)
    try:
        config = load_strategy(args.strategy)
    except StrategyConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = _paper_only_error(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_run(args, config))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(f"error: {exc.code}", file=sys.stderr)
            return EXIT_USAGE
        raise


async def _run(args: argparse.Namespace, config: Any) -> int:
    import asyncio
    import signal

    from trader.config import load_settings
    from trader.engine import TradingLoop, trading_streams
    from trader.execution.reconcile import ReconcileMismatch
    from trader.portfolio import Portfolio
    from trader.storage.db import Database, redact_url
    from trader.storage.repository import Repository
    from trader.upbit.errors import UpbitError
    from trader.upbit.rest import UpbitRestClient

    settings = load_settings()
    venue = resolve_venue(args, settings, start_sim=True, market=config.market)
    db_url = _db_url(args, settings, fresh_paper=args.paper and not args.sim_url)
    try:
        db = Database.open(db_url)
    except BaseException:
        venue.close()  # never leave a simulator we started behind
        raise
    repo = Repository(db)
    direct = bool(getattr(args, "direct_orders", False) or settings.direct_orders)
    rest = UpbitRestClient(*venue.keys, venue.rest_url, direct_orders=direct)
    public, private = trading_streams(config.market, venue.ws_url, venue.private_ws_url, venue.keys, rest)
    lockstep_ack = None
    if getattr(args, "lockstep", False):
        from trader.sim.lockstep import LockstepAck

        lockstep_ack = LockstepAck(public, venue.rest_url)
    loop = TradingLoop(
        config,
        rest,
        public,
        repo,
        Portfolio(),
        namespace=args.namespace,
        order_events=private,
        stop_at_ms=parse_ts(args.until_ts) if args.until_ts else None,
        max_runtime_s=args.max_runtime_s,
        after_tick=lockstep_ack,
    )
    running = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        running.add_signal_handler(sig, loop.stop, f"signal {sig.name}")
    mode = "paper" if args.paper else "LIVE"
    print(f"trading {config.market} ({mode}) db={redact_url(db_url)}", flush=True)
    try:
        await loop.run()
    except ReconcileMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except UpbitError as exc:  # e.g. refused keys: the message is already redacted
        print(f"error: the exchange refused: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            running.remove_signal_handler(sig)
        await public.close()
        await private.close()
        await rest.close()
        if lockstep_ack is not None:
            await lockstep_ack.close()
        db.close()
        venue.close()
    s = loop.stats
    print(
        f"stopped ({loop.stop_reason}): ticks={s.ticks} decisions={s.decisions} orders={s.orders} "
        f"fills={s.fills} errors={s.errors}",
        flush=True,
    )
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
