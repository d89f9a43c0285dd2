"""An intent's orders as execution follows them: `ManagedOrder` (one order, its state machine and
the fills already booked) and `ExecutionResult` (what the intent achieved over all its orders —
what the strategy's `on_order_result` gets)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

from trader.domain import Fill, Intent, OrderSnapshot, OrdType, Side
from trader.execution.states import OrderFSM, OrderStatus


@dataclass(eq=False)
class ManagedOrder:
    """One order of an intent, with its state machine and the fills already booked."""

    intent: Intent
    identifier: str
    attempt: int
    side: Side
    ord_type: OrdType
    price: Decimal | None  # unit price (limit) or KRW total (market buy)
    volume: Decimal | None  # coin volume (limit, market sell)
    fsm: OrderFSM = field(default_factory=OrderFSM)
    uuid: str | None = None
    snapshot: OrderSnapshot | None = None
    fills: list[Fill] = field(default_factory=list)
    seen_trades: set[str] = field(default_factory=set)
    error: str | None = None
    note: str = ""
    superseded: bool = False  # cancelled by another decision: no timeout fallback for it
    tick_ns: int = 0  # perf_counter_ns when the deciding tick was received (latency bench)
    planned_ns: int = 0  # perf_counter_ns when sizing was done (latency breakdown)
    recorded_ns: int = 0  # perf_counter_ns when the record-before-send commit returned
    sent_ns: int = 0  # perf_counter_ns just before the order request went out
    sent_market_ms: int | None = None  # market time (last tick ts) when it went out, if known
    record_path: str = ""  # "journal" (loop thread) | "thread" (worker thread) | "" (not recorded)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # True while `confirm` waits on this resting limit order with nothing to do (a lockstep
    # loop's "settled" test: the order rests and its task is parked until `wake` or a poll)
    parked: bool = False

    @property
    def market(self) -> str:
        return self.intent.market

    @property
    def status(self) -> OrderStatus:
        return self.fsm.status

    @property
    def is_final(self) -> bool:
        return self.fsm.is_final

    @property
    def executed_volume(self) -> Decimal:
        return sum((f.volume for f in self.fills), Decimal(0))

    @property
    def funds(self) -> Decimal:
        return sum((f.funds for f in self.fills), Decimal(0))

    @property
    def fees(self) -> Decimal:
        return sum((f.fee for f in self.fills), Decimal(0))


@dataclass(frozen=True)
class ExecutionResult:
    """Outcome of an intent over all its orders (what the strategy's on_order_result gets)."""

    intent: Intent
    orders: tuple[ManagedOrder, ...]
    filled_volume: Decimal
    funds: Decimal
    fees: Decimal
    status: str  # filled | partial | unfilled | rejected | dust
    ts_ms: int
    note: str = ""

    @property
    def avg_price(self) -> Decimal | None:
        return self.funds / self.filled_volume if self.filled_volume else None

    @property
    def fills(self) -> list[Fill]:
        return [f for o in self.orders for f in o.fills]
