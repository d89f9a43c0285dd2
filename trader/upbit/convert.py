"""Upbit JSON ↔ domain types: orders, fills, balances, order chance; numbers become exact Decimals.

The Exchange API sends numbers as strings ("0.0005"), the Quotation API as JSON numbers; the REST
client decodes the latter with `parse_float=Decimal`, so both arrive here exact. A fill's fee is
`funds × fee rate` of the order's side (Upbit reports only the order's total `paid_fee`, which
stays the exact total on the OrderSnapshot).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from trader.domain import Fill, OrderSnapshot, OrderState, OrdType, Side
from trader.upbit.client import Balance
from trader.upbit.rules import FEE_RATE, MAX_ORDER_KRW, MIN_ORDER_KRW, format_decimal

_ZERO = Decimal(0)


def dec(value: Any) -> Decimal | None:
    """Exact Decimal of a JSON string/number; None for null/absent/empty."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))  # shortest repr: 0.1 → Decimal('0.1'), not the binary expansion
    return Decimal(str(value))


def dec0(value: Any) -> Decimal:
    d = dec(value)
    return _ZERO if d is None else d


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_to_ms(text: str | None, *, naive_is_utc: bool = True) -> int:
    """ISO-8601 (`2025-08-09T16:44:00.597751+09:00`, `…Z`) → UTC epoch ms; 0 when absent.

    A naive time is UTC (Upbit's `candle_date_time_utc`) unless `naive_is_utc=False`, where it is
    an error (exchange timestamps always carry an offset). Integer arithmetic: no float rounding.
    """
    if not text:
        return 0
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"timestamp without offset: {text!r}")
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def fill_from_trade(
    trade: Mapping[str, Any],
    *,
    order_uuid: str,
    market: str,
    side: Side,
    fee_rate: Decimal,
    identifier: str | None,
) -> Fill:
    """One entry of an order's `trades` → Fill (fee = funds × fee_rate)."""
    price = dec0(trade.get("price"))
    volume = dec0(trade.get("volume"))
    funds = dec(trade.get("funds"))
    if funds is None:
        funds = price * volume
    return Fill(
        trade_uuid=str(trade.get("uuid")),
        order_uuid=order_uuid,
        market=str(trade.get("market") or market),
        side=Side(trade.get("side") or side),
        price=price,
        volume=volume,
        funds=funds,
        fee=funds * fee_rate,
        ts_ms=iso_to_ms(trade.get("created_at")),
        identifier=identifier,
    )


def fills_from_order_json(
    order_json: Mapping[str, Any], fee_rate: Decimal = FEE_RATE, reason: str = ""
) -> list[Fill]:
    """The fills of an Upbit order (GET /v1/order with `trades`) as domain `Fill`s.

    An Upbit trade entry has no fee field: a trade's fee is `funds × fee_rate` (Upbit keeps full
    precision: 5999.79184 × 0.0005 = 2.99989592, the doc's `paid_fee`). If the order's `paid_fee`
    differs from the sum (it should not) and the trade list is complete, the difference goes to
    the last trade so that Σ fill.fee == paid_fee.
    """
    trades = order_json.get("trades") or []
    if not trades:
        return []
    side = Side(order_json["side"])
    fills = [
        replace(
            fill_from_trade(t, order_uuid=str(order_json.get("uuid", "")), market=str(order_json["market"]),
                            side=side, fee_rate=fee_rate, identifier=order_json.get("identifier")),
            reason=reason,
        )
        for t in trades
    ]
    paid = dec(order_json.get("paid_fee"))
    if paid is not None:
        residual = paid - sum((f.fee for f in fills), _ZERO)
        complete = len(fills) == int(order_json.get("trades_count") or len(fills))
        if residual and complete and fills[-1].fee + residual >= 0:
            fills[-1] = replace(fills[-1], fee=fills[-1].fee + residual)
    return fills


def order_from_json(data: Mapping[str, Any], fee_rates: Mapping[str, Decimal] | None = None) -> OrderSnapshot:
    """REST Order schema (with or without `trades`) → OrderSnapshot.

    `fee_rates` maps "bid"/"ask" to the market's fee (from /v1/orders/chance); FEE_RATE otherwise.
    """
    side = Side(data["side"])
    rate = (fee_rates or {}).get(side.value, FEE_RATE)
    uuid = str(data["uuid"])
    market = str(data["market"])
    identifier = data.get("identifier")
    trades = tuple(fills_from_order_json(data, rate))
    return OrderSnapshot(
        uuid=uuid,
        market=market,
        side=side,
        ord_type=OrdType(data["ord_type"]),
        state=OrderState(data["state"]),
        price=dec(data.get("price")),
        volume=dec(data.get("volume")),
        remaining_volume=dec(data.get("remaining_volume")),
        executed_volume=dec0(data.get("executed_volume")),
        paid_fee=dec0(data.get("paid_fee")),
        locked=dec0(data.get("locked")),
        created_at=str(data.get("created_at") or ""),
        identifier=identifier,
        trades_count=int(data.get("trades_count") or len(trades)),
        time_in_force=data.get("time_in_force"),
        trades=trades,
    )


def order_params(
    market: str,
    side: Side | str,
    ord_type: OrdType | str,
    *,
    identifier: str,
    price: Decimal | None = None,
    volume: Decimal | None = None,
    time_in_force: str | None = None,
) -> dict[str, str]:
    """The POST /v1/orders parameters of an order, numbers as Upbit's fixed-point text.

    Every exchange client builds its request here, so the in-process exchange is handed exactly
    the values a REST request carries (`Decimal("5000")` and `Decimal("5000.00")` both become
    "5000.0").
    """
    if not identifier:
        raise ValueError("identifier is required: it is what makes a retry safe")
    params = {"market": market, "side": Side(side).value, "ord_type": OrdType(ord_type).value,
              "identifier": identifier}
    if price is not None:
        params["price"] = format_decimal(price)
    if volume is not None:
        params["volume"] = format_decimal(volume)
    if time_in_force:
        params["time_in_force"] = time_in_force
    return params


def order_ref(uuid: str | None, identifier: str | None) -> dict[str, str]:
    """How GET/DELETE /v1/order names an order: by uuid when given, else by identifier."""
    if uuid:
        return {"uuid": uuid}
    if identifier:
        return {"identifier": identifier}
    raise ValueError("uuid or identifier is required")


def balance_from_json(row: Mapping[str, Any]) -> Balance:
    return Balance(
        currency=str(row["currency"]),
        balance=dec0(row.get("balance")),
        locked=dec0(row.get("locked")),
        avg_buy_price=dec0(row.get("avg_buy_price")),
    )


def balances_from_json(rows: Iterable[Mapping[str, Any]]) -> dict[str, Balance]:
    """/v1/accounts → {currency: Balance} (KRW included under "KRW")."""
    return {b.currency: b for b in map(balance_from_json, rows)}


@dataclass(frozen=True, slots=True)
class Chance:
    """/v1/orders/chance: the market's fees, limits and the two accounts involved."""

    market: str
    bid_fee: Decimal
    ask_fee: Decimal
    maker_bid_fee: Decimal
    maker_ask_fee: Decimal
    min_total_bid: Decimal
    min_total_ask: Decimal
    max_total: Decimal
    state: str
    bid_types: tuple[str, ...]
    ask_types: tuple[str, ...]
    bid_account: Balance | None
    ask_account: Balance | None

    @property
    def fee_rates(self) -> dict[str, Decimal]:
        return {"bid": self.bid_fee, "ask": self.ask_fee}


def chance_from_json(data: Mapping[str, Any] | list[Any]) -> Chance:
    """The docs' example wraps the object in a list (a doc bug); accept both."""
    if isinstance(data, list):
        data = data[0]
    market = data.get("market") or {}
    bid, ask = market.get("bid") or {}, market.get("ask") or {}
    bid_fee = dec(data.get("bid_fee")) or FEE_RATE
    ask_fee = dec(data.get("ask_fee")) or FEE_RATE
    return Chance(
        market=str(market.get("id") or ""),
        bid_fee=bid_fee,
        ask_fee=ask_fee,
        maker_bid_fee=dec(data.get("maker_bid_fee")) or bid_fee,
        maker_ask_fee=dec(data.get("maker_ask_fee")) or ask_fee,
        min_total_bid=dec(bid.get("min_total")) or MIN_ORDER_KRW,
        min_total_ask=dec(ask.get("min_total")) or MIN_ORDER_KRW,
        max_total=dec(market.get("max_total")) or MAX_ORDER_KRW,
        state=str(market.get("state") or "active"),
        bid_types=tuple(market.get("bid_types") or ()),
        ask_types=tuple(market.get("ask_types") or ()),
        bid_account=balance_from_json(data["bid_account"]) if data.get("bid_account") else None,
        ask_account=balance_from_json(data["ask_account"]) if data.get("ask_account") else None,
    )
