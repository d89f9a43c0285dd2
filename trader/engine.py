"""TradingLoop: ticks → strategy → intents → orders → fills → database → ledger → strategy.

One loop for live (Upbit) and paper (the simulator over loopback); only the exchange client and
the market stream differ. The loop never waits for a fill: each intent runs as an asyncio task
(`OrderManager.submit_intent_fast` then `confirm`), and the market stays `pending` in the
strategy's view meanwhile. On start it reconciles (crash-only: start-up and recovery are one
path); on stop it waits a bounded time for in-flight orders, saves the strategy state and returns.
Market time is the last tick's timestamp: the order manager it builds times limit orders by it
(`market_clock`, woken per tick by `note_market_time`), as the backtest does. A lockstep paper
run (`after_tick`) also handles each trade in the backtest's order — fills and timeouts the trade
caused are settled before the strategy sees it, and the trade is acked once its orders are —
through one hook object around each tick (`trader.sim.lockstep_sync.LockstepSync`).

Observers (`on_decision`, `on_fill`, `on_result`, `on_status`) let a caller such as the Prefect
flow render progress without the loop knowing about it. Logs are `key=value`, never keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from trader.domain import Fill, Intent, PositionView, Tick
from trader.execution.order_manager import ExecutionResult, ManagedOrder, OrderManager, wall_ms
from trader.execution.reconcile import EngineMeta, ReconcileReport, reconcile
from trader.upbit.client import ExchangeClient, order_request_out

log = logging.getLogger("trader.engine")

STATE_PREFIX = "strategy:"


@dataclass
class Observers:
    """Callbacks (all optional, all synchronous and quick: they run on the loop)."""

    on_decision: Callable[[Tick, Intent], None] | None = None
    on_order: Callable[[ManagedOrder], None] | None = None  # sent (fast path done)
    on_fill: Callable[[Fill, Any], None] | None = None
    on_result: Callable[[ExecutionResult], None] | None = None
    on_status: Callable[[dict[str, Any]], None] | None = None


@dataclass
class LoopStats:
    ticks: int = 0
    ignored: int = 0
    decisions: int = 0
    orders: int = 0
    fills: int = 0
    errors: int = 0
    started_at: float = field(default_factory=time.time)
    last_tick_ts_ms: int = 0
    latencies_ns: list[int] = field(default_factory=list)  # tick received -> order request out


class TickHook(Protocol):
    """Runs around each tick of the market stream (lockstep: settle orders, then ack the trade)."""

    async def before(self, tick: Tick) -> None: ...

    async def after(self, tick: Tick) -> None: ...

    async def close(self) -> None: ...


def _plain(value: Decimal | None) -> str:
    """Fixed-point text for logs (no 3.118E+6)."""
    return "None" if value is None else f"{value.normalize():f}"


class TradingLoop:
    """The live/paper trading loop (see the module docstring)."""

    def __init__(
        self,
        config: Any,
        exchange: ExchangeClient,
        market_stream: AsyncIterable[Any],
        repo: Any,
        portfolio: Any,
        *,
        namespace: str | None = None,
        clock: Callable[[], int] = wall_ms,
        strategy: Any | None = None,
        order_events: AsyncIterable[Any] | None = None,
        observers: Observers | None = None,
        confirm: Callable[[ManagedOrder], Awaitable[ExecutionResult]] | None = None,
        order_manager: OrderManager | None = None,
        equity_every_ms: int = 60_000,
        status_every_s: float = 10.0,
        shutdown_grace_s: float = 30.0,
        stop_at_ms: int | None = None,
        max_runtime_s: float | None = None,
        reconcile_on_start: bool = True,
        reconcile_grace_s: float = 2.0,
        om_options: dict[str, Any] | None = None,
        gil_switch_interval_s: float | None = 0.001,
        after_tick: Callable[[Tick], Awaitable[None]] | None = None,
        tick_hook: TickHook | None = None,
        freeze_gc: bool = True,
        request_out_wait_s: float = 0.005,
        settle_timeout_s: float = 30.0,
    ) -> None:
        self.config = config
        self.market: str = config.market
        self.exchange = exchange
        self.market_stream = market_stream
        self.order_events = order_events
        self.repo = repo
        self.clock = clock
        self.observers = observers or Observers()
        self.om = order_manager or OrderManager(
            exchange,
            repo,
            portfolio,
            namespace=namespace or "",
            clock=clock,
            price_source=self._price,
            on_fill=self._on_fill,
            # limit-order timeouts count in market time, as in the backtest (order_manager.py)
            **{"market_clock": self._market_now, **(om_options or {})},
        )
        self._namespace_given = namespace
        self._confirm = confirm or self.om.confirm
        self._strategy = strategy
        self.equity_every_ms = equity_every_ms
        self.status_every_s = status_every_s
        self.shutdown_grace_s = shutdown_grace_s
        self.stop_at_ms = stop_at_ms
        self.max_runtime_s = max_runtime_s
        self.reconcile_on_start = reconcile_on_start
        self.reconcile_grace_s = reconcile_grace_s
        self.stats = LoopStats()
        self.meta: EngineMeta | None = None
        self.report: ReconcileReport | None = None
        self.inflight: dict[str, asyncio.Task[Any]] = {}
        self.last_price: float | None = None
        self._stop = asyncio.Event()
        self._state_lock = asyncio.Lock()
        self._state_dirty = False  # a save was asked for since the last state was taken
        self._equity_busy = False  # an equity point is being written
        self._background: set[asyncio.Task[Any]] = set()
        self._next_equity_ms = 0
        self._last_status = 0.0
        self.stop_reason = ""
        # worker threads (database writes) holding SQLite's write lock wait for the GIL while the
        # loop thread parses ticks: a 5 ms default switch interval stretches every such lock hold
        # (and the hand-back of their results) by up to 5 ms. Set while running, then restored.
        self.gil_switch_interval_s = gil_switch_interval_s
        # lockstep (opt-in): `after_tick` (e.g. a `trader.sim.lockstep.LockstepAck`) is awaited
        # after each tick once every in-flight order is settled; the settle steps and the quiet
        # band it carries live in one hook object. None keeps the hot path as is.
        self.settle_timeout_s = settle_timeout_s
        self.tick_hook: TickHook | None = tick_hook
        self._after_tick: Callable[[Tick], Awaitable[None]] | None = None
        if after_tick is not None:
            self.after_tick = after_tick
        self.freeze_gc = freeze_gc
        # per intent: set once its order request is written out (see _until_requests_out)
        self._request_out: dict[str, asyncio.Event] = {}
        self.request_out_wait_s = request_out_wait_s

    # ---- accessors ---------------------------------------------------------------------------
    @property
    def portfolio(self) -> Any:
        return self.om.portfolio

    @property
    def strategy(self) -> Any:
        if self._strategy is None:
            from trader.strategy.engine import StrategyEngine

            self._strategy = StrategyEngine(self.config)
        return self._strategy

    @property
    def state_name(self) -> str:
        return f"{STATE_PREFIX}{self.market}"

    @property
    def after_tick(self) -> Callable[[Tick], Awaitable[None]] | None:
        return self._after_tick

    @after_tick.setter
    def after_tick(self, hook: Callable[[Tick], Awaitable[None]] | None) -> None:
        """Set (before `run`) the lockstep ack: it becomes the tick hook that settles and acks."""
        from trader.sim.lockstep_sync import LockstepSync

        self._after_tick = hook
        if hook is not None:
            self.tick_hook = LockstepSync(self, hook, settle_timeout_s=self.settle_timeout_s)
        elif isinstance(self.tick_hook, LockstepSync):
            self.tick_hook = None

    def _price(self, market: str) -> Decimal | None:
        return (
            Decimal(repr(self.last_price)) if self.last_price is not None and market == self.market else None
        )

    def _market_now(self) -> int | None:
        """Market time: the last tick's ts_ms (None before the first tick of our market)."""
        return self.stats.last_tick_ts_ms or None

    def stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to finish (signal handlers call this)."""
        if not self._stop.is_set():
            self.stop_reason = reason
            log.info("stopping reason=%s", reason)
            self._stop.set()

    # ---- start-up ----------------------------------------------------------------------------
    async def start(self) -> ReconcileReport | None:
        """Reconcile with the exchange, restore the strategy, tell it what its orders achieved."""
        if self.reconcile_on_start:
            _pf, meta, report = await reconcile(
                self.om, self.repo, markets=[self.market], clock=self.clock, grace_s=self.reconcile_grace_s
            )
            self.meta, self.report = meta, report
            if self._namespace_given:
                self.om.namespace = self._namespace_given
        saved = await asyncio.to_thread(self.repo.load_strategy_state, self.state_name)
        if saved and self._strategy is None:
            from trader.strategy.engine import StrategyEngine

            try:
                self._strategy = StrategyEngine.from_state(self.config, saved)
                log.info("strategy state restored market=%s", self.market)
            except (ValueError, KeyError) as exc:
                log.warning("strategy state not usable (%s): starting fresh", exc)
        if self.report is not None:
            for out in self.report.outcomes:
                if out.intent.market == self.market:
                    self.strategy.on_order_result(out.intent, out.filled_volume, out.avg_price, out.ts_ms)
                    log.info(
                        "decision outcome recovered intent_id=%s filled=%s avg_price=%s",
                        out.intent.intent_id,
                        out.filled_volume,
                        out.avg_price,
                    )
        await self.save_state()
        return self.report

    # ---- the loop -------------------------------------------------------------------------
    async def run(self) -> LoopStats:
        """start(), then consume the market stream until stopped; always shuts down cleanly."""
        previous_switch = sys.getswitchinterval()
        if self.gil_switch_interval_s is not None:
            sys.setswitchinterval(self.gil_switch_interval_s)
        try:
            return await self._run()
        finally:
            sys.setswitchinterval(previous_switch)
            if self.freeze_gc:
                gc.unfreeze()  # a process that runs loops again (flow retries, tests) collects them

    async def _run(self) -> LoopStats:
        await self.start()
        warm = getattr(self.om.exchange, "keep_order_connection_warm", None)
        if warm is not None:
            warm()  # the first order must not wait for a connection either
        if self.freeze_gc:
            # Everything alive now (modules, the SDK, SQLAlchemy's mappers, the strategy, the
            # ledger) lives as long as the loop. Frozen, a full collection no longer walks it: a
            # gen-2 pass over the start-up heap stalled the loop 40–70 ms (bench/live_latency.py),
            # an order sent in that window waits for it.
            gc.collect()
            gc.freeze()
        tasks: list[asyncio.Task[Any]] = []
        if self.order_events is not None:
            tasks.append(asyncio.create_task(self._pump_order_events(), name="order-events"))
        if self.om.balances is not None:
            # the sell's free-balance guard reads this cache instead of REST when it is fresh
            self.om.schedule_balance_refresh()
            tasks.append(asyncio.create_task(self.om.keep_balances_fresh(), name="balance-refresh"))
        consume = asyncio.create_task(self._consume(), name="market-stream")
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        waiters: list[asyncio.Task[Any]] = [consume, stopper]
        if self.max_runtime_s is not None:
            waiters.append(asyncio.create_task(asyncio.sleep(self.max_runtime_s), name="max-runtime"))
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if consume in done and consume.exception() is not None:
                raise consume.exception()  # type: ignore[misc]
            if consume in done:
                self.stop_reason = self.stop_reason or "market stream ended"
            elif stopper not in done:
                self.stop_reason = "max runtime reached"
        finally:
            for t in [*waiters, *tasks]:
                t.cancel()
            for t in [*waiters, *tasks]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await self.shutdown()
            if self.tick_hook is not None:
                await self.tick_hook.close()
        return self.stats

    async def _consume(self) -> None:
        n = 0
        hook = self.tick_hook
        async for event in self.market_stream:
            if isinstance(event, Tick):
                if hook is not None:
                    await hook.before(event)
                intents = await self.on_tick(event)
                if self._stop.is_set():
                    return
                if hook is not None:
                    await hook.after(event)
                elif intents:
                    await self._until_requests_out(intents)
                n += 1
                # a burst of buffered frames is consumed without ever suspending: yield so the
                # order tasks (and finished DB writes) run now, not after the burst
                if self.inflight or n % 64 == 0:
                    await asyncio.sleep(0)
            else:
                self.om.notify(event)

    async def _until_requests_out(self, intents: list[Intent]) -> None:
        """Hold the next tick until this tick's order requests are written out (bounded).

        See `trader.upbit.client.order_request_out`: without this, each suspension on the order's
        way through httpx lets one more buffered tick run first. The wait ends when the request is
        out, when the order task ends (rejected, or a client that does not signal), or after
        `request_out_wait_s` — sizing that waits on a balance read, or a rate-limit pause, must
        not stall the market stream."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_out_wait_s
        for intent in intents:
            out = self._request_out.pop(intent.intent_id, None)
            task = self.inflight.get(intent.intent_id)
            if out is None or task is None or out.is_set():
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waiter = asyncio.ensure_future(out.wait())
            await asyncio.wait([waiter, task], timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        for intent in intents:
            self._request_out.pop(intent.intent_id, None)

    async def _pump_order_events(self) -> None:
        assert self.order_events is not None
        try:
            async for event in self.order_events:
                self.om.notify(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # fills are still followed by REST polling
            log.warning("private order stream stopped (%s): following orders by polling", type(exc).__name__)

    async def on_tick(self, tick: Tick) -> list[Intent]:
        """One tick: decide, start the orders, keep the cadence jobs going. Never waits for a fill."""
        t0 = time.perf_counter_ns()
        if tick.market != self.market:
            self.stats.ignored += 1
            return []
        self.stats.ticks += 1
        self.stats.last_tick_ts_ms = tick.ts_ms
        self.last_price = tick.price
        om = self.om
        om.note_market_time(tick.ts_ms)  # wakes a limit order whose market-time timeout is due
        intents = self.strategy.on_tick(tick, self.strategy_view())
        if intents and self.inflight:
            # a resting take-profit does not block decisions (so a stop can fire), but the
            # strategy keeps re-emitting it until its result arrives: it is already being executed
            intents = [i for i in intents if i.intent_id not in self.inflight]
        for intent in intents:
            self.stats.decisions += 1
            log.info(
                "decision=%s reason=%s intent_id=%s price=%s krw=%s volume=%s limit_price=%s",
                intent.kind.value,
                intent.reason,
                intent.intent_id,
                tick.price,
                _plain(intent.krw),
                _plain(intent.volume),
                _plain(intent.limit_price),
            )
            if self.observers.on_decision:
                self.observers.on_decision(tick, intent)
            # lockstep settles the whole tick before its ack (the tick hook); otherwise the next
            # tick waits for the request to be out (_until_requests_out)
            out = None
            if self.tick_hook is None:
                out = self._request_out[intent.intent_id] = asyncio.Event()
            task = asyncio.create_task(
                self._execute(intent, tick, t0, out), name=f"intent-{intent.intent_id}"
            )
            self.inflight[intent.intent_id] = task
        if tick.ts_ms >= self._next_equity_ms and not self._equity_busy:
            # one point at a time: on a fast replay market time outruns the database, and a
            # backlog of writes would delay everything queued behind them (order confirmations)
            self._next_equity_ms = tick.ts_ms + self.equity_every_ms
            self._equity_busy = True
            self._spawn(self._equity_point(tick))
        if self.stop_at_ms is not None and tick.ts_ms >= self.stop_at_ms:
            self.stop("until-ts reached")
        now = time.monotonic()
        if self.observers.on_status and now - self._last_status >= self.status_every_s:
            self._last_status = now
            self.observers.on_status(self.status())
        return intents

    def strategy_view(self) -> PositionView:
        """The position view the strategy decides on (also the lockstep hook's quiet band's)."""
        om = self.om
        pending = False
        if self.inflight:
            # a resting take-profit must not silence the stop-loss: only other orders block
            resting = om.resting_sell_intents(self.market)
            pending = any(iid not in resting for iid in self.inflight)
        return self.portfolio.view(self.market, pending=pending, krw_reserved=om.reserved_krw())

    async def _execute(
        self, intent: Intent, tick: Tick, t0: int, request_out: asyncio.Event | None = None
    ) -> ExecutionResult | None:
        result: ExecutionResult | None = None
        if request_out is not None:
            order_request_out.set(request_out.set)  # this task's own context: its orders only
        try:
            order = await self.om.submit_intent_fast(intent, last_price=Decimal(repr(tick.price)), tick_ns=t0)
            if order.sent_ns:
                self.stats.orders += 1
                self.stats.latencies_ns.append(order.sent_ns - t0)
            if self.observers.on_order:
                self.observers.on_order(order)
            # the decision's state is saved once its order is out: a save started earlier would
            # contend with recording the order for the database's write lock (and a crash before
            # it only re-emits the same intent id, which the identifier makes harmless)
            await self.save_state()
            result = await self._confirm(order)
        except asyncio.CancelledError:
            # shutdown while in flight: the order stays recorded; the next start reconciles it
            log.warning("in-flight order abandoned at shutdown intent_id=%s", intent.intent_id)
            raise
        except Exception as exc:  # the loop must survive; the order is recorded
            self.stats.errors += 1
            log.exception("order failed intent_id=%s error=%s", intent.intent_id, type(exc).__name__)
            await self._log_event("order.error", f"{intent.intent_id}: {type(exc).__name__}", level="error")
            return None
        finally:
            self.inflight.pop(intent.intent_id, None)
        log.info(
            "result intent_id=%s status=%s filled=%s avg_price=%s fees=%s note=%s",
            intent.intent_id,
            result.status,
            _plain(result.filled_volume),
            _plain(result.avg_price),
            _plain(result.fees),
            result.note,
        )
        # the strategy's clock is market time (trade timestamps), not the wall clock
        market_ts = self.stats.last_tick_ts_ms or result.ts_ms
        if self.tick_hook is not None:
            # lockstep: the task may finish (a poll or a myOrder event) before the tick whose trade
            # filled the order reaches the loop; the backtest reports it at that trade's time
            market_ts = max([market_ts, *(f.ts_ms for o in result.orders for f in o.fills)])
        self.strategy.on_order_result(intent, result.filled_volume, result.avg_price, market_ts)
        if self.observers.on_result:
            self.observers.on_result(result)
        await self.save_state()
        return result

    def _on_fill(self, fill: Fill, effect: Any) -> None:
        self.stats.fills += 1
        if self.observers.on_fill:
            self.observers.on_fill(fill, effect)

    # ---- persistence ---------------------------------------------------------------------
    async def save_state(self) -> None:
        """Persist the strategy state as it is now (or newer): saves coalesce, never pile up.

        The state is taken inside the lock, so an older state never overwrites a newer one, and a
        caller that finds its request already covered by a save that started after it returns at
        once — a backlog of saves on a fast replay would otherwise delay every order confirmation
        queued behind it.
        """
        self._state_dirty = True
        async with self._state_lock:
            if not self._state_dirty:
                return  # a save that began after our request has written our state already
            self._state_dirty = False
            state = self.strategy.state_dict()
            await asyncio.to_thread(self.repo.save_strategy_state, self.state_name, state, self.clock())

    async def _equity_point(self, tick: Tick) -> None:
        pf = self.portfolio
        price = Decimal(repr(tick.price))
        pos = pf.position(self.market)
        equity = pf.equity({self.market: price})
        try:
            await asyncio.to_thread(
                self.repo.add_equity_point, tick.ts_ms, self.market, price, pf.krw, pos.volume, equity
            )
            await asyncio.to_thread(self.repo.save_positions, [pos], tick.ts_ms)
        except Exception:  # a lost equity point must not stop trading
            log.exception("equity point failed")
        finally:
            self._equity_busy = False
        await self.save_state()  # indicators/peak move with every tick: keep the saved copy fresh

    async def _log_event(self, kind: str, message: str, level: str = "info") -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.repo.log_event, self.clock(), kind, message, None, level)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def status(self) -> dict[str, Any]:
        pf = self.portfolio
        pos = pf.position(self.market)
        return {
            "market": self.market,
            "ticks": self.stats.ticks,
            "decisions": self.stats.decisions,
            "orders": self.stats.orders,
            "fills": self.stats.fills,
            "errors": self.stats.errors,
            "last_price": self.last_price,
            "last_tick_ts_ms": self.stats.last_tick_ts_ms,
            "krw": str(pf.krw),
            "volume": str(pos.volume),
            "avg_buy_price": str(pos.avg_buy_price),
            "in_flight": sorted(self.inflight),
        }

    # ---- shutdown ------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Wait (bounded) for in-flight orders, then save state and flush background writes."""
        pending = [t for t in self.inflight.values() if not t.done()]
        if pending:
            log.info("waiting for %d in-flight order(s) up to %.0fs", len(pending), self.shutdown_grace_s)
            _done, still = await asyncio.wait(pending, timeout=self.shutdown_grace_s)
            for t in still:
                t.cancel()
            for t in still:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await self.save_state()
        self.om.close()
        if self.observers.on_status:
            self.observers.on_status({**self.status(), "stopped": self.stop_reason})
        log.info(
            "stopped reason=%s ticks=%d orders=%d", self.stop_reason, self.stats.ticks, self.stats.orders
        )


def trading_streams(
    market: str, ws_url: str, private_ws_url: str, keys: tuple[str, str], rest: Any
) -> tuple[Any, Any]:
    """The two WebSocket streams a trading loop needs: public trades of its market (gaps
    backfilled from `rest`) and the private order/asset events.

    myAsset matters for latency as well as correctness: a balance change voids the order
    manager's free-balance cache at once, so a sell rarely needs a REST read before it goes out.
    """
    from trader.upbit.ws import UpbitWebSocket, subscription

    public = UpbitWebSocket(ws_url, subscriptions=[subscription("trade", [market])], rest=rest)
    private = UpbitWebSocket(
        private_ws_url,
        subscriptions=[subscription("myOrder", [market]), subscription("myAsset")],
        private_auth=keys,
    )
    return public, private
