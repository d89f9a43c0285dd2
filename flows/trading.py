"""`trading`: the long-running flow that hosts the WebSocket trading loop (paper or live).

Table of contents of a run:
1. tag the run with its market and mode; build the run with trader/compose.py, the composition
   root `python -m trader run` uses too: the venue (the simulator's URL and dev keys, or Upbit
   with keys from env / Secret blocks), the database, the streams, the lockstep ack and the
   `TradingLoop` — this flow adds only Prefect things (artifact, tags, retries, subflows, hooks);
2. run the loop (`trader.engine`): it reconciles with the exchange first, then trades. Each
   decision is *sent* by the engine itself within milliseconds of its tick
   (`OrderManager.submit_intent_fast`); the slow half — confirming the fill — runs as a
   `place-order` subflow inside the engine's per-intent asyncio task, so Prefect's ~1 s per
   subflow never delays a tick or a stop order (bench/flow_latency.py measures it);
3. a Markdown artifact (position, average price, P&L, last decisions) is refreshed in place
   every `status_every_s`, and one log line every `log_every_s` — never per tick;
4. when the loop dies of a transient cause (network, 5xx, 429/418: `is_transient`) the flow fails
   and Prefect retries it with back-off: start-up reconciles, so a retry resumes where the ledger
   and the exchange agree (crash-only design). Anything else (a missing strategy file, a bad
   option, another trader holding the account, a reconcile mismatch) cannot heal by waiting: the
   run fails at once with its message (`fail_fast`; Prefect 3.9 flows have no retry condition);
5. final failure or crash mails an alert (hooks; crashes nobody saw: automations). Cancelling
   from the UI is no failure and mails nothing: the worker SIGTERMs the process, the loop's
   shutdown runs on the way out (strategy state saved, streams and database closed) and an
   order still in flight is left recorded for the next start's reconcile (crash-only design);
   the run is Cancelled within seconds (tests/e2e/test_e2e_trading_lifecycle.py);
6. the result names the run's fills by their fingerprint (trader/fingerprint.py): a paper run in
   `lockstep` over the backtest's window gives the backtest's fingerprint.

`fail_after_ticks` injects a fault (the market stream raises after N ticks of every attempt):
the e2e test and the README's "see an alert" recipe use it.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_client, get_run_logger
from prefect.runtime import flow_run as current_run

from flows.hooks import LAST_POSITION, mail_failure_alert
from flows.place_order import confirm_with_subflow
from tasks.status import StatusBoard, StatusPublisher, artifact_key, describe_intent
from trader.config import load_settings
from trader.domain import Tick

DEFAULT_STRATEGY = "trader/strategy/examples/demo.yaml"
ACCESS_KEY_BLOCK = "upbit-access-key"
SECRET_KEY_BLOCK = "upbit-secret-key"
# Retries are read from the environment when the module loads, so a deployment (or a test) can
# shorten them through job variables without a code change.
RETRIES = int(os.environ.get("TRADER_TRADING_RETRIES", "3"))
RETRY_DELAYS_S = [
    float(x) for x in os.environ.get("TRADER_TRADING_RETRY_DELAYS_S", "10,60,300").split(",") if x.strip()
]


class InjectedFault(RuntimeError):
    """Raised by `fail_after_ticks`: a deliberate failure to exercise retries and alerts."""


def is_transient(exc: BaseException) -> bool:
    """The flow's retry condition: True for failures a later attempt may not meet again —
    network and connection errors, 5xx and 429/418 (trader.upbit.errors' RetryableError and
    RateLimitError), an order left in doubt by one (reconciled on the next start) and the
    deliberate `InjectedFault`. A configuration error, a refused key, a ledger mismatch: False."""
    import httpx
    from websockets.exceptions import ConnectionClosed

    from trader.upbit.errors import AmbiguousOrderError, RetryableError

    if isinstance(exc, BaseExceptionGroup):
        return all(is_transient(e) for e in exc.exceptions)
    transient = (RetryableError, AmbiguousOrderError, InjectedFault, ConnectionError, TimeoutError,
                 httpx.TransportError, ConnectionClosed)
    return isinstance(exc, transient)


async def stop_retries() -> None:
    """Set this flow run's retries to none, so the failure being raised is final at once."""
    run_id = current_run.id
    if not run_id:
        return
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        await client.update_flow_run(run_id, empirical_policy=run.empirical_policy.model_copy(
            update={"retries": 0}))


def fail_fast(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Under @flow: an error `is_transient` rejects fails the run without Prefect's retries."""
    import functools

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc):
                with contextlib.suppress(Exception):  # no flow run or API: no retries to stop either
                    get_run_logger().error("not retried (%s cannot heal by waiting): %s",
                                           type(exc).__name__, exc)
                    await stop_retries()
            raise

    return wrapper


async def failing_after(stream: AsyncIterable[Any], ticks: int) -> AsyncIterator[Any]:
    """`stream` unchanged until `ticks` ticks went through, then InjectedFault."""
    seen = 0
    async for event in stream:
        if isinstance(event, Tick):
            seen += 1
            if seen > ticks:
                raise InjectedFault(f"injected fault after {ticks} ticks (fail_after_ticks)")
        yield event


# ---- venue -----------------------------------------------------------------------------------
_OWN_SIM: dict[bool, Any] = {}  # simulators this process started (by lockstep), kept across retries


def _own_simulator(market: str, lockstep: bool, var_dir: Path) -> str:
    """Start (once per process: a retry must meet the same account) a simulator for a paper run
    with no sim_url: real-time speed, or lockstep at speed max."""
    if lockstep not in _OWN_SIM:
        from trader.compose import PaperSim, start_simulator

        # free-running, it starts paused and the run resumes it once subscribed (no trade missed)
        sim = start_simulator(PaperSim(market=market, lockstep=lockstep, paused=not lockstep), var_dir)
        _OWN_SIM[lockstep] = sim
        atexit.register(sim.stop)
    return str(_OWN_SIM[lockstep].base_url)


def _secret(block: str) -> str | None:
    from prefect.blocks.system import Secret

    try:
        return str(Secret.load(block).get())
    except ValueError:  # no such block
        return None


def resolve_venue(
    paper: bool, sim_url: str | None, settings: Any, market: str, lockstep: bool = False
) -> Any:
    """The simulator with its dev keys (at sim_url, or started here), or Upbit (keys from the
    environment or the Secret blocks) — trader/compose.py decides, as for `trader run`."""
    from trader.compose import ComposeError, live_venue, paper_only_problem, paper_venue

    if paper:
        return paper_venue(sim_url or _own_simulator(market, lockstep, Path(settings.var_dir)))
    problem = paper_only_problem(
        [f"{name}={value!r}" for name, value in (("sim_url", sim_url), ("lockstep", lockstep)) if value],
        "paper=True",
    )
    if problem:
        raise ComposeError(problem)
    where = (
        f" of the worker or the Secret blocks {ACCESS_KEY_BLOCK}/{SECRET_KEY_BLOCK} "
        "(python -m deployments.setup), or run with paper=True"
    )
    return live_venue(settings, _secret, where=where)


def default_db_url(paper: bool, sim_url: str | None, settings: Any) -> str:
    """Live: the configured DB. Paper: var/paper.db for a given simulator, else one per run."""
    from trader.compose import default_db_url as choose

    return choose(settings, paper=paper, fresh=not sim_url, run_name=str(current_run.id or int(time.time())))


# ---- observers ---------------------------------------------------------------------------------
class FlowObservers:
    """Engine observer hooks → status board, artifact cadence, sparse logs. All cheap, on-loop."""

    def __init__(self, board: StatusBoard, publisher: StatusPublisher, logger: Any, log_every_s: float):
        self.board = board
        self.publisher = publisher
        self.logger = logger
        self.log_every_s = log_every_s
        self._last_log = 0.0
        self._publishing: asyncio.Task[Any] | None = None
        self.loop: Any = None  # the TradingLoop, set once built

    def on_decision(self, tick: Any, intent: Any) -> None:
        self.board.on_decision(tick.ts_ms, str(intent.kind), intent.reason, describe_intent(intent))
        self.logger.info(
            "decision %s (%s) %s at %s", intent.kind, intent.reason, describe_intent(intent), tick.price
        )
        self._maybe_publish(force=True)

    def on_order(self, order: Any) -> None:
        self.board.orders += 1

    def on_fill(self, fill: Any, effect: Any) -> None:
        self.board.fills += 1
        self._refresh_ledger()

    def on_status(self, status: dict[str, Any]) -> None:
        self.board.ticks = int(status.get("ticks", self.board.ticks))
        if status.get("last_price") is not None:
            self.board.last_price = float(status["last_price"])
        self.board.last_tick_ms = int(status.get("last_tick_ts_ms") or 0) or self.board.last_tick_ms
        if status.get("stopped"):
            self.board.state = f"stopped: {status['stopped']}"
        self._refresh_ledger()
        now = time.monotonic()
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            self.logger.info(
                "ticks=%s orders=%s fills=%s errors=%s price=%s volume=%s krw=%s",
                status.get("ticks"),
                status.get("orders"),
                status.get("fills"),
                status.get("errors"),
                status.get("last_price"),
                status.get("volume"),
                status.get("krw"),
            )
        self._maybe_publish()

    def _refresh_ledger(self) -> None:
        if self.loop is None:
            return
        pf = self.loop.portfolio
        pos = pf.position(self.board.market)
        self.board.on_ledger(
            volume=pos.volume,
            avg_buy_price=pos.avg_buy_price,
            krw=pf.krw,
            realized=pf.realized_pnl_total(),
            fees=pf.fees_total(),
        )
        LAST_POSITION[str(current_run.id)] = {
            "market": self.board.market,
            "volume": str(pos.volume),
            "avg_buy_price": str(pos.avg_buy_price),
            "krw": str(pf.krw),
            "last_price": self.board.last_price,
        }

    def _maybe_publish(self, force: bool = False) -> None:
        if self._publishing is not None and not self._publishing.done():
            return  # one write in flight at most; the next status call catches up
        if force or self.publisher.due():
            self._publishing = asyncio.create_task(self._publish(force))

    async def _publish(self, force: bool) -> None:
        try:
            await self.publisher.publish(self.board, force=force)
        except Exception as exc:  # the board is cosmetic: never let it hurt trading
            self.logger.warning("status artifact not updated: %s", type(exc).__name__)

    async def flush(self) -> None:
        if self._publishing is not None:
            with contextlib.suppress(Exception):
                await self._publishing
        await self._publish(force=True)


async def tag_run(*tags: str) -> None:
    """Add tags (market, mode) to the running flow run, so the UI can filter on them."""
    run_id = current_run.id
    if not run_id:
        return
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        await client.update_flow_run(run_id, tags=sorted({*(run.tags or []), *tags}))


async def back_off(sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Exponential back-off across Prefect's flow retries (a flow takes one fixed delay only).

    Prefect waits RETRY_DELAYS_S[0] before every retry; attempt n (n ≥ 2) then waits the rest of
    RETRY_DELAYS_S[n-2] here, so a loop that keeps dying backs off 10 s, 60 s, 300 s.
    """
    attempt = int(current_run.run_count or 1)
    if attempt < 2 or not RETRY_DELAYS_S:
        return
    extra = RETRY_DELAYS_S[min(attempt - 2, len(RETRY_DELAYS_S) - 1)] - RETRY_DELAYS_S[0]
    if extra > 0:
        get_run_logger().warning("attempt %d: backing off %.0f s more before reconnecting", attempt, extra)
        await sleep(extra)


# ---- the flow ----------------------------------------------------------------------------------
@flow(
    name="trading",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_S[0] if RETRY_DELAYS_S else 0,
    persist_result=False,
    log_prints=False,
    on_failure=[mail_failure_alert],
    on_crashed=[mail_failure_alert],
)
@fail_fast
async def trading(
    strategy_path: str = DEFAULT_STRATEGY,
    paper: bool = True,
    sim_url: str | None = None,
    db_url: str | None = None,
    max_runtime_s: float | None = None,
    until: str | None = None,
    status_every_s: float = 30.0,
    log_every_s: float = 600.0,
    shutdown_grace_s: float = 15.0,
    equity_every_s: float = 60.0,
    order_subflows: bool = True,
    lockstep: bool = False,
    resume_sim: bool = False,
    fail_after_ticks: int | None = None,
) -> dict[str, Any]:
    """Trade the strategy at `strategy_path` until cancelled, `max_runtime_s`, market time `until`
    or (paper) the end of the replay.

    paper: trade on the simulator at `sim_url` (started here when omitted) with its dev keys;
    paper=false trades real money on Upbit. `until` is ISO 8601 market time (KST without an
    offset). `equity_every_s` is in market time: how often an equity point (and positions) is stored.
    `order_subflows=False` confirms orders in the engine itself instead of a `place-order`
    subflow per intent (for replays thousands of times faster than real time, where Prefect's
    ~1–2 s per subflow would blind the strategy for hours of market time).
    `lockstep` (paper): the simulator (a `sim --lockstep` at sim_url, or one started here) applies
    one trade per ack of this loop, so the fills equal the backtest's (trader/compose.py).
    `resume_sim` (paper): the simulator at sim_url was started paused; resume it once this loop is
    subscribed (a free-running replay at speed would otherwise run ahead of it).
    """
    from trader.compose import open_run, parse_market_time
    from trader.engine import Observers
    from trader.storage.db import redact_url
    from trader.strategy.config import load_strategy

    logger = get_run_logger()
    await back_off()
    config = load_strategy(strategy_path)
    market, mode = config.market, ("paper" if paper else "live")
    await tag_run(market, mode)
    settings = load_settings()
    until_ms = parse_market_time(until, "until") if until else None
    venue = resolve_venue(paper, sim_url, settings, market, lockstep)
    url = db_url or default_db_url(paper, sim_url, settings)
    logger.info("trading %s (%s) on %s, db %s", market, mode, venue.rest_url, redact_url(url))

    board = StatusBoard(market=market, mode=mode)
    observers = FlowObservers(
        board, StatusPublisher(artifact_key(market, mode), every_s=status_every_s), logger, log_every_s
    )
    run = await open_run(
        config,
        venue,
        url,
        settings=settings,
        lockstep=lockstep,
        until_ms=until_ms,
        max_runtime_s=max_runtime_s,
        stream=None if fail_after_ticks is None else (lambda public: failing_after(public, fail_after_ticks)),
        confirm_with=confirm_with_subflow if order_subflows else None,
        resume_sim=resume_sim or (paper and not sim_url and not lockstep),
        warn=logger.warning,
        observers=Observers(
            on_decision=observers.on_decision,
            on_order=observers.on_order,
            on_fill=observers.on_fill,
            on_status=observers.on_status,
        ),
        status_every_s=min(status_every_s, 10.0),
        shutdown_grace_s=shutdown_grace_s,
        equity_every_ms=int(equity_every_s * 1000),
    )
    loop = run.loop
    observers.loop = loop
    board.state = "running"
    try:
        stats = await run.run()
        fingerprint = await asyncio.to_thread(run.fingerprint)
    except BaseException as exc:
        board.state = f"failed: {type(exc).__name__}"
        raise
    finally:
        with contextlib.suppress(Exception):
            await observers.flush()
        await run.close()
    lat = sorted(stats.latencies_ns)
    position = loop.portfolio.position(market)
    summary = {
        "market": market,
        "mode": mode,
        "stop_reason": loop.stop_reason,
        "ticks": stats.ticks,
        "decisions": stats.decisions,
        "orders": stats.orders,
        "fills": stats.fills,
        "errors": stats.errors,
        "last_tick_ts_ms": stats.last_tick_ts_ms,
        "krw": str(loop.portfolio.krw),
        "volume": str(position.volume),
        "avg_buy_price": str(position.avg_buy_price),
        "last_price": loop.last_price,
        "realized_pnl": str(loop.portfolio.realized_pnl_total()),
        "fees": str(loop.portfolio.fees_total()),
        "fingerprint": fingerprint[:16],
        "tick_to_order_ms_p50": lat[len(lat) // 2] / 1e6 if lat else None,
        "tick_to_order_ms_p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6 if lat else None,
        "tick_to_order_ms_max": lat[-1] / 1e6 if lat else None,
        "db_url": redact_url(url),
    }
    brief = {k: summary[k] for k in ("ticks", "orders", "fills", "fingerprint")}
    logger.info("stopped (%s): %s", loop.stop_reason, brief)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.trading", description=__doc__.split("\n")[0])
    parser.add_argument("--strategy", default=DEFAULT_STRATEGY)
    parser.add_argument("--live", action="store_true", help="trade real money on Upbit (default: paper)")
    parser.add_argument("--sim-url")
    parser.add_argument("--db-url")
    parser.add_argument("--max-runtime-s", type=float)
    parser.add_argument("--until", help="stop at this market time (ISO 8601, KST without an offset)")
    parser.add_argument("--lockstep", action="store_true", help="paper: the exact mode (see the flow)")
    args = parser.parse_args(argv)
    result = asyncio.run(
        trading(
            strategy_path=args.strategy,
            paper=not args.live,
            sim_url=args.sim_url,
            db_url=args.db_url,
            max_runtime_s=args.max_runtime_s,
            until=args.until,
            lockstep=args.lockstep,
        )
    )
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
