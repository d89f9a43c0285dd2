"""Value types shared by every layer: ticks, intents, orders, fills, position views.

Everything here is a frozen dataclass (or an enum) with no behaviour beyond small derived
properties, so the strategy, execution, ledger, storage and reporting layers can exchange them
without importing one another. Money and quantities are `Decimal`; a `Tick` carries floats
because the strategy's hot price comparisons use floats.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    """Upbit's order side names: `bid` buys, `ask` sells."""

    BID = "bid"
    ASK = "ask"


class OrdType(StrEnum):
    """Upbit's `ord_type` values."""

    LIMIT = "limit"
    PRICE = "price"  # market buy by KRW total
    MARKET = "market"  # market sell by volume
    BEST = "best"


class OrderState(StrEnum):
    """Upbit's order states (REST); myOrder adds `trade` and `prevented` as event kinds."""

    WAIT = "wait"
    WATCH = "watch"
    DONE = "done"
    CANCEL = "cancel"


class IntentKind(StrEnum):
    """What the strategy wants: open a position, close all of it, or sell part of it."""

    BUY = "buy"
    SELL = "sell"
    SELL_PARTIAL = "sell_partial"


@dataclass(frozen=True, slots=True)
class Tick:
    """One executed trade on the market (the unit the strategy reacts to).

    `ask_bid` is Upbit's aggressor flag: "BID" when a buyer took the ask, "ASK" otherwise.
    """

    market: str
    ts_ms: int
    price: float
    volume: float
    ask_bid: str = "BID"
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Intent:
    """A decision of the strategy, before it becomes an order.

    For a BUY, `krw` is the KRW to spend (fee excluded, as Upbit's `price` of a market buy).
    For SELL/SELL_PARTIAL, `volume` is the coin volume to sell (8 decimals).
    `limit_price`, when set, asks execution for a limit order at that price (on the tick grid);
    `timeout_s`/`on_timeout` say what to do when it does not fill in time.
    `intent_id` is unique and stable for the decision (same replay → same id); execution derives
    Upbit's `identifier` from it so a retried submission can never double an order.
    """

    market: str
    kind: IntentKind
    reason: str
    ts_ms: int
    intent_id: str
    krw: Decimal | None = None
    volume: Decimal | None = None
    limit_price: Decimal | None = None
    timeout_s: float | None = None
    on_timeout: str = "market"  # market | reprice | cancel
    offset_ticks: int = 0  # a limit order's distance from the last trade, in ticks (re-prices too)
    # price of the trade that made the decision (a stop's trigger), so slippage can be shown
    trigger_price: Decimal | None = None

    @property
    def side(self) -> Side:
        return Side.BID if self.kind is IntentKind.BUY else Side.ASK

    def identifier(self, namespace: str = "") -> str:
        """Upbit `identifier` (≤ 64 chars, unique per account forever) derived from the intent."""
        digest = hashlib.sha256(f"{namespace}|{self.intent_id}".encode()).hexdigest()[:40]
        return f"at-{digest}"


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order (an entry of Upbit's order `trades`), keyed by `trade_uuid`.

    `funds` = price × volume; `fee` is the fee charged for this fill in KRW.
    Applying the same fill twice must be a no-op wherever fills are consumed.
    """

    trade_uuid: str
    order_uuid: str
    market: str
    side: Side
    price: Decimal
    volume: Decimal
    funds: Decimal
    fee: Decimal
    ts_ms: int
    reason: str = ""
    identifier: str | None = None


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """An order as the exchange reports it (REST Order schema or myOrder), numbers as Decimal."""

    uuid: str
    market: str
    side: Side
    ord_type: OrdType
    state: OrderState
    price: Decimal | None
    volume: Decimal | None
    remaining_volume: Decimal | None
    executed_volume: Decimal
    paid_fee: Decimal
    locked: Decimal
    created_at: str
    identifier: str | None = None
    trades_count: int = 0
    time_in_force: str | None = None
    trades: tuple[Fill, ...] = field(default_factory=tuple)

    @property
    def is_final(self) -> bool:
        return self.state in (OrderState.DONE, OrderState.CANCEL)

    @property
    def avg_fill_price(self) -> Decimal | None:
        """Σfunds / Σvolume over the order's trades (Upbit's way), None before any fill."""
        vol = sum((t.volume for t in self.trades), Decimal(0))
        if not vol:
            return None
        return sum((t.funds for t in self.trades), Decimal(0)) / vol


@dataclass(frozen=True, slots=True)
class PositionView:
    """What the strategy may see of the ledger: read-only, per market.

    `volume` counts free + locked coin; `avg_buy_price` is Upbit's (fees excluded);
    `krw_free` is the KRW available for a new entry; `pending` is true while an order of
    this market is in flight (the strategy must not stack decisions on it).
    """

    market: str
    volume: Decimal = Decimal(0)
    avg_buy_price: Decimal = Decimal(0)
    krw_free: Decimal = Decimal(0)
    pending: bool = False

    @property
    def is_open(self) -> bool:
        return self.volume > 0
