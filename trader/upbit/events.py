"""Upbit WebSocket messages (DEFAULT or SIMPLE field names) and REST trade rows → domain events.

`to_event(msg)` is the one entry point the WebSocket client uses: `trade`/`ticker` become a
`Tick` (the hot path reads the fields directly, no renaming), `myOrder` a `MyOrderEvent`,
`myAsset` a `MyAssetEvent`; anything else (orderbook, candles) comes back as a dict with
DEFAULT names; keep-alive `{"status":"UP"}` gives None. `decode(frame)` is orjson.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from trader.domain import Fill, OrdType, Side, Tick
from trader.upbit.errors import AuthError, FinalError, UpbitError
from trader.upbit.rules import FEE_RATE

decode = orjson.loads

# SIMPLE → DEFAULT names (upbit-api.md §3.1–3.5)
TICKER_KEYS = {
    "ty": "type", "cd": "code", "op": "opening_price", "hp": "high_price", "lp": "low_price",
    "tp": "trade_price", "pcp": "prev_closing_price", "c": "change", "cp": "change_price",
    "scp": "signed_change_price", "cr": "change_rate", "scr": "signed_change_rate",
    "tv": "trade_volume", "atv": "acc_trade_volume", "atv24h": "acc_trade_volume_24h",
    "atp": "acc_trade_price", "atp24h": "acc_trade_price_24h", "tdt": "trade_date",
    "ttm": "trade_time", "ttms": "trade_timestamp", "ab": "ask_bid", "aav": "acc_ask_volume",
    "abv": "acc_bid_volume", "h52wp": "highest_52_week_price", "h52wdt": "highest_52_week_date",
    "l52wp": "lowest_52_week_price", "l52wdt": "lowest_52_week_date", "ms": "market_state",
    "dd": "delisting_date", "mw": "market_warning", "tms": "timestamp", "st": "stream_type",
    "ts": "trade_status", "msfi": "market_state_for_ios", "its": "is_trading_suspended",
}
TRADE_KEYS = {
    "ty": "type", "cd": "code", "tp": "trade_price", "tv": "trade_volume", "ab": "ask_bid",
    "pcp": "prev_closing_price", "c": "change", "cp": "change_price", "td": "trade_date",
    "ttm": "trade_time", "ttms": "trade_timestamp", "tms": "timestamp", "sid": "sequential_id",
    "bap": "best_ask_price", "bas": "best_ask_size", "bbp": "best_bid_price", "bbs": "best_bid_size",
    "st": "stream_type",
}
ORDERBOOK_KEYS = {
    "ty": "type", "cd": "code", "tas": "total_ask_size", "tbs": "total_bid_size",
    "obu": "orderbook_units", "tms": "timestamp", "lv": "level", "st": "stream_type",
}
ORDERBOOK_UNIT_KEYS = {"ap": "ask_price", "bp": "bid_price", "as": "ask_size", "bs": "bid_size"}
MY_ORDER_KEYS = {
    "ty": "type", "cd": "code", "uid": "uuid", "ab": "ask_bid", "ot": "order_type", "s": "state",
    "tuid": "trade_uuid", "p": "price", "ap": "avg_price", "v": "volume", "rv": "remaining_volume",
    "ev": "executed_volume", "tc": "trades_count", "rsf": "reserved_fee", "rmf": "remaining_fee",
    "pf": "paid_fee", "l": "locked", "ef": "executed_funds", "tif": "time_in_force",
    "tf": "trade_fee", "im": "is_maker", "id": "identifier", "smpt": "smp_type",
    "pv": "prevented_volume", "pl": "prevented_locked", "ttms": "trade_timestamp",
    "otms": "order_timestamp", "tms": "timestamp", "st": "stream_type",
}
MY_ASSET_KEYS = {
    "ty": "type", "astuid": "asset_uuid", "ast": "assets", "asttms": "asset_timestamp",
    "tms": "timestamp", "st": "stream_type",
}
MY_ASSET_ITEM_KEYS = {"cu": "currency", "b": "balance", "l": "locked"}
_KEYS_BY_TYPE = {
    "ticker": TICKER_KEYS, "trade": TRADE_KEYS, "orderbook": ORDERBOOK_KEYS,
    "myOrder": MY_ORDER_KEYS, "myAsset": MY_ASSET_KEYS,
}


def _rename(d: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    return {keys.get(k, k): v for k, v in d.items()}


def normalize(msg: Mapping[str, Any]) -> dict[str, Any]:
    """A SIMPLE message with DEFAULT field names (DEFAULT messages are returned as a copy)."""
    ty = msg.get("ty")
    if ty is None:
        return dict(msg)
    out = _rename(msg, _KEYS_BY_TYPE.get(str(ty).split(".")[0], {"ty": "type", "cd": "code"}))
    if ty == "orderbook" and isinstance(out.get("orderbook_units"), list):
        out["orderbook_units"] = [_rename(u, ORDERBOOK_UNIT_KEYS) for u in out["orderbook_units"]]
    if ty == "myAsset" and isinstance(out.get("assets"), list):
        out["assets"] = [_rename(a, MY_ASSET_ITEM_KEYS) for a in out["assets"]]
    return out


def _d(value: Any) -> Decimal | None:
    """JSON number/string → exact Decimal (floats through their shortest repr)."""
    if value is None:
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


@dataclass(frozen=True, slots=True)
class MyOrderEvent:
    """A private `myOrder` message; state `trade` carries one fill (trade_uuid, price, volume)."""

    uuid: str
    market: str
    side: Side
    ord_type: OrdType
    state: str  # wait | watch | trade | done | cancel | prevented
    identifier: str | None
    trade_uuid: str | None
    price: Decimal | None
    volume: Decimal | None
    avg_price: Decimal | None
    remaining_volume: Decimal | None
    executed_volume: Decimal | None
    executed_funds: Decimal | None
    paid_fee: Decimal | None
    trade_fee: Decimal | None
    locked: Decimal | None
    is_maker: bool | None
    trades_count: int
    trade_ts_ms: int
    ts_ms: int

    def fill(self, fee_rate: Decimal = FEE_RATE) -> Fill | None:
        """The fill this event reports (state `trade`), else None. Fee: `trade_fee` when given."""
        if self.state != "trade" or not self.trade_uuid or self.price is None or self.volume is None:
            return None
        funds = self.price * self.volume
        fee = self.trade_fee if self.trade_fee is not None else funds * fee_rate
        return Fill(self.trade_uuid, self.uuid, self.market, self.side, self.price, self.volume, funds,
                    fee, self.trade_ts_ms or self.ts_ms, identifier=self.identifier)


@dataclass(frozen=True, slots=True)
class MyAssetEvent:
    """A private `myAsset` message: (currency, balance, locked) per changed asset."""

    assets: tuple[tuple[str, Decimal, Decimal], ...]
    ts_ms: int


def my_order_event(msg: Mapping[str, Any]) -> MyOrderEvent:
    m = normalize(msg) if "ty" in msg else msg
    return MyOrderEvent(
        uuid=str(m["uuid"]),
        market=str(m.get("code") or ""),
        side=Side(str(m.get("ask_bid", "BID")).lower()),
        ord_type=OrdType(m.get("order_type") or "limit"),
        state=str(m.get("state")),
        identifier=m.get("identifier"),
        trade_uuid=m.get("trade_uuid"),
        price=_d(m.get("price")),
        volume=_d(m.get("volume")),
        avg_price=_d(m.get("avg_price")),
        remaining_volume=_d(m.get("remaining_volume")),
        executed_volume=_d(m.get("executed_volume")),
        executed_funds=_d(m.get("executed_funds")),
        paid_fee=_d(m.get("paid_fee")),
        trade_fee=_d(m.get("trade_fee")),
        locked=_d(m.get("locked")),
        is_maker=m.get("is_maker"),
        trades_count=int(m.get("trades_count") or 0),
        trade_ts_ms=int(m.get("trade_timestamp") or 0),
        ts_ms=int(m.get("timestamp") or 0),
    )


def my_asset_event(msg: Mapping[str, Any]) -> MyAssetEvent:
    m = normalize(msg) if "ty" in msg else msg
    assets = tuple(
        (str(a["currency"]), _d(a.get("balance")) or Decimal(0), _d(a.get("locked")) or Decimal(0))
        for a in m.get("assets") or ()
    )
    return MyAssetEvent(assets, int(m.get("timestamp") or 0))


def tick_from_rest_trade(row: Mapping[str, Any]) -> Tick:
    """A /v1/trades/ticks row → Tick."""
    return Tick(str(row["market"]), int(row["timestamp"]), float(row["trade_price"]),
                float(row["trade_volume"]), str(row.get("ask_bid") or "BID"),
                int(row.get("sequential_id") or 0))


def error_from_message(msg: Mapping[str, Any]) -> UpbitError:
    """`{"error":{"name":"INVALID_AUTH",...}}` → AuthError; other WS errors → FinalError."""
    err = msg.get("error") or {}
    name, message = str(err.get("name", "")), str(err.get("message", ""))
    return AuthError(401, name, message) if name == "INVALID_AUTH" else FinalError(400, name, message)


Event = Tick | MyOrderEvent | MyAssetEvent | dict[str, Any]


def to_event(msg: Mapping[str, Any]) -> Event | None:
    """One decoded WS message → Tick | MyOrderEvent | MyAssetEvent | dict (DEFAULT names) | None."""
    ty = msg.get("ty")
    if ty is not None:  # SIMPLE: read the short keys directly (hot path)
        if ty == "trade":
            return Tick(msg["cd"], msg["ttms"], float(msg["tp"]), float(msg["tv"]), msg.get("ab", "BID"),
                        int(msg.get("sid") or 0))
        if ty == "ticker":
            return Tick(msg["cd"], msg.get("ttms") or msg["tms"], float(msg["tp"]), float(msg.get("tv") or 0),
                        msg.get("ab", "BID"), 0)
        if ty == "myOrder":
            return my_order_event(msg)
        if ty == "myAsset":
            return my_asset_event(msg)
        return normalize(msg)
    ty = msg.get("type")
    if ty == "trade":
        return Tick(msg["code"], msg["trade_timestamp"], float(msg["trade_price"]),
                    float(msg["trade_volume"]), msg.get("ask_bid", "BID"), int(msg.get("sequential_id") or 0))
    if ty == "ticker":
        return Tick(msg["code"], msg.get("trade_timestamp") or msg["timestamp"], float(msg["trade_price"]),
                    float(msg.get("trade_volume") or 0), msg.get("ask_bid", "BID"), 0)
    if ty == "myOrder":
        return my_order_event(msg)
    if ty == "myAsset":
        return my_asset_event(msg)
    if ty is None and "status" in msg:
        return None  # {"status":"UP"} keep-alive
    if ty is None and "error" in msg:
        raise error_from_message(msg)
    return dict(msg)
