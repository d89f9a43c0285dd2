"""WS message decoding (SIMPLE and DEFAULT names) and the REST gap backfill."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from trader.domain import OrdType, Side, Tick
from trader.upbit.errors import AuthError
from trader.upbit.events import (
    TRADE_KEYS,
    MyAssetEvent,
    MyOrderEvent,
    normalize,
    tick_from_rest_trade,
    to_event,
)
from trader.upbit.gaps import SeenTrades, backfill, backfill_trades

TRADE_DEFAULT = {
    "type": "trade", "code": "KRW-BTC", "timestamp": 1730336862082, "trade_date": "2024-10-31",
    "trade_time": "01:07:42", "trade_timestamp": 1730336862047, "trade_price": 100473000.0,
    "trade_volume": 0.00014208, "ask_bid": "BID", "prev_closing_price": 100571000.0, "change": "FALL",
    "change_price": 98000.0, "sequential_id": 17303368620470000, "best_ask_price": 100473000,
    "best_ask_size": 0.43139478, "best_bid_price": 100465000, "best_bid_size": 0.01990656,
    "stream_type": "REALTIME",
}
SIMPLE_OF = {v: k for k, v in TRADE_KEYS.items()}


def simple(msg: dict[str, Any], keys: dict[str, str]) -> dict[str, Any]:
    return {keys.get(k, k): v for k, v in msg.items()}


def test_trade_simple_and_default_give_the_same_tick() -> None:
    t1 = to_event(TRADE_DEFAULT)
    t2 = to_event(orjson.loads(orjson.dumps(simple(TRADE_DEFAULT, SIMPLE_OF))))
    assert t1 == t2 == Tick("KRW-BTC", 1730336862047, 100473000.0, 0.00014208, "BID", 17303368620470000)
    assert normalize(simple(TRADE_DEFAULT, SIMPLE_OF)) == TRADE_DEFAULT


def test_ticker_becomes_tick_without_seq() -> None:
    simple_ticker = {"ty": "ticker", "cd": "KRW-ETH", "tp": 5000000.0, "tv": 0.1, "ab": "ASK",
                     "ttms": 1700000000000, "tms": 1700000000100, "st": "REALTIME"}
    assert to_event(simple_ticker) == Tick("KRW-ETH", 1700000000000, 5000000.0, 0.1, "ASK", 0)
    default = normalize(simple_ticker)
    assert default["trade_price"] == 5000000.0 and default["code"] == "KRW-ETH"
    assert to_event(default) == to_event(simple_ticker)


def test_orderbook_simple_normalized() -> None:
    msg = {"ty": "orderbook", "cd": "KRW-BTC", "tas": 1.5, "tbs": 2.5, "tms": 1,
           "obu": [{"ap": 101.0, "bp": 100.0, "as": 0.5, "bs": 0.7}], "st": "SNAPSHOT"}
    out = to_event(msg)
    assert isinstance(out, dict)
    unit = {"ask_price": 101.0, "bid_price": 100.0, "ask_size": 0.5, "bid_size": 0.7}
    assert out["orderbook_units"] == [unit]
    assert out["total_ask_size"] == 1.5


@pytest.mark.parametrize("fmt", ["DEFAULT", "SIMPLE"])
def test_my_order_trade_event_gives_fill(fmt: str) -> None:
    msg = {"type": "myOrder", "code": "KRW-BTC", "uuid": "o-1", "ask_bid": "BID", "order_type": "limit",
           "state": "trade", "trade_uuid": "t-9", "price": 100000.0, "avg_price": 100000.0, "volume": 0.1,
           "remaining_volume": 0.0, "executed_volume": 0.1, "trades_count": 1, "reserved_fee": 5.0,
           "remaining_fee": 0.0, "paid_fee": 5.0, "locked": 0.0, "executed_funds": 10000.0,
           "time_in_force": None, "trade_fee": 5.0, "is_maker": True, "identifier": "at-1",
           "trade_timestamp": 1700000000000, "order_timestamp": 1699999999000, "timestamp": 1700000000001,
           "stream_type": "REALTIME"}
    if fmt == "SIMPLE":
        from trader.upbit.events import MY_ORDER_KEYS
        msg = simple(msg, {v: k for k, v in MY_ORDER_KEYS.items()})
    ev = to_event(msg)
    assert isinstance(ev, MyOrderEvent)
    assert ev.side is Side.BID and ev.ord_type is OrdType.LIMIT and ev.identifier == "at-1"
    fill = ev.fill()
    assert fill is not None
    assert (fill.trade_uuid, fill.price, fill.volume, fill.funds, fill.fee) == (
        "t-9", Decimal("100000.0"), Decimal("0.1"), Decimal("10000.00"), Decimal("5.0"))


def test_my_asset_and_status_and_error() -> None:
    ev = to_event({"ty": "myAsset", "astuid": "a", "ast": [{"cu": "KRW", "b": 1000.5, "l": 0.0}],
                   "asttms": 1, "tms": 2, "st": "REALTIME"})
    assert isinstance(ev, MyAssetEvent) and ev.assets == (("KRW", Decimal("1000.5"), Decimal("0.0")),)
    assert to_event({"status": "UP"}) is None
    with pytest.raises(AuthError):
        to_event({"error": {"name": "INVALID_AUTH", "message": "x"}})


class FakeTrades:
    """Newest-first REST trades with cursor paging, like /v1/trades/ticks."""

    def __init__(self, seqs: range, fail: bool = False) -> None:
        self.rows = [{"market": "KRW-BTC", "timestamp": 1000 * s, "trade_price": 100.0 + s,
                      "trade_volume": 1.0, "ask_bid": "BID", "sequential_id": s} for s in seqs]
        self.calls: list[Any] = []
        self.fail = fail

    day_scoped = False  # like real Upbit: one UTC day per days_ago (None = the newest trade's day)

    async def trades_ticks(self, market: str, count: int = 200, cursor: Any = None,
                           *, days_ago: int | None = None) -> list[dict[str, Any]]:
        self.calls.append(cursor if not self.day_scoped else (cursor, days_ago))
        if self.fail:
            raise RuntimeError("no trades endpoint")
        newest_first = sorted(self.rows, key=lambda r: -r["sequential_id"])
        if self.day_scoped:
            today = newest_first[0]["timestamp"] // 86_400_000
            day = today - (days_ago or 0)
            newest_first = [r for r in newest_first if r["timestamp"] // 86_400_000 == day]
        if cursor is not None:
            newest_first = [r for r in newest_first if r["sequential_id"] < int(cursor)]
        return newest_first[:count]

    async def candles_minutes(self, market: str, unit: int, to: str | None = None,
                              count: int = 200) -> list[dict[str, Any]]:
        return [  # newest first
            {"candle_date_time_utc": "1970-01-01T00:02:00", "opening_price": 10, "high_price": 12,
             "low_price": 9, "trade_price": 11, "candle_acc_trade_volume": 4},
            {"candle_date_time_utc": "1970-01-01T00:01:00", "opening_price": 10, "high_price": 11,
             "low_price": 8, "trade_price": 9, "candle_acc_trade_volume": 4},
        ]


async def test_backfill_pages_back_to_the_last_seen_trade() -> None:
    rest = FakeTrades(range(1, 1201))
    seen = SeenTrades()
    after = tick_from_rest_trade(rest.rows[99])  # seq 100
    until = tick_from_rest_trade(rest.rows[1099])  # seq 1100
    seen.add(after)
    ticks = await backfill_trades(rest, after, until, seen, page_size=500)
    assert [t.seq for t in ticks] == list(range(101, 1100))
    assert rest.calls == [None, 701, 201]


async def test_backfill_crosses_utc_midnight_with_days_ago() -> None:
    """A gap spanning 00:00 UTC: today's trades run out, paging goes on with days_ago=1."""
    rest = FakeTrades(range(1, 41))
    rest.day_scoped = True
    for row in rest.rows:  # trades 1..20 yesterday (UTC), 21..40 today
        shift = 0 if row["sequential_id"] > 20 else 20 * 60_000 + 3_600_000
        row["timestamp"] = 86_400_000 + 60_000 * row["sequential_id"] - shift
    seen = SeenTrades()
    after = tick_from_rest_trade(rest.rows[9])  # seq 10, yesterday
    until = tick_from_rest_trade(rest.rows[34])  # seq 35, today
    seen.add(after)
    ticks = await backfill_trades(rest, after, until, seen, page_size=8)
    assert [t.seq for t in ticks] == list(range(11, 35))
    assert (rest.calls[-1][1] or 0) == 1  # it asked for yesterday


async def test_backfill_skips_seen_and_falls_back_to_candles() -> None:
    rest = FakeTrades(range(1, 21))
    seen = SeenTrades()
    for row in rest.rows[:12]:
        seen.add(tick_from_rest_trade(row))
    after, until = tick_from_rest_trade(rest.rows[9]), tick_from_rest_trade(rest.rows[19])
    ticks, gap = await backfill(rest, after, until, seen)
    assert [t.seq for t in ticks] == list(range(13, 20)) and gap.source == "trades"
    broken = FakeTrades(range(1, 3), fail=True)
    after = Tick("KRW-BTC", 50_000, 10.0, 1.0, "BID", 0)
    until = Tick("KRW-BTC", 170_000, 11.0, 1.0, "BID", 0)
    ticks, gap = await backfill(broken, after, until, SeenTrades())
    assert gap.source == "candles"
    assert [(t.ts_ms, t.price) for t in ticks] == [
        (60_000, 10.0), (75_000, 11.0), (90_000, 8.0), (119_000, 9.0),
        (120_000, 10.0), (135_000, 9.0), (150_000, 12.0),
    ]


def test_seen_trades_dedup_bounded() -> None:
    seen = SeenTrades(capacity=3)
    ticks = [Tick("KRW-BTC", i, 1.0, 1.0, "BID", i) for i in range(1, 6)]
    assert all(seen.add(t) for t in ticks)
    assert not seen.add(ticks[-1])
    assert seen.add(ticks[0])  # forgotten beyond capacity
    assert seen.last["KRW-BTC"] == ticks[-1]


def test_ticker_snapshot_repeat_is_dropped_and_ticker_bounds_are_exclusive() -> None:
    seen = SeenTrades()
    t = Tick("KRW-BTC", 5000, 1.0, 1.0, "BID", 0)
    assert seen.add(t) and not seen.add(Tick("KRW-BTC", 5000, 1.0, 1.0, "BID", 0))
    assert seen.add(Tick("KRW-BTC", 6000, 1.0, 1.0, "BID", 0))


async def test_backfill_between_ticker_ticks_excludes_their_own_trades() -> None:
    rest = FakeTrades(range(1, 11))  # trade s at ts 1000*s
    after = Tick("KRW-BTC", 3000, 103.0, 1.0, "BID", 0)  # a ticker reporting trade 3
    until = Tick("KRW-BTC", 8000, 108.0, 1.0, "BID", 0)  # a ticker reporting trade 8
    ticks = await backfill_trades(rest, after, until, SeenTrades())
    assert [t.seq for t in ticks] == [4, 5, 6, 7]
