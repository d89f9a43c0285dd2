"""Worked examples for the ledger: Upbit's average buy price, fees, realized/unrealized P&L."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from trader.domain import Fill, Side
from trader.portfolio import (
    LedgerError,
    Portfolio,
    Position,
    next_avg_buy_price,
)
from trader.upbit.convert import fills_from_order_json, iso_to_ms

RATE = D("0.0005")


def fill(uuid: str, side: Side, price: str, volume: str, market: str = "KRW-BTC", ts: int = 0) -> Fill:
    p, v = D(price), D(volume)
    funds = p * v
    return Fill(uuid, "o-" + uuid, market, side, p, v, funds, funds * RATE, ts)


def test_upbit_doc_market_buy_example() -> None:
    # upbit-api.md §2.4: 0.00003736 BTC @ 160594000, funds 5999.79184, paid_fee 2.99989592
    pf = Portfolio(krw=D("1000000"))
    eff = pf.apply_fill(fill("t1", Side.BID, "160594000", "0.00003736"))
    assert eff is not None and eff.realized_pnl is None
    assert eff.fill.funds == D("5999.79184") and eff.fill.fee == D("2.99989592")
    assert pf.krw == D("1000000") - D("5999.79184") - D("2.99989592") == eff.krw_after
    pos = pf.position("KRW-BTC")
    assert pos == Position("KRW-BTC", D("0.00003736"), D("160594000"), D("2.99989592"), D(0), D("2.99989592"))


def test_average_is_volume_weighted_fee_free_and_unchanged_by_sells() -> None:
    pf = Portfolio(krw=D("10000000"))
    pf.apply_fill(fill("b1", Side.BID, "100000", "1"))
    pf.apply_fill(fill("b2", Side.BID, "130000", "2"))
    assert pf.position("KRW-BTC").avg_buy_price == D("120000")
    eff = pf.apply_fill(fill("s1", Side.ASK, "150000", "1.5"))
    assert eff is not None
    pos = pf.position("KRW-BTC")
    assert pos.avg_buy_price == D("120000") and pos.volume == D("1.5")
    buy_fees = D("100000") * RATE + D("260000") * RATE  # 50 + 130
    # realized = proceeds − sell fee − vol × avg − half the attached buy fees
    expected = D("225000") - D("225000") * RATE - D("1.5") * D("120000") - buy_fees / 2
    assert eff.realized_pnl == expected == D("44797.500")
    assert pos.cost_fees_open == buy_fees / 2
    # a buy after a partial sell averages with the remaining volume only
    pf.apply_fill(fill("b3", Side.BID, "90000", "1.5"))
    assert pf.position("KRW-BTC").avg_buy_price == D("105000")


def test_flat_resets_average_and_attached_fees() -> None:
    pf = Portfolio(krw=D("1000000"))
    pf.apply_fill(fill("b1", Side.BID, "3000", "10"))
    pf.apply_fill(fill("b2", Side.BID, "3001", "3.33333333"))
    eff = pf.apply_fill(fill("s1", Side.ASK, "2990", "13.33333333"))
    assert eff is not None
    pos = pf.position("KRW-BTC")
    assert (pos.volume, pos.avg_buy_price, pos.cost_fees_open) == (0, 0, 0)
    # round trip: everything lost is realized, to the won
    assert pf.krw == D("1000000") + pf.realized_pnl_total()
    assert pf.fees_total() == pos.fees_paid > 0
    pf.apply_fill(fill("b4", Side.BID, "5000", "1"))
    assert pf.position("KRW-BTC").avg_buy_price == D("5000")


def test_duplicate_fill_is_a_no_op() -> None:
    pf = Portfolio(krw=D("100000"))
    f = fill("t1", Side.BID, "5000", "2")
    assert pf.apply_fill(f) is not None
    before = pf.to_dict()
    assert pf.apply_fill(f) is None
    assert pf.to_dict() == before
    assert pf.has_applied("t1")


def test_oversell_raises_and_changes_nothing() -> None:
    pf = Portfolio(krw=D("100000"))
    pf.apply_fill(fill("b", Side.BID, "5000", "1"))
    before = pf.to_dict()
    with pytest.raises(LedgerError):
        pf.apply_fill(fill("s", Side.ASK, "5000", "1.00000001"))
    with pytest.raises(LedgerError):
        pf.apply_fill(fill("z", Side.BID, "5000", "0"))
    assert pf.to_dict() == before and not pf.has_applied("s")


def test_unrealized_and_equity() -> None:
    pf = Portfolio(krw=D("100000"))
    pf.apply_fill(fill("b", Side.BID, "10000", "2"))  # funds 20000, fee 10
    # at the average price you lose the buy fee and the sell fee you would pay
    assert pf.unrealized_pnl("KRW-BTC", D("10000")) == D("-20")
    assert pf.unrealized_pnl("KRW-BTC", D("11000")) == D("22000") - D("11") - D("20000") - D("10")
    assert pf.unrealized_pnl("KRW-ETH", D("1")) == 0
    assert pf.equity({"KRW-BTC": D("11000")}) == D("79990") + D("22000")
    assert pf.equity({}) == D("79990") + D("20000")  # unpriced: valued at the average


def test_view_for_strategy() -> None:
    pf = Portfolio(krw=D("50000"))
    pf.apply_fill(fill("b", Side.BID, "10000", "1"))
    v = pf.view("KRW-BTC", pending=True, krw_reserved=D("5002.5"))
    assert v.volume == 1 and v.avg_buy_price == 10000 and v.pending and v.is_open
    assert v.krw_free == D("50000") - D("10005") - D("5002.5")
    assert pf.view("KRW-ETH").volume == 0 and not pf.view("KRW-ETH").pending


def test_to_dict_round_trip_is_json_safe() -> None:
    pf = Portfolio(krw=D("1000000"))
    pf.apply_fill(fill("b1", Side.BID, "160594000", "0.00003736"))
    pf.apply_fill(fill("b2", Side.BID, "4000", "3.5", market="KRW-ETH"))
    pf.apply_fill(fill("s1", Side.ASK, "4100", "1.25", market="KRW-ETH"))
    d = json.loads(json.dumps(pf.to_dict()))
    back = Portfolio.from_dict(d)
    assert back == pf and back.krw == pf.krw and back.markets() == ["KRW-BTC", "KRW-ETH"]
    assert back.position("KRW-ETH") == pf.position("KRW-ETH")
    assert back.apply_fill(fill("s1", Side.ASK, "4100", "1.25", market="KRW-ETH")) is None
    with pytest.raises(ValueError):
        Portfolio.from_dict({**d, "version": 99})


def test_float_is_refused() -> None:
    with pytest.raises(TypeError):
        Portfolio(krw=1000.5)  # type: ignore[arg-type]


def test_adopt_balances_takes_the_exchange_view() -> None:
    pf = Portfolio(krw=D("100000"))
    pf.apply_fill(fill("b", Side.BID, "10000", "2"))
    pf.apply_fill(fill("e", Side.BID, "3000", "1", market="KRW-ETH"))
    realized_before = pf.position("KRW-BTC").realized_pnl
    pf.adopt_balances(D("123456.7"), {"BTC": (D("2"), D("10000")), "KRW-XRP": (D("10"), D("800"))})
    assert pf.krw == D("123456.7")
    assert pf.position("KRW-BTC").cost_fees_open == D("10")  # unchanged position keeps its fees
    assert pf.position("KRW-BTC").realized_pnl == realized_before
    assert pf.position("KRW-ETH").volume == 0  # absent on the exchange → flat
    xrp = pf.position("KRW-XRP")
    assert (xrp.volume, xrp.avg_buy_price, xrp.cost_fees_open) == (D("10"), D("800"), D("8000") * RATE)


def test_next_avg_buy_price() -> None:
    assert next_avg_buy_price(D(0), D(0), D("0.1"), D("123")) == D("123")
    assert next_avg_buy_price(D("1"), D("100"), D("3"), D("200")) == D("175")


def test_iso_to_ms() -> None:
    assert iso_to_ms("2025-08-09T16:44:00.597751+09:00") == 1754725440597
    assert iso_to_ms("1970-01-01T09:00:00+09:00") == 0
    assert iso_to_ms("2024-01-01T00:00:00Z") == 1704067200000
    with pytest.raises(ValueError):
        iso_to_ms("2024-01-01T00:00:00", naive_is_utc=False)


DOC_ORDER = {
    "uuid": "ord-1",
    "side": "bid",
    "ord_type": "price",
    "price": "6000",
    "state": "cancel",
    "market": "KRW-BTC",
    "created_at": "2025-06-25T15:42:25+09:00",
    "identifier": "at-abc",
    "executed_volume": "0.00003736",
    "paid_fee": "2.99989592",
    "trades_count": 1,
    "trades": [
        {
            "market": "KRW-BTC",
            "uuid": "tr-1",
            "price": "160594000",
            "volume": "0.00003736",
            "funds": "5999.79184",
            "trend": "up",
            "created_at": "2025-06-25T15:42:25.123456+09:00",
            "side": "bid",
        }
    ],
}


def test_fills_from_order_json_doc_example() -> None:
    (f,) = fills_from_order_json(DOC_ORDER, RATE, reason="entry")
    assert f == Fill(
        "tr-1", "ord-1", "KRW-BTC", Side.BID, D("160594000"), D("0.00003736"), D("5999.79184"),
        D("2.99989592"), iso_to_ms("2025-06-25T15:42:25.123+09:00"), "entry", "at-abc",
    )
    assert fills_from_order_json({**DOC_ORDER, "trades": []}) == []
    assert fills_from_order_json({k: v for k, v in DOC_ORDER.items() if k != "trades"}) == []


def test_fills_from_order_json_fees_sum_to_paid_fee() -> None:
    trades = [
        {"uuid": "a", "price": "5000", "volume": "1.5", "funds": "7500", "side": "ask",
         "created_at": "2025-06-25T15:42:25+09:00"},
        {"uuid": "b", "price": "4995", "volume": "0.5", "created_at": "2025-06-25T15:42:26+09:00"},
    ]
    order = {"uuid": "o", "side": "ask", "market": "KRW-ETH", "paid_fee": "4.99875", "trades_count": 2,
             "trades": trades}
    fa, fb = fills_from_order_json(order, RATE)
    assert (fa.fee, fb.funds, fb.fee, fb.side, fb.market) == (D("3.75"), D("2497.5"), D("1.24875"), Side.ASK,
                                                              "KRW-ETH")
    # a paid_fee that disagrees (it should not) is honoured by the last trade
    fa2, fb2 = fills_from_order_json({**order, "paid_fee": "5"}, RATE)
    assert fa2.fee + fb2.fee == D("5") and fa2.fee == D("3.75")
    # an incomplete trade list (trades_count larger) is not adjusted
    _, fb3 = fills_from_order_json({**order, "paid_fee": "9", "trades_count": 3}, RATE)
    assert fb3.fee == D("1.24875")
