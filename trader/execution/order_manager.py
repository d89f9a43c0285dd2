"""OrderManager: an intent becomes an order; its fills are followed, recorded, then booked.

The manager composes parts with one job each: what to do with an order over time is the
execution policy's (policy.py, the same code the backtest runs), sizing is sizing.py, recording
before sending is journal.py, sending with its retry rules is submission.py, following an order
(snapshots, fills, waits, timeouts, cancels) is tracking.py, free balances are balance_reads.py;
this module plans an intent's orders, applies the policy's fallbacks and reports the result.

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
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from trader.domain import Intent, IntentKind, OrderSnapshot, OrdType, Side
from trader.execution import policy
from trader.execution.balance_reads import BalanceReads
from trader.execution.balances import DEFAULT_MAX_AGE_S, BalanceCache, currencies_of
from trader.execution.journal import OrderRecorder
from trader.execution.orders import ExecutionResult, ManagedOrder
from trader.execution.policy import attempt_identifier
from trader.execution.ports import PortfolioPort, RepositoryPort
from trader.execution.states import (
    OrderStatus,
    Rejected,
    Submitted,
)
from trader.execution.submission import OrderSubmission
from trader.execution.tracking import (
    _NEVER,
    LIMIT_WALL_FACTOR,
    LIMIT_WALL_MARGIN_S,
    FillHook,
    OrderTracking,
    event_final,
    limit_wall_limit_s,
)
from trader.upbit.client import ExchangeClient
from trader.upbit.errors import (
    UpbitError,
)
from trader.upbit.rules import FEE_RATE, MIN_ORDER_KRW

log = logging.getLogger("trader.execution")

DEFAULT_LIMIT_TIMEOUT_S = 30.0
_RESTING = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)

def wall_ms() -> int:
    return time.time_ns() // 1_000_000




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


class OrderManager(OrderSubmission, OrderTracking, BalanceReads):
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

    def close(self) -> None:
        """Release the order journal's connection and stop the background balance refresh."""
        self.recorder.close()
        if self._balance_refresh is not None:
            self._balance_refresh.cancel()


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


__all__ = [
    "LIMIT_WALL_FACTOR",
    "LIMIT_WALL_MARGIN_S",
    "ExecutionResult",
    "ExecutionSettings",
    "ManagedOrder",
    "OrderManager",
    "UpbitError",
    "attempt_identifier",
    "event_final",
    "limit_wall_limit_s",
    "wall_ms",
]
