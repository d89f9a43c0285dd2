"""The simulator's order model and its Upbit JSON renderings (REST Order schema and myOrder).

REST renders every number as a fixed-point string (Upbit's Exchange API); the private WebSocket
`myOrder` event carries JSON numbers. Timestamps come from the market clock and are rendered in
KST the way Upbit does (`2025-06-25T15:42:25+09:00`, trades with microseconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta, timezone
from decimal import Decimal

from trader.timeutil import ms_to_datetime
from trader.upbit.rules import format_decimal

KST = timezone(timedelta(hours=9))
D0 = Decimal(0)


def kst_iso(ts_ms: int, *, micros: bool = False) -> str:
    """Upbit's KST timestamp string for an epoch-ms instant."""
    dt = ms_to_datetime(ts_ms).astimezone(KST)
    return dt.isoformat(timespec="microseconds" if micros else "seconds")


def fmt(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


@dataclass(slots=True)
class Trade:
    """One execution of an order (an entry of the order's `trades`)."""

    uuid: str
    price: Decimal
    volume: Decimal
    funds: Decimal
    fee: Decimal
    ts_ms: int
    trend: str
    is_maker: bool


@dataclass(slots=True)
class Order:
    """Mutable order state kept by the exchange; `locked` is what remains of the reserved funds."""

    uuid: str
    market: str
    side: str  # bid | ask
    ord_type: str  # limit | price | market | best
    price: Decimal | None
    volume: Decimal | None
    created_ms: int
    seq: int
    reserved_fee: Decimal
    locked: Decimal
    identifier: str | None = None
    time_in_force: str | None = None
    smp_type: str | None = None
    state: str = "wait"
    executed_volume: Decimal = D0
    executed_funds: Decimal = D0
    paid_fee: Decimal = D0
    # self-match prevention: volume withdrawn from the order, and the funds (bid: KRW incl. fee)
    # or coins (ask) released with it
    prevented_volume: Decimal = D0
    prevented_locked: Decimal = D0
    done_ms: int | None = None
    trades: list[Trade] = field(default_factory=list)

    @property
    def remaining_volume(self) -> Decimal | None:
        if self.volume is None:
            return None
        return self.volume - self.executed_volume - self.prevented_volume

    @property
    def is_open(self) -> bool:
        return self.state in ("wait", "watch")

    @property
    def price_f(self) -> float:
        return float(self.price) if self.price is not None else 0.0

    def to_json(self, *, with_trades: bool = False) -> dict:
        """The REST Order object (numbers as strings), optionally with `trades`."""
        out: dict = {
            "uuid": self.uuid,
            "side": self.side,
            "ord_type": self.ord_type,
            "price": fmt(self.price),
            "state": self.state,
            "market": self.market,
            "created_at": kst_iso(self.created_ms),
            "volume": fmt(self.volume),
            "remaining_volume": fmt(self.remaining_volume),
            "reserved_fee": format_decimal(self.reserved_fee),
            "remaining_fee": format_decimal(max(self.reserved_fee - self.paid_fee, D0)),
            "paid_fee": format_decimal(self.paid_fee),
            "locked": format_decimal(self.locked),
            "executed_volume": format_decimal(self.executed_volume),
            "executed_funds": format_decimal(self.executed_funds),
            # "0" as in Upbit's examples while nothing was prevented
            "prevented_volume": format_decimal(self.prevented_volume) if self.prevented_volume else "0",
            "prevented_locked": format_decimal(self.prevented_locked) if self.prevented_locked else "0",
            "trades_count": len(self.trades),
        }
        if self.time_in_force:
            out["time_in_force"] = self.time_in_force
        if self.identifier is not None:
            out["identifier"] = self.identifier
        if self.smp_type:
            out["smp_type"] = self.smp_type
        if with_trades:
            out["trades"] = [
                {
                    "market": self.market,
                    "uuid": t.uuid,
                    "price": format_decimal(t.price),
                    "volume": format_decimal(t.volume),
                    "funds": format_decimal(t.funds),
                    "trend": t.trend,
                    "created_at": kst_iso(t.ts_ms, micros=True),
                    "side": self.side,
                }
                for t in self.trades
            ]
        return out

    def to_my_order(self, ts_ms: int, state: str | None = None, trade: Trade | None = None) -> dict:
        """The private WebSocket `myOrder` payload in DEFAULT field names (numbers as JSON numbers)."""
        ev = self.executed_volume
        avg = float(self.executed_funds / ev) if ev else 0.0
        remaining = self.remaining_volume
        return {
            "type": "myOrder",
            "code": self.market,
            "uuid": self.uuid,
            "ask_bid": self.side.upper(),
            "order_type": self.ord_type,
            "state": state or self.state,
            "trade_uuid": trade.uuid if trade else None,
            "price": float(trade.price) if trade else (float(self.price) if self.price is not None else None),
            "avg_price": avg,
            "volume": (float(trade.volume) if trade
                       else (float(self.volume) if self.volume is not None else None)),
            "remaining_volume": float(remaining) if remaining is not None else None,
            "executed_volume": float(ev),
            "trades_count": len(self.trades),
            "reserved_fee": float(self.reserved_fee),
            "remaining_fee": float(max(self.reserved_fee - self.paid_fee, D0)),
            "paid_fee": float(self.paid_fee),
            "locked": float(self.locked),
            "executed_funds": float(self.executed_funds),
            "time_in_force": self.time_in_force,
            "trade_fee": float(trade.fee) if trade else None,
            "is_maker": trade.is_maker if trade else None,
            "identifier": self.identifier,
            "smp_type": self.smp_type,
            "prevented_volume": float(self.prevented_volume),
            "prevented_locked": float(self.prevented_locked),
            "trade_timestamp": trade.ts_ms if trade else None,
            "order_timestamp": self.created_ms,
            "timestamp": ts_ms,
            "stream_type": "REALTIME",
        }
