"""The in-process Exchange: Upbit's numbers, locks, fills, refunds and validation errors."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from trader.domain import Side
from trader.sim.matching import Exchange, SimError

BTC = "KRW-BTC"
T0 = 1_750_833_745_000  # 2025-06-25T15:42:25+09:00


def new_exchange(krw: str = "1000000", price: float = 160_594_000.0, volume: float = 1.0) -> Exchange:
    ex = Exchange(krw=D(krw), markets=[BTC], seed=1)
    ex.on_trade(BTC, T0, price, volume, True)
    return ex


def err(fn, *args, **kw) -> SimError:
    with pytest.raises(SimError) as info:
        fn(*args, **kw)
    return info.value


def test_doc_example_market_buy_6000_krw() -> None:
    ex = new_exchange()
    accepted = ex.create_order(BTC, "bid", "price", price=D(6000))
    assert accepted["state"] == "wait" and accepted["reserved_fee"] == "3.0"
    assert accepted["locked"] == "6003.0"
    assert accepted["volume"] is None and accepted["created_at"] == "2025-06-25T15:42:25+09:00"
    order = ex.get_order(uuid=accepted["uuid"])
    assert order["state"] == "cancel"
    assert order["executed_volume"] == "0.00003736"
    assert order["paid_fee"] == "2.99989592"
    assert order["remaining_fee"] == "0.00010408"
    assert order["locked"] == "0.20826408"
    assert [t["funds"] for t in order["trades"]] == ["5999.79184"]
    assert order["trades"][0]["price"] == "160594000.0"
    assert order["trades"][0]["created_at"] == "2025-06-25T15:42:25.000000+09:00"
    bal, locked, _ = ex.balance("KRW")
    assert (bal, locked) == (D("1000000") - D("5999.79184") - D("2.99989592"), 0)
    assert ex.balance("BTC") == (D("0.00003736"), 0, D("160594000"))


def test_doc_example_limit_bid_locks_notional_plus_fee_then_fills_as_maker() -> None:
    ex = new_exchange(price=156_000_000.0)
    o = ex.create_order(BTC, "bid", "limit", price=D(155_772_000), volume=D("0.0001"))
    assert o["reserved_fee"] == "7.7886" and o["locked"] == "15584.9886"
    assert ex.balance("KRW")[:2] == (D("1000000") - D("15584.9886"), D("15584.9886"))
    assert ex.resting_band(BTC) == (155_772_000.0, float("inf"))
    assert ex.on_trade(BTC, T0 + 1000, 155_800_000.0, 1.0, False) == []  # above the bid: no fill
    fills = ex.on_trade(BTC, T0 + 2000, 155_700_000.0, 0.00004, False)  # through it: partial
    assert [(f.price, f.volume, f.side) for f in fills] == [(D(155_772_000), D("0.00004"), Side.BID)]
    assert ex.get_order(uuid=o["uuid"])["state"] == "wait"
    fills = ex.on_trade(BTC, T0 + 3000, 155_772_000.0, 5.0, False)
    assert sum(f.volume for f in fills) == D("0.00006")
    final = ex.get_order(uuid=o["uuid"])
    assert final["state"] == "done" and final["executed_volume"] == "0.0001" and final["locked"] == "0.0"
    assert final["paid_fee"] == "7.7886" and len(final["trades"]) == 2
    assert ex.balance("KRW") == (D("1000000") - D("15584.9886"), 0, 0)
    assert ex.balance("BTC") == (D("0.0001"), 0, D(155_772_000))
    assert ex.resting_band(BTC) == (float("-inf"), float("inf"))


def test_sell_fee_off_proceeds_avg_price_kept_then_reset_and_row_removed() -> None:
    ex = new_exchange()
    ex.fund("BTC", D("0.001"), avg_buy_price=D(100_000_000))
    o = ex.create_order(BTC, "ask", "limit", price=D(161_000_000), volume=D("0.0005"))
    assert ex.balance("BTC") == (D("0.0005"), D("0.0005"), D(100_000_000))
    ex.on_trade(BTC, T0 + 1, 161_000_000.0, 1.0, True)
    assert ex.get_order(uuid=o["uuid"])["state"] == "done"
    proceeds = D(161_000_000) * D("0.0005")
    assert ex.balance("KRW")[0] == D(1_000_000) + proceeds - proceeds * D("0.0005")
    assert ex.balance("BTC") == (D("0.0005"), 0, D(100_000_000))  # sells leave avg unchanged
    s = ex.create_order(BTC, "ask", "market", volume=D("0.0005"))
    assert ex.get_order(uuid=s["uuid"])["state"] == "done"
    assert ex.balance("BTC") == (0, 0, 0)
    assert [r["currency"] for r in ex.accounts()] == ["KRW"]


def test_cancel_returns_order_as_accepted_and_refunds() -> None:
    ex = new_exchange()
    o = ex.create_order(BTC, "bid", "limit", price=D(150_000_000), volume=D("0.001"), identifier="id-1")
    c = ex.cancel_order(identifier="id-1")
    assert c["state"] == "wait" and c["uuid"] == o["uuid"]
    assert ex.get_order(uuid=o["uuid"])["state"] == "cancel"
    assert ex.balance("KRW") == (D(1_000_000), 0, 0)
    assert err(ex.cancel_order, uuid=o["uuid"]).name == "order_not_found"
    assert err(ex.get_order, uuid="nope").status == 404


def test_ioc_and_fok_limits() -> None:
    ex = new_exchange(krw="100000000", volume=0.01)
    book = ex.book(BTC)
    best, size = book.asks[0]
    # IOC above the whole first level: takes level 1 (and deeper within the limit), cancels the rest
    ioc = ex.create_order(BTC, "bid", "limit", price=best, volume=size + D("0.01"), time_in_force="ioc")
    got = ex.get_order(uuid=ioc["uuid"])
    assert got["state"] == "cancel" and D(got["executed_volume"]) == size
    assert ex.balance("KRW")[1] == 0
    two_levels = book.asks[1][1] + D("0.01")  # level 1 is gone, level 2 cannot cover this
    fok = ex.create_order(BTC, "bid", "limit", price=best + 1000, volume=two_levels, time_in_force="fok")
    got = ex.get_order(uuid=fok["uuid"])
    assert got["state"] == "cancel" and got["executed_volume"] == "0.0" and got["trades"] == []
    assert ex.balance("KRW")[1] == 0


@pytest.mark.parametrize(
    ("kwargs", "status", "name"),
    [
        ({"market": "KRW-BTCs", "side": "bid", "ord_type": "price", "price": D(10000)}, 400,
         "notfoundmarket"),
        ({"side": "bid", "ord_type": "limit", "price": D(160_594_500), "volume": D("0.001")}, 400,
         "invalid_price_bid"),
        ({"side": "ask", "ord_type": "limit", "price": D(160_594_500), "volume": D("0.001")}, 400,
         "invalid_price_ask"),
        ({"side": "bid", "ord_type": "limit", "price": D(160_000_000), "volume": D("0.00001")}, 400,
         "under_min_total_bid"),
        ({"side": "ask", "ord_type": "limit", "price": D(160_000_000), "volume": D("0.00001")}, 400,
         "under_min_total_ask"),
        ({"side": "bid", "ord_type": "price", "price": D(1_000_000_001)}, 400, "over_krw_funds_bid"),
        ({"side": "bid", "ord_type": "price", "price": D(2_000_000)}, 400, "insufficient_funds_bid"),
        ({"side": "ask", "ord_type": "limit", "price": D(160_000_000), "volume": D("0.001")}, 400,
         "insufficient_funds_ask"),
        ({"side": "bid", "ord_type": "limit", "price": D(160_000_000), "volume": D("0.000000001")}, 400,
         "invalid_volume_bid"),
        ({"side": "bid", "ord_type": "best", "price": D(10000)}, 400, "invalid_time_in_force"),
        ({"side": "bid", "ord_type": "price", "price": D(10000), "time_in_force": "ioc"}, 400,
         "invalid_time_in_force"),
        ({"side": "bid", "ord_type": "market", "volume": D(1)}, 400, "create_bid_error"),
        ({"side": "ask", "ord_type": "price", "price": D(10000)}, 400, "create_ask_error"),
    ],
)
def test_validation_errors(kwargs: dict, status: int, name: str) -> None:
    ex = new_exchange()
    args = {"market": BTC, **kwargs}
    e = err(ex.create_order, args.pop("market"), args.pop("side"), args.pop("ord_type"), **args)
    assert (e.status, e.name) == (status, name)
    assert ex.balance("KRW") == (D(1_000_000), 0, 0)
    assert ex.open_orders() == []


def test_duplicated_identifier_forever() -> None:
    ex = new_exchange()
    o = ex.create_order(BTC, "bid", "limit", price=D(150_000_000), volume=D("0.001"), identifier="x")
    ex.cancel_order(uuid=o["uuid"])
    e = err(ex.create_order, BTC, "bid", "limit", price=D(150_000_000), volume=D("0.001"), identifier="x")
    assert e.name == "duplicated_identifier"


def test_market_orders_must_fit_in_30_levels() -> None:
    ex = new_exchange(krw="500000000", volume=0.0001)  # a thin book
    depth_krw = sum(p * s for p, s in ex.book(BTC).asks)
    e = err(ex.create_order, BTC, "bid", "price", price=(depth_krw + 10000).quantize(D(1)))
    assert e.name == "create_bid_error"
    ex.fund("BTC", D(10))
    e = err(ex.create_order, BTC, "ask", "market", volume=sum(s for _, s in ex.book(BTC).bids) + D("0.1"))
    assert e.name == "create_ask_error"
    # a market buy that fits walks several levels
    o = ex.create_order(BTC, "bid", "price", price=(depth_krw / 2).quantize(D(1)))
    assert ex.get_order(uuid=o["uuid"])["trades_count"] > 1


def test_events_for_the_private_websocket() -> None:
    ex = new_exchange()
    events: list[tuple[str, dict]] = []
    ex.subscribe(lambda kind, payload: events.append((kind, payload)))
    o = ex.create_order(BTC, "bid", "price", price=D(6000))
    kinds = [(k, p.get("state")) for k, p in events]
    assert ("myOrder", "wait") in kinds and ("myOrder", "trade") in kinds and ("myOrder", "cancel") in kinds
    trade = next(p for k, p in events if k == "myOrder" and p["state"] == "trade")
    assert trade["uuid"] == o["uuid"] and trade["price"] == 160_594_000.0 and trade["volume"] == 0.00003736
    assert trade["is_maker"] is False and trade["ask_bid"] == "BID"
    assets = [p for k, p in events if k == "myAsset"]
    assert assets and {a["currency"] for a in assets[-1]["assets"]} == {"KRW", "BTC"}


def test_seeded_uuids_are_reproducible() -> None:
    a, b = new_exchange(), new_exchange()
    assert a.create_order(BTC, "bid", "price", price=D(6000))["uuid"] == \
        b.create_order(BTC, "bid", "price", price=D(6000))["uuid"]
