"""OrderManager: an intent becomes an order; its fills are followed, recorded, then booked.

Rules this module enforces (see DESIGN.md):
- every order carries `identifier` derived from the intent (attempt 0) or from the intent plus
  an attempt number (re-price / fallback orders), recorded BEFORE the request goes out, so a
  retry or a restart can never double it (on the loop's thread through the repository's
  `order_journal()` when it has one — a WAL commit that survives kill -9 — else through
  `repo.record_order` on a worker thread);
- `RetryableError` on send → retry with the same identifier after `retry_after`;
  `AmbiguousOrderError` → the order is IN_DOUBT: look it up by identifier, and only when it is
  still not found after a grace period re-send with the SAME identifier (a duplicate is refused
  by the exchange with `duplicated_identifier`, which means "it exists: look it up");
- every fill is committed (`repo.record_fill`) BEFORE `portfolio.apply_fill`;
- a market sell first cancels our resting sells of the market and is sized from the exchange's
  free balance (sizing.py), taken from the balance cache when it is known fresh (balances.py)
  and read over REST otherwise; `insufficient_funds_*` re-reads REST and resizes once;
  a market buy ending `cancel` with executed volume is filled.

Limit-order timeouts (`timeout_s`) are counted in MARKET time (the last tick's ts_ms, through
`market_clock`) when the manager has one, as the backtest counts them: live (market ≈ wall time),
paper at any replay speed and the backtest then mean the same thing. A wall-clock safety net
(`limit_wall_limit_s`) still ends the wait when the feed stalls. Without a market clock the
timeout is wall time, as before.

`submit_intent_fast` only records and sends (the latency-critical half: a stop must reach the
exchange within 100 ms of its tick); `confirm` waits for the outcome, records fills and applies
the limit-order timeout policy. `execute` is both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from trader.domain import Fill, Intent, IntentKind, OrderSnapshot, OrdType, Side
from trader.execution import policy
from trader.execution.balances import DEFAULT_MAX_AGE_S, BalanceCache, currencies_of
from trader.execution.crashpoints import crashpoint
from trader.execution.journal import OrderRecorder
from trader.execution.orders import ExecutionResult, ManagedOrder
from trader.execution.policy import attempt_identifier
from trader.execution.ports import PortfolioPort, RepositoryPort
from trader.execution.retry import retrying
from trader.execution.states import (
    REPO_STATE,
    Ambiguous,
    Canceled,
    CancelRequested,
    Filled,
    InvalidOrderTransition,
    OrderStatus,
    Rejected,
    Submitted,
    event_for_snapshot,
)
from trader.upbit.client import ExchangeClient
from trader.upbit.errors import (
    AmbiguousOrderError,
    DuplicateIdentifierError,
    FinalError,
    InsufficientFundsError,
    OrderNotFoundError,
    RetryableError,
    UpbitError,
    redact,
)
from trader.upbit.events import MyAssetEvent
from trader.upbit.rules import FEE_RATE, MIN_ORDER_KRW

log = logging.getLogger("trader.execution")

DEFAULT_LIMIT_TIMEOUT_S = 30.0
_RESTING = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
# Wall-clock safety net of a limit order timed by market time: a feed that stalls (a dropped
# WebSocket, a paused replay, a market without trades) must not leave the order resting forever.
# Generous on purpose: paper lockstep pauses the replay while orders are handled (wall time
# passes, market time does not), and live the market clock runs at wall speed anyway.
LIMIT_WALL_FACTOR = 5.0
LIMIT_WALL_MARGIN_S = 60.0
_NEVER = 1 << 62  # a market time no tick reaches (no market deadline pending)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def limit_wall_limit_s(
    timeout_s: float, factor: float = LIMIT_WALL_FACTOR, margin_s: float = LIMIT_WALL_MARGIN_S
) -> float:
    """Wall seconds after which a limit order timed by market time is cancelled anyway:
    max(factor × timeout_s, timeout_s + margin_s) — 600 s for 120 s, 62 s for 2 s."""
    timeout_s = max(timeout_s, 0.0)
    return max(factor * timeout_s, timeout_s + margin_s)


FillHook = Callable[[Fill, Any], None]


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """How the order manager waits and retries (the policy's rules are in policy.py)."""

    fee_rate: Decimal = FEE_RATE
    min_order_krw: Decimal = MIN_ORDER_KRW
    poll_interval_s: float = 0.5  # REST poll of a resting order when no myOrder event comes
    market_poll_s: float = 0.02  # first poll of a market order (doubles up to poll_interval_s)
    market_timeout_s: float = 60.0  # a market order not final by then is logged (and followed on)
    ambiguous_grace_s: float = 2.0  # an order in doubt absent this long was never placed
    max_send_retries: int = 8
    max_reprices: int = policy.MAX_REPRICES
    default_limit_timeout_s: float = DEFAULT_LIMIT_TIMEOUT_S
    balance_max_age_s: float | None = DEFAULT_MAX_AGE_S  # None: read REST before every sell
    fast_record: bool = True  # record-before-send on the loop's thread when the storage can
    limit_wall_factor: float = LIMIT_WALL_FACTOR
    limit_wall_margin_s: float = LIMIT_WALL_MARGIN_S


class OrderManager:
    """Turns intents into orders on an `ExchangeClient` and books their fills exactly once."""

    def __init__(
        self,
        exchange: ExchangeClient,
        repo: RepositoryPort,
        portfolio: PortfolioPort,
        *,
        namespace: str = "",
        clock: Callable[[], int] = wall_ms,
        settings: ExecutionSettings | None = None,
        price_source: Callable[[str], Decimal | None] | None = None,
        on_fill: FillHook | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        market_clock: Callable[[], int | None] | None = None,
        **overrides: Any,
    ) -> None:
        """`settings` (or single settings given as keywords, e.g. `poll_interval_s=0.05`) tune the
        waits and retries; `market_clock` (market time in ms: the last tick's ts_ms, None before
        any tick) makes limit timeouts count in market time; `note_market_time` wakes them."""
        self.exchange = exchange
        self.repo = repo
        self.portfolio = portfolio
        self.namespace = namespace
        self.clock = clock
        self.settings = replace(settings or ExecutionSettings(), **overrides)
        self.price_source = price_source
        self.on_fill = on_fill
        self._sleep = sleep
        self.market_clock = market_clock
        self._market_deadlines: dict[ManagedOrder, int] = {}
        self._next_market_deadline = _NEVER
        self._by_identifier: dict[str, ManagedOrder] = {}
        self._by_uuid: dict[str, ManagedOrder] = {}
        self._chains: dict[int, list[ManagedOrder]] = {}  # a resized order -> all orders of its intent
        self.sent_log: list[tuple[int, int]] = []  # (tick_ns, sent_ns) per order, for the bench
        # free balances known fresh (None = always read REST before a sell), see balances.py
        max_age = self.settings.balance_max_age_s
        self.balances: BalanceCache | None = BalanceCache(max_age) if max_age is not None else None
        self._balance_refresh: asyncio.Task[None] | None = None
        self._refresh_again = False
        # record-before-send on the loop's thread (a dedicated SQLite connection), when the
        # repository offers one; the worker-thread `record_order` stays the fallback
        self.recorder = OrderRecorder(repo, fast=self.settings.fast_record)

    # ---- public API ------------------------------------------------------------------------
    @property
    def open_orders(self) -> list[ManagedOrder]:
        return [o for o in self._by_identifier.values() if not o.is_final]

    def resting_sell_intents(self, market: str) -> set[str]:
        """Intents whose only open orders are limit sells resting on the book (accepted, maybe
        partly filled). Such an intent must not block a protective exit: a market sell cancels
        them first (`superseded`), so the strategy may still decide while they rest."""
        resting: set[str] = set()
        busy: set[str] = set()
        for o in self._by_identifier.values():
            if o.market != market or o.is_final:
                continue
            if o.side is Side.ASK and o.ord_type is OrdType.LIMIT and o.status in _RESTING:
                resting.add(o.intent.intent_id)
            else:
                busy.add(o.intent.intent_id)
        return resting - busy

    def reserved_krw(self, market: str | None = None) -> Decimal:
        """KRW locked by our in-flight buys (so the strategy does not spend it twice)."""
        total = Decimal(0)
        for o in self.open_orders:
            if o.side is Side.BID and (market is None or o.market == market):
                if o.ord_type is OrdType.PRICE:
                    total += (o.price or 0) - o.funds
                else:
                    total += (o.price or 0) * ((o.volume or 0) - o.executed_volume)
        return total * (1 + self.settings.fee_rate)

    def track(self, order: ManagedOrder) -> None:
        """Follow an order built elsewhere (reconcile's orders of a previous life)."""
        self._by_identifier[order.identifier] = order
        if order.uuid:
            self._by_uuid[order.uuid] = order

    async def reject_unseen(self, order: ManagedOrder, reason: str) -> None:
        """The exchange has no such order (after a grace period): it was never placed."""
        if order.fsm.can_apply(Rejected()):
            await self._reject(order, reason)
        else:
            # an order we saw accepted that the exchange no longer knows: a different account or
            # a reset simulator. Nothing can be booked for it; close it loudly.
            order.error = f"{reason} (was {order.status.value})"
            log.error("order vanished identifier=%s status=%s", order.identifier, order.status.value)
            await asyncio.to_thread(
                self.repo.mark_order,
                order.identifier,
                state="rejected",
                error=order.error,
                ts_ms=self.clock(),
            )
        self._by_identifier.pop(order.identifier, None)

    async def execute(self, intent: Intent, *, last_price: Decimal | None = None) -> ExecutionResult:
        """Send the intent's order and wait for its outcome (submit_intent_fast + confirm)."""
        order = await self.submit_intent_fast(intent, last_price=last_price)
        return await self.confirm(order)

    async def submit_intent_fast(
        self, intent: Intent, *, last_price: Decimal | None = None, tick_ns: int = 0
    ) -> ManagedOrder:
        """Size, record and send the first order of `intent`; returns its snapshot-bearing order."""
        order = await self._plan(intent, 0, last_price=last_price)
        order.tick_ns = tick_ns
        order.planned_ns = time.perf_counter_ns()
        await self._submit(order)
        if (
            order.status is OrderStatus.REJECTED
            and isinstance(order.error, str)
            and "insufficient" in order.error
        ):
            # our view of the free balance was stale: re-read the exchange and resize once
            if self.balances is not None:
                self.balances.invalidate(*currencies_of(intent.market))
            retry = await self._plan(intent, 1, last_price=last_price, fresh_balances=True)
            retry.tick_ns = tick_ns
            retry.planned_ns = time.perf_counter_ns()
            await self._submit(retry)
            retry.note = f"resized after {order.error}"
            self._chain(order, retry)
            return retry
        return order

    async def confirm(self, order: ManagedOrder) -> ExecutionResult:
        """Follow `order` to a final state, book its fills and apply the timeout policy."""
        orders = list(self._chain_of(order))
        current = orders[-1]
        intent = current.intent
        reprices = 0
        while True:
            if not current.is_final:
                if current.ord_type is OrdType.LIMIT:
                    default = self.settings.default_limit_timeout_s
                    timeout = intent.timeout_s if intent.timeout_s is not None else default
                    await self.wait_for_limit_order(current, timeout)
                else:
                    await self._wait_final(current, self.settings.market_timeout_s)
            nxt = await self._fallback(current, orders, reprices)
            if nxt is None:
                break
            if nxt.ord_type is OrdType.LIMIT:
                reprices += 1
            orders.append(nxt)
            current = nxt
        return self._result(intent, orders)

    async def wait_for_limit_order(self, order: ManagedOrder, timeout_s: float) -> ManagedOrder:
        """Wait until the order is final or `timeout_s` passes (then cancel it and wait for final).

        myOrder events (`notify`) wake the wait early; REST `get_order` is the truth, polled at
        `poll_interval_s` as the fallback when no event comes. With a market clock `timeout_s`
        is market time since the order went out (see `_wait_limit_market`).
        """
        if self.market_clock is not None:
            await self._wait_limit_market(order, timeout_s, self.market_clock)
            if not order.is_final:
                await self.cancel(order)
            return order
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        while not order.is_final:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await self._park(order, min(self.settings.poll_interval_s, remaining))
            await self.refresh(order)
        if not order.is_final:
            await self.cancel(order)
        return order

    async def _wait_limit_market(
        self, order: ManagedOrder, timeout_s: float, market_clock: Callable[[], int | None]
    ) -> None:
        """Wait until final, or market time reaches sent + timeout_s (the backtest's rule: timed
        out on the first trade at or after the deadline), or the wall safety net passes.

        The deadline counts from the market time when the order went out; an order sent before
        any tick counts from the first market time seen. Ticks wake the wait through
        `note_market_time` once the deadline is reached; every wake and poll re-reads the clock.
        """
        loop = asyncio.get_running_loop()
        cfg = self.settings
        wall_s = limit_wall_limit_s(timeout_s, cfg.limit_wall_factor, cfg.limit_wall_margin_s)
        wall_limit = loop.time() + wall_s
        start = order.sent_market_ms
        deadline: int | None = None
        try:
            while not order.is_final:
                now_ms = market_clock()
                if deadline is None:
                    origin = start if start is not None else now_ms
                    deadline = None if origin is None else policy.limit_deadline_ms(origin, timeout_s, 0.0)
                if deadline is not None:
                    if policy.timed_out(now_ms, deadline):
                        break
                    if order not in self._market_deadlines:  # (again) ask to be woken by a tick
                        self._market_deadlines[order] = deadline
                        self._next_market_deadline = min(self._next_market_deadline, deadline)
                remaining = wall_limit - loop.time()
                if remaining <= 0:
                    log.warning(
                        "limit order timed out by the wall clock (market time stalled) identifier=%s",
                        order.identifier,
                    )
                    break
                await self._park(order, min(self.settings.poll_interval_s, remaining))
                await self.refresh(order)
        finally:
            if self._market_deadlines.pop(order, None) is not None:
                self._next_market_deadline = min(self._market_deadlines.values(), default=_NEVER)

    # -- added by helper C (lockstep fast-forward, trader/sim/lockstep_sync.py): read-only accessor
    def next_market_deadline(self) -> int:
        """The earliest market time (ms) at which a waiting limit order times out (a huge value
        when none waits): the lockstep quiet band never reaches past it."""
        return self._next_market_deadline

    def note_market_time(self, ts_ms: int) -> None:
        """The market clock moved to `ts_ms` (called per tick: an int compare unless a limit
        order's market deadline is reached, whose wait is then woken at once)."""
        if ts_ms >= self._next_market_deadline:
            due = [o for o, d in self._market_deadlines.items() if d <= ts_ms]
            for o in due:
                del self._market_deadlines[o]
                o.wake.set()
            self._next_market_deadline = min(self._market_deadlines.values(), default=_NEVER)

    async def cancel(self, order: ManagedOrder) -> ManagedOrder:
        """Cancel and wait until the exchange reports the order final (cancel is asynchronous)."""
        if order.is_final:
            return order
        if order.fsm.can_apply(CancelRequested()):
            order.fsm.apply(CancelRequested(self.clock()))
            await self._mark(order)
        crashpoint("before_cancel")
        if order.uuid or order.identifier:
            try:
                await self._retrying(
                    lambda: self.exchange.cancel_order(
                        uuid=order.uuid, identifier=None if order.uuid else order.identifier
                    )
                )
            except OrderNotFoundError:
                pass
            except FinalError as exc:  # e.g. already done: the refresh below tells
                log.info("cancel refused identifier=%s error=%s", order.identifier, redact(str(exc)))
        crashpoint("after_cancel")
        await self._wait_final(order, self.settings.market_timeout_s)
        return order

    async def refresh(self, order: ManagedOrder) -> ManagedOrder:
        """Fetch the order (with its trades) and book whatever is new."""
        if order.is_final:
            return order
        try:
            if order.uuid:
                snap = await self._retrying(lambda: self.exchange.get_order(uuid=order.uuid))
            else:
                snap = await self._retrying(lambda: self.exchange.get_order(identifier=order.identifier))
        except OrderNotFoundError:
            return order
        await self.ingest(order, snap)
        return order

    def notify(self, event: Any) -> None:
        """A private-WS myOrder event (dict, SIMPLE or DEFAULT keys, or an object): wake its order.

        A myAsset event says balances changed: the cached ones are dropped and re-read in the
        background (never installed from the event itself, which may predate our last order)."""
        if isinstance(event, MyAssetEvent):
            if self.balances is not None:
                self.balances.invalidate(*(a[0] for a in event.assets))
                self.schedule_balance_refresh()
            return
        uid = _field(event, "uuid", "uid")
        ident = _field(event, "identifier", "id")
        order = (self._by_uuid.get(uid) if uid else None) or (
            self._by_identifier.get(ident) if ident else None
        )
        if order is not None:
            order.wake.set()

    async def pump(self, queue: asyncio.Queue[Any]) -> None:
        """Consume myOrder events from the private WebSocket forever (run as a task)."""
        while True:
            self.notify(await queue.get())

    async def ingest(self, order: ManagedOrder, snap: OrderSnapshot) -> None:
        """Book the new fills of a snapshot, then move the state machine and persist the state."""
        if snap.uuid and order.uuid != snap.uuid:
            order.uuid = snap.uuid
            self._by_uuid[snap.uuid] = order
        order.snapshot = snap
        for fill in snap.trades:
            if fill.trade_uuid not in order.seen_trades:
                await self._book_fill(order, fill)
        event = event_for_snapshot(snap, self.clock())
        executed = snap.executed_volume or Decimal(0)
        if event_final(event) and order.executed_volume < executed:
            # final report without (all) its trades (create/cancel responses carry none): fetch
            for _ in range(20):
                full = await self._retrying(lambda: self.exchange.get_order(uuid=snap.uuid))
                for fill in full.trades:
                    if fill.trade_uuid not in order.seen_trades:
                        await self._book_fill(order, fill)
                if order.executed_volume >= executed:
                    break
                await self._sleep(self.settings.market_poll_s)
        if order.is_final:
            return  # a late report of an order we already closed
        before = order.status
        try:
            order.fsm.apply(event)
        except InvalidOrderTransition:
            log.warning(
                "ignored stale report identifier=%s status=%s state=%s", order.identifier, before, snap.state
            )
            return
        if order.status is not before or order.is_final or order.fills:
            await self._mark(order)
        if order.is_final:
            crashpoint("after_mark_final")
            # balances are settled (a cancel unlocks, a fill moves them): re-read them now, off
            # the latency path, for the next sell
            if self.balances is not None:
                self.balances.invalidate(*currencies_of(order.market))
                self.schedule_balance_refresh()

    # ---- planning -----------------------------------------------------------------------------
    async def _plan(
        self,
        intent: Intent,
        attempt: int,
        *,
        last_price: Decimal | None,
        fresh_balances: bool = False,
        step: policy.NextStep | None = None,
    ) -> ManagedOrder:
        """Build the next order of an intent (attempt n), sized by the execution policy against
        what is really free: the exchange's free coin for a sell, after the resting sells this
        sell supersedes are cancelled (`policy.supersedes`)."""
        identifier = policy.attempt_identifier(intent, self.namespace, attempt)
        market = intent.market
        if intent.kind is IntentKind.BUY:
            krw_free = await self._krw_free(market, fresh_balances)
            coin_free = Decimal(0)
        else:
            krw_free = Decimal(0)
            coin_free, locked = await self._coin_balance(market, fresh_balances)
            if locked > 0:
                # coin locked in our resting sells: this sell supersedes them, cancel them first
                await self._cancel_resting_sells(intent)
                coin_free, locked = await self._coin_balance(market, fresh=True)
        price_ref = last_price or (self.price_source(market) if self.price_source else None)
        plan = policy.plan_order(
            intent,
            krw_free=krw_free,
            coin_free=coin_free,
            price_ref=price_ref,
            remaining=step.remaining if step else None,
            ord_type=step.ord_type if step else None,
            limit_price=step.limit_price if step else None,
            fee_rate=self.settings.fee_rate,
            min_krw=self.settings.min_order_krw,
        )
        order = ManagedOrder(
            intent, identifier, attempt, plan.side, plan.ord_type,
            plan.price, plan.volume, note=plan.note,
        )  # fmt: skip
        if not plan.ok:
            order.fsm.apply(Rejected(self.clock(), plan.note))
            order.error = plan.refused
        return order

    async def _krw_free(self, market: str, fresh: bool) -> Decimal:
        if fresh:
            balances = await self.read_balances()
            krw = balances.get("KRW")
            return krw.balance if krw else Decimal(0)
        return Decimal(self.portfolio.krw) - self.reserved_krw()

    async def _coin_balance(self, market: str, fresh: bool = False) -> tuple[Decimal, Decimal]:
        """(free, locked) coin of `market` as the exchange reports it: from the cache when it is
        known fresh and no order of ours on the market is open, else by a REST read now."""
        currency = currencies_of(market)[1]
        if not fresh and self.balances is not None and not self._market_busy(market):
            hit = self.balances.get(currency)
            if hit is not None:
                return hit
        balances = await self.read_balances()
        row = balances.get(currency)
        return (row.balance, row.locked) if row else (Decimal(0), Decimal(0))

    def _market_busy(self, market: str) -> bool:
        return any(o.market == market and not o.is_final for o in self._by_identifier.values())

    async def read_balances(self) -> dict[str, Any]:
        """REST `accounts()` (retried), installed in the cache unless something changed meanwhile."""
        token = self.balances.begin_read() if self.balances is not None else None
        balances: dict[str, Any] = await self._retrying(self.exchange.accounts)
        if self.balances is not None and token is not None:
            self.balances.install(balances, token)
        return balances

    def schedule_balance_refresh(self) -> None:
        """Re-read balances in the background (one refresh at a time; no-op without a cache)."""
        if self.balances is None:
            return
        if self._balance_refresh is not None and not self._balance_refresh.done():
            self._refresh_again = True
            return
        self._refresh_again = False
        self._balance_refresh = asyncio.get_running_loop().create_task(
            self._refresh_balances(), name="balance-refresh"
        )

    async def _refresh_balances(self) -> None:
        assert self.balances is not None
        for _ in range(4):  # a read voided by a concurrent change is retried a few times
            self._refresh_again = False
            token = self.balances.begin_read()
            try:
                balances = await self._retrying(self.exchange.accounts, attempts=3)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next sell reads REST itself: nothing is lost
                log.info("background balance refresh failed error=%s", redact(str(exc)))
                return
            if self.balances.install(balances, token) and not self._refresh_again:
                return

    async def keep_balances_fresh(self, every_s: float | None = None) -> None:
        """Refresh the cache periodically (run as a task) so a sell rarely meets a stale entry."""
        if self.balances is None:
            return
        period = every_s if every_s is not None else self.balances.max_age_s / 2
        while True:
            await asyncio.sleep(period)
            self.schedule_balance_refresh()

    async def _cancel_resting_sells(self, intent: Intent) -> None:
        """Free the volume locked in our own resting sells that the sell `intent` supersedes.

        Ours are the ones this manager follows (`policy.supersedes`) plus any other order carrying
        our identifier prefix that the exchange lists as open — a resting sell from before a
        restart (a user's manual orders are left alone).
        """
        market = intent.market
        for order in list(self._by_identifier.values()):
            resting_sell = order.side is Side.ASK and order.ord_type is OrdType.LIMIT
            if resting_sell and not order.is_final and policy.supersedes(intent, order.intent):
                order.superseded = True
                await self.cancel(order)
        resting = await self._retrying(lambda: self.exchange.open_orders(market))
        mine = [o for o in resting if o.side is Side.ASK and (o.identifier or "").startswith("at-")]
        for snap in mine:
            order = self._by_uuid.get(snap.uuid) or (
                self._by_identifier.get(snap.identifier) if snap.identifier else None
            )
            if order is None:
                # a resting sell from before a restart: follow it just long enough to book its fills
                order = self._adopt_snapshot(snap)
            elif not policy.supersedes(intent, order.intent):
                continue  # one of this intent's own orders
            order.superseded = True
            await self.cancel(order)

    def _adopt_snapshot(self, snap: OrderSnapshot) -> ManagedOrder:
        intent = Intent(
            snap.market, IntentKind.SELL_PARTIAL, "adopted resting order", 0, snap.identifier or snap.uuid
        )
        order = ManagedOrder(
            intent, snap.identifier or snap.uuid, 0, snap.side, snap.ord_type, snap.price, snap.volume
        )
        order.fsm.apply(Submitted())
        order.uuid = snap.uuid
        self._by_uuid[snap.uuid] = order
        if snap.identifier:
            self._by_identifier[snap.identifier] = order
        return order

    # ---- sending ------------------------------------------------------------------------------
    async def _submit(self, order: ManagedOrder) -> None:
        """Record, then send with retries; the order ends ACCEPTED/FILLED/…, IN_DOUBT or REJECTED."""
        if order.status is OrderStatus.REJECTED:
            log.info(
                "order refused locally intent_id=%s reason=%s note=%s",
                order.intent.intent_id,
                order.intent.reason,
                order.note,
            )
            return
        intent = order.intent
        self._by_identifier[order.identifier] = order
        crashpoint("before_record_order")
        args = (
            order.identifier,
            intent.intent_id,
            intent.market,
            order.side.value,
            order.ord_type.value,
            order.price if order.ord_type is OrdType.LIMIT else None,
            order.volume,
            order.price if order.ord_type is OrdType.PRICE else None,
            intent.reason,
            self.clock(),
            intent.trigger_price,
        )
        order.record_path = await self.recorder.record(args)
        order.recorded_ns = time.perf_counter_ns()
        order.fsm.apply(Submitted(self.clock()))
        if self.balances is not None:
            # from now on the exchange's balances may move under this order: stop trusting ours
            self.balances.invalidate(*currencies_of(order.market))
        crashpoint("before_send")
        await self._send(order)

    def close(self) -> None:
        """Release the order journal's connection and stop the background balance refresh."""
        self.recorder.close()
        if self._balance_refresh is not None:
            self._balance_refresh.cancel()

    async def _send(self, order: ManagedOrder) -> None:
        retries = 0
        while True:
            order.sent_ns = time.perf_counter_ns()
            if self.market_clock is not None:
                order.sent_market_ms = self.market_clock()
            try:
                snap = await self.exchange.create_order(
                    order.market,
                    order.side,
                    order.ord_type,
                    identifier=order.identifier,
                    price=order.price,
                    volume=order.volume,
                )
            except RetryableError as exc:
                # nothing happened on the exchange: same request, same identifier, a bit later
                retries += 1
                if retries > self.settings.max_send_retries:
                    await self._reject(order, f"gave up after {retries} retries: {exc}")
                    return
                await self._sleep(max(exc.retry_after, min(0.05 * 2**retries, 2.0)))
                order.fsm.apply(Submitted(self.clock()))
                continue
            except DuplicateIdentifierError:
                snap = await self._lookup_existing(order)
            except AmbiguousOrderError as exc:
                order.fsm.apply(Ambiguous(self.clock(), str(exc)))
                await self._mark(order)
                found = await self._resolve(order)
                if found is None:
                    log.warning("order not found after grace, re-sending identifier=%s", order.identifier)
                    order.fsm.apply(Submitted(self.clock()))
                    continue
                snap = found
            except InsufficientFundsError as exc:
                await self._reject(order, f"insufficient funds: {exc.name}")
                return
            except FinalError as exc:
                await self._reject(order, f"{exc.name}: {redact(exc.message)}")
                return
            self.sent_log.append((order.tick_ns, order.sent_ns))
            crashpoint("after_send")
            await self.ingest(order, snap)
            log.info(
                "order sent intent_id=%s identifier=%s side=%s ord_type=%s price=%s volume=%s"
                " uuid=%s status=%s",
                order.intent.intent_id,
                order.identifier,
                order.side.value,
                order.ord_type.value,
                _plain(order.price),
                _plain(order.volume),
                order.uuid,
                order.status.value,
            )
            return

    async def _lookup_existing(self, order: ManagedOrder) -> OrderSnapshot:
        """The exchange says the identifier exists: it must be found (retry until it is)."""
        delay = self.settings.market_poll_s
        while True:
            try:
                return await self._retrying(lambda: self.exchange.get_order(identifier=order.identifier))
            except OrderNotFoundError:
                await self._sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _resolve(self, order: ManagedOrder) -> OrderSnapshot | None:
        """Look an IN_DOUBT order up by identifier; None when absent for the whole grace period."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ambiguous_grace_s
        delay = self.settings.market_poll_s
        while True:
            try:
                return await self.exchange.get_order(identifier=order.identifier)
            except OrderNotFoundError:
                if loop.time() >= deadline:
                    return None
            except (RetryableError, AmbiguousOrderError) as exc:
                # still can't tell: stay in doubt and keep asking (never re-send blindly)
                log.info("order lookup failed identifier=%s error=%s", order.identifier, redact(str(exc)))
            await self._sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _reject(self, order: ManagedOrder, reason: str) -> None:
        order.error = reason
        order.fsm.apply(Rejected(self.clock(), reason))
        await self._mark(order)
        log.warning(
            "order rejected intent_id=%s identifier=%s reason=%s",
            order.intent.intent_id,
            order.identifier,
            reason,
        )

    async def _retrying(self, call: Callable[[], Awaitable[Any]], attempts: int = 12) -> Any:
        return await retrying(call, self._sleep, attempts)

    # ---- following ----------------------------------------------------------------------------
    async def _park(self, order: ManagedOrder, timeout_s: float) -> None:
        """Wait for the order's wake-up or the poll interval, marked `parked` meanwhile (a lockstep
        loop counts a resting order whose task waits with nothing to read as settled)."""
        order.parked = True
        try:
            await self._wait_wake(order, timeout_s)
        finally:
            order.parked = False

    async def _wait_wake(self, order: ManagedOrder, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(order.wake.wait(), timeout)
        order.wake.clear()

    async def _wait_final(self, order: ManagedOrder, timeout_s: float) -> None:
        """Poll (fast, then slower) until final; an order that never finalises stays in flight."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = self.settings.market_poll_s
        while not order.is_final:
            await self.refresh(order)
            if order.is_final:
                return
            if order.status is OrderStatus.IN_DOUBT:
                found = await self._resolve(order)
                if found is not None:
                    await self.ingest(order, found)
                continue
            if loop.time() > deadline:
                log.error("order not final after %.0fs identifier=%s", timeout_s, order.identifier)
                deadline = loop.time() + timeout_s
            await self._wait_wake(order, delay)
            delay = min(delay * 2, self.settings.poll_interval_s)

    async def _book_fill(self, order: ManagedOrder, fill: Fill) -> None:
        """Commit the fill, then apply it to the ledger (in that order: nothing lost on a kill)."""
        if fill.reason != order.intent.reason or fill.identifier != order.identifier:
            fill = replace(fill, reason=order.intent.reason, identifier=order.identifier)
        if self.balances is not None:
            self.balances.invalidate(*currencies_of(order.market))
        crashpoint("before_record_fill")
        new = await asyncio.to_thread(self.repo.record_fill, fill)
        crashpoint("after_record_fill")
        # a fill already stored is already in the ledger (applied then, or by the start-up
        # rebuild from stored fills): applying it again here would book it twice
        effect = self.portfolio.apply_fill(fill) if new else None
        crashpoint("after_apply_fill")
        order.seen_trades.add(fill.trade_uuid)
        order.fills.append(fill)
        pnl = effect.realized_pnl if effect is not None else None
        if pnl is not None:
            await asyncio.to_thread(self.repo.set_fill_pnl, fill.trade_uuid, pnl)
        log.info(
            "fill identifier=%s trade=%s side=%s price=%s volume=%s fee=%s",
            order.identifier,
            fill.trade_uuid,
            fill.side.value,
            fill.price,
            fill.volume,
            fill.fee,
        )
        if self.on_fill is not None and new:
            self.on_fill(fill, effect)

    async def _mark(self, order: ManagedOrder) -> None:
        avg = order.funds / order.executed_volume if order.executed_volume else None
        await asyncio.to_thread(
            self.repo.mark_order,
            order.identifier,
            state=REPO_STATE[order.status],
            uuid=order.uuid,
            executed_volume=order.executed_volume,
            paid_fee=order.fees,
            avg_price=avg,
            error=order.error,
            ts_ms=self.clock(),
        )

    # ---- timeouts and fallbacks -------------------------------------------------------------
    async def _fallback(
        self, current: ManagedOrder, orders: list[ManagedOrder], reprices: int
    ) -> ManagedOrder | None:
        """After a limit order ended: the execution policy's next step (market / re-price / none)."""
        if current.ord_type is not OrdType.LIMIT or current.status is not OrderStatus.CANCELED:
            return None
        intent = current.intent
        last = self.price_source(intent.market) if self.price_source else None
        step = policy.next_step(
            intent,
            ended="cancel",
            superseded=current.superseded,
            filled=sum((o.executed_volume for o in orders), Decimal(0)),
            funds=sum((o.funds for o in orders), Decimal(0)),
            last_volume=current.volume,
            reprices=reprices,
            last_price=last,
            offset_ticks=intent.offset_ticks,
            max_reprices=self.settings.max_reprices,
        )
        if step is None:
            return None
        attempt = max(o.attempt for o in orders) + 1
        nxt = await self._plan(intent, attempt, last_price=last, step=step)
        log.info(
            "limit timeout fallback intent_id=%s ord_type=%s remaining=%s attempt=%s",
            intent.intent_id,
            step.ord_type.value,
            step.remaining,
            attempt,
        )
        await self._submit(nxt)
        return nxt

    def _chain(self, first: ManagedOrder, nxt: ManagedOrder) -> None:
        self._chains[id(nxt)] = [*self._chain_of(first), nxt]

    def _chain_of(self, order: ManagedOrder) -> list[ManagedOrder]:
        return self._chains.get(id(order), [order])

    def _result(self, intent: Intent, orders: list[ManagedOrder]) -> ExecutionResult:
        for o in orders:
            self._chains.pop(id(o), None)
            if o.is_final:
                self._by_identifier.pop(o.identifier, None)
                if o.uuid:
                    self._by_uuid.pop(o.uuid, None)
        vol = sum((o.executed_volume for o in orders), Decimal(0))
        funds = sum((o.funds for o in orders), Decimal(0))
        fees = sum((o.fees for o in orders), Decimal(0))
        if vol > 0:
            status = "filled" if orders[-1].status is OrderStatus.FILLED else "partial"
        elif all(o.error == "dust" for o in orders):
            status = "dust"
        elif all(o.status is OrderStatus.REJECTED for o in orders):
            status = "rejected"
        else:
            status = "unfilled"
        note = "; ".join(x for x in (o.error or o.note for o in orders) if x)
        return ExecutionResult(intent, tuple(orders), vol, funds, fees, status, self.clock(), note)


def event_final(event: object) -> bool:
    return isinstance(event, Filled | Canceled)


def _plain(value: Decimal | None) -> str:
    return "None" if value is None else f"{value.normalize():f}"


def _field(event: Any, *names: str) -> str | None:
    for name in names:
        value = event.get(name) if isinstance(event, dict) else getattr(event, name, None)
        if value:
            return str(value)
    return None


__all__ = [
    "ExecutionResult",
    "ExecutionSettings",
    "ManagedOrder",
    "OrderManager",
    "UpbitError",
    "attempt_identifier",
]
