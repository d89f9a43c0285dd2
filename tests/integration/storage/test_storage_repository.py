"""Repository round trips on SQLite and PostgreSQL: orders, fills, exact decimals, positions,
balances, equity, strategy state, events, DataFrames and rebuilding the ledger from fills."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pandas as pd
import pytest

from trader.domain import Fill, Side
from trader.portfolio import Portfolio, Position
from trader.storage.db import Database
from trader.storage.repository import Repository, rebuild_portfolio
from trader.upbit.client import Balance

RATE = D("0.0005")
PRECISE = ["0.00003736", "2.99989592", "160594000", "5999.79184", "0.00010408",
           "1000.015384615384615384615385", "-123456789012.123456789012345678", "0", "1E-20",
           "99999999999999999999.5"]


def mkfill(uuid: str, side: Side, price: str, volume: str, ts: int, market: str = "KRW-BTC") -> Fill:
    p, v = D(price), D(volume)
    return Fill(uuid, f"o-{uuid}", market, side, p, v, p * v, p * v * RATE, ts, "why", f"id-{uuid}")


def test_order_lifecycle(repo: Repository) -> None:
    assert repo.record_order("at-1", "int-1", "KRW-BTC", "bid", "price", None, None, D("6000"), "entry", 1000)
    # idempotent on identifier: the second record is ignored, the row untouched
    assert not repo.record_order("at-1", "int-X", "KRW-ETH", "ask", "market", None, D("1"), None, "x", 2000)
    row = repo.order("at-1")
    assert row is not None
    assert (row.state, row.intent_id, row.market, row.krw_amount, row.price, row.uuid) == (
        "recorded", "int-1", "KRW-BTC", D("6000"), None, None)
    assert (row.executed_volume, row.paid_fee, row.created_ts_ms) == (0, 0, 1000)
    assert [o.identifier for o in repo.unresolved_orders()] == ["at-1"]

    assert repo.mark_order("at-1", state="submitted", uuid="u-1", ts_ms=1100)
    assert repo.mark_order("at-1", state="cancel", executed_volume=D("0.00003736"), paid_fee=D("2.99989592"),
                           avg_price=D("160594000"), ts_ms=1200)
    row = repo.order("at-1")
    assert row is not None and row.is_final
    assert (row.state, row.uuid, row.executed_volume, row.paid_fee, row.avg_price, row.updated_ts_ms) == (
        "cancel", "u-1", D("0.00003736"), D("2.99989592"), D("160594000"), 1200)
    assert repo.order_by_uuid("u-1") == row
    assert repo.unresolved_orders() == []
    # a stale "wait" after the final state is refused and changes nothing
    assert not repo.mark_order("at-1", state="wait", executed_volume=D(0), ts_ms=1300)
    assert repo.order("at-1") == row
    with pytest.raises(KeyError):
        repo.mark_order("nope", state="wait", ts_ms=1)
    with pytest.raises(ValueError):
        repo.mark_order("at-1", state="bogus", ts_ms=1)
    assert repo.order("nope") is None


def test_unresolved_and_listing(repo: Repository) -> None:
    for i, state in enumerate(["submitted", "wait", "ambiguous", "done", "rejected", None]):
        repo.record_order(f"at-{i}", f"i{i}", "KRW-ETH" if i % 2 else "KRW-BTC", "bid", "limit",
                          D("5000"), D("1"), None, "", 100 + i)
        if state:
            repo.mark_order(f"at-{i}", state=state, error="boom" if state == "rejected" else None, ts_ms=200)
    assert [o.identifier for o in repo.unresolved_orders()] == ["at-0", "at-1", "at-2", "at-5"]
    assert [o.identifier for o in repo.unresolved_orders("KRW-ETH")] == ["at-1", "at-5"]
    assert [o.identifier for o in repo.orders(101, 104)] == ["at-1", "at-2", "at-3"]
    assert [o.identifier for o in repo.orders(states=["done", "rejected"])] == ["at-3", "at-4"]
    assert repo.order("at-4").error == "boom"  # type: ignore[union-attr]


def test_fill_idempotent_and_queries(repo: Repository) -> None:
    f1 = mkfill("t1", Side.BID, "160594000", "0.00003736", 1000)
    f2 = mkfill("t2", Side.ASK, "160000000", "0.00001", 2000)
    f3 = mkfill("t3", Side.BID, "4000", "2", 1500, market="KRW-ETH")
    assert repo.record_fill(f1)
    assert not repo.record_fill(f1)  # duplicate: False, no exception
    assert not repo.record_fill(f1, realized_pnl=D("5"))
    assert repo.record_fill(f2, realized_pnl=D("-1.5"))
    assert repo.record_fill(f3)
    assert repo.fills() == [f1, f2, f3]  # recording order
    assert repo.fills(since_ms=1000, until_ms=2000) == [f1, f3]
    assert repo.fills(market="KRW-ETH") == [f3]
    assert repo.has_fill("t2") and not repo.has_fill("t9")
    assert [p for _, p in repo.fills_with_pnl()] == [None, D("-1.5"), None]
    repo.set_fill_pnl("t1", D("0.1"))
    assert repo.fills_with_pnl(until_ms=1001)[0][1] == D("0.1")
    with pytest.raises(KeyError):
        repo.set_fill_pnl("nope", D(1))


@pytest.mark.parametrize("text", PRECISE)
def test_decimal_round_trips_exactly(repo: Repository, text: str) -> None:
    value = D(text)
    f = Fill("t", "o", "KRW-BTC", Side.BID, value, value, value, value, 0)
    repo.record_fill(f, realized_pnl=value)
    ((back, pnl),) = repo.fills_with_pnl()
    for got in (back.price, back.volume, back.funds, back.fee, pnl):
        assert isinstance(got, D) and got == value
    repo.save_position(Position("KRW-BTC", value, value, value, value, value), 1)
    (pos,) = repo.positions()
    assert pos == Position("KRW-BTC", value, value, value, value, value)


def test_float_money_refused(repo: Repository) -> None:
    f = Fill("t", "o", "KRW-BTC", Side.BID, 1.5, D(1), D(1), D(0), 0)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="float"):
        repo.record_fill(f)
    assert repo.fills() == []


def test_positions_upsert(repo: Repository) -> None:
    pf = Portfolio(krw=D("1000000"))
    pf.apply_fill(mkfill("a", Side.BID, "4000", "2.5", 1, market="KRW-ETH"))
    pf.apply_fill(mkfill("b", Side.BID, "160594000", "0.00003736", 2))
    repo.save_positions([pf.position(m) for m in pf.markets()], 10)
    pf.apply_fill(mkfill("c", Side.ASK, "4100", "1", 3, market="KRW-ETH"))
    repo.save_position(pf.position("KRW-ETH"), 20)
    assert repo.positions() == [pf.position("KRW-BTC"), pf.position("KRW-ETH")]


def test_balances_equity_state_events(repo: Repository) -> None:
    n = repo.add_balance_snapshot(5, [Balance("KRW", D("1000000.0"), D("0"), D("0")),
                                      {"currency": "BTC", "balance": "0.1", "locked": "0.02",
                                       "avg_buy_price": "50000000.0"}], "exchange")
    assert n == 2
    rows = repo.balance_snapshots(source="exchange")
    assert [(r.currency, r.balance, r.locked, r.avg_buy_price) for r in rows] == [
        ("KRW", D("1000000"), 0, 0), ("BTC", D("0.1"), D("0.02"), D("50000000"))]
    assert repo.balance_snapshots(source="ledger") == []
    with pytest.raises(ValueError):
        repo.add_balance_snapshot(5, [], "guess")

    repo.add_equity_point(2000, "KRW-BTC", D("160594000"), D("994000.2"), D("0.00003736"), D("1000000.1"))
    repo.add_equity_point(1000, "KRW-BTC", D("160000000"), D("1000000"), D("0"), D("1000000"))
    pts = repo.equity_points()
    assert [p.ts_ms for p in pts] == [1000, 2000] and pts[1].coin_volume == D("0.00003736")

    state = {"cooldown_until": 123, "high": D("160594000.5"), "nested": {"a": [1, "x"]}}
    repo.save_strategy_state("ladder", state, 1)
    repo.save_strategy_state("ladder", {**state, "cooldown_until": 456}, 2)
    assert repo.load_strategy_state("ladder") == {"cooldown_until": 456, "high": "160594000.5",
                                                  "nested": {"a": [1, "x"]}}
    assert repo.load_strategy_state("other") is None

    repo.log_event(1, "order", "placed 한글", {"identifier": "at-1", "krw": D("6000")})
    repo.log_event(2, "reconcile", "ok", level="warning")
    with pytest.raises(ValueError):
        repo.log_event(3, "x", "y", level="loud")
    ev = repo.events()
    assert [(e.kind, e.level, e.message, e.data) for e in ev] == [
        ("order", "info", "placed 한글", {"identifier": "at-1", "krw": "6000"}),
        ("reconcile", "warning", "ok", None)]
    assert [e.kind for e in repo.events(kind="reconcile")] == ["reconcile"]


def test_frames(repo: Repository) -> None:
    repo.record_fill(mkfill("t1", Side.BID, "160594000", "0.00003736", 1000))
    repo.record_fill(mkfill("t2", Side.ASK, "161000000", "0.00003736", 2000), realized_pnl=D("9.1"))
    repo.record_order("at-1", "i", "KRW-BTC", "bid", "price", None, None, D("6000"), "entry", 900)
    repo.add_equity_point(1000, "KRW-BTC", D("160594000"), D("1"), D("2"), D("3"))
    repo.log_event(1, "k", "m", {"x": 1})

    fills = repo.fills_frame()
    assert list(fills.columns) == ["ts_ms", "trade_uuid", "order_uuid", "identifier", "market", "side",
                                   "price", "volume", "funds", "fee", "realized_pnl", "reason"]
    assert fills["ts_ms"].dtype == "int64" and fills["price"].dtype == "float64"
    assert fills["realized_pnl"].isna().tolist() == [True, False]
    assert fills["funds"].iloc[0] == pytest.approx(5999.79184)
    assert len(repo.fills_frame(since_ms=1500)) == 1

    orders = repo.orders_frame()
    assert orders.loc[0, "identifier"] == "at-1" and orders.loc[0, "krw_amount"] == 6000.0
    assert pd.isna(orders.loc[0, "price"]) and orders["created_ts_ms"].dtype == "int64"
    eq = repo.equity_frame()
    assert eq[["price", "krw", "coin_volume", "equity"]].iloc[0].tolist() == [160594000.0, 1.0, 2.0, 3.0]
    ev = repo.events_frame()
    assert json.loads(ev.loc[0, "data"]) == {"x": 1}
    # empty frames keep their columns and dtypes
    empty = repo.fills_frame(since_ms=10**13)
    assert empty.empty and list(empty.columns) == list(fills.columns) and empty["ts_ms"].dtype == "int64"


def test_rebuild_portfolio_from_fills(db_url: str) -> None:
    fills = [
        mkfill("t1", Side.BID, "160594000", "0.00003736", 1000),
        mkfill("t2", Side.BID, "4000", "2.5", 1000, market="KRW-ETH"),
        mkfill("t3", Side.BID, "160000000", "0.0001", 1001),
        mkfill("t4", Side.ASK, "161000000", "0.00005", 1001),
        mkfill("t5", Side.ASK, "4100", "2.5", 999, market="KRW-ETH"),  # late report, earlier ts
    ]
    live = Portfolio(krw=D("1000000"))
    db = Database.open(db_url)
    repo = Repository(db)
    for f in fills:  # the live rule: commit, then apply
        repo.record_fill(f)
        eff = live.apply_fill(f)
        assert eff is not None
        if eff.realized_pnl is not None:
            repo.set_fill_pnl(f.trade_uuid, eff.realized_pnl)
    db.close()
    # "crash" and restart: same path as start-up
    db = Database.open(db_url)
    try:
        rebuilt = rebuild_portfolio(Repository(db), D("1000000"))
        assert rebuilt == live
        stored = sum((p for _, p in Repository(db).fills_with_pnl() if p is not None), D(0))
        assert stored == live.realized_pnl_total()
    finally:
        db.close()
