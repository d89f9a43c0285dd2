"""Limit-order timeouts counted in market time (the last tick's ts) when the manager has a market
clock, with a wall-clock safety net for a stalled feed; wall time only without a market clock."""

import asyncio
from decimal import Decimal as D

from tests.unit.execution.fakes import FakeExchange, FakeRepo
from trader.domain import Intent, IntentKind, OrdType
from trader.execution.order_manager import OrderManager, limit_wall_limit_s
from trader.execution.states import OrderStatus
from trader.portfolio import Portfolio

MARKET = "KRW-BTC"
T0 = 1_704_067_200_000  # market time of the last tick when the order goes out


class MarketClock:
    """What TradingLoop gives the manager: the last tick's ts_ms (None before any tick)."""

    def __init__(self, ts: int | None = T0) -> None:
        self.ts = ts

    def __call__(self) -> int | None:
        return self.ts


def setup(market_clock=None, **kw):
    ex = FakeExchange(D("1000000"), D("5000000"))
    pf = Portfolio(D("1000000"))
    opts = {"poll_interval_s": 0.01, **kw}
    om = OrderManager(
        ex, FakeRepo(), pf, namespace="t", clock=lambda: 1, market_poll_s=0.001, market_clock=market_clock,
        **opts,
    )  # fmt: skip
    return ex, pf, om


def limit_buy(timeout_s: float, iid: str = "b1") -> Intent:
    return Intent(MARKET, IntentKind.BUY, "entry", 1, iid, krw=D("100000"), limit_price=D("4000000"),
                  timeout_s=timeout_s, on_timeout="market")  # fmt: skip


async def settle(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_market_time_past_the_deadline_cancels_and_falls_back_while_little_wall_time_passes():
    clock = MarketClock()
    ex, pf, om = setup(clock, poll_interval_s=3600)  # only the market-time wake can end the wait in time
    order = await om.submit_intent_fast(limit_buy(timeout_s=120))
    assert order.sent_market_ms == T0
    ex.fill_limit(order.uuid, D("0.01"))  # 40,000 KRW worth before the timeout
    confirm = asyncio.create_task(om.confirm(order))
    clock.ts = T0 + 119_999  # one ms short of the deadline: the order keeps resting
    om.note_market_time(clock.ts)
    await settle()
    assert not confirm.done() and not order.is_final
    clock.ts = T0 + 120_000  # what the backtest does: timed out on the first trade at/after the deadline
    om.note_market_time(clock.ts)
    res = await asyncio.wait_for(confirm, 5)
    assert [o.ord_type for o in res.orders] == [OrdType.LIMIT, OrdType.PRICE]
    assert res.orders[0].status is OrderStatus.CANCELED
    assert res.orders[1].price == D("60000")  # on_timeout=market buys the rest of the KRW
    assert res.status == "filled" and res.filled_volume == D("0.01") + D("0.012")
    assert pf.krw == ex.krw and ex.krw_locked == 0


async def test_market_time_is_checked_on_each_poll_without_a_notification():
    clock = MarketClock()
    _ex, _pf, om = setup(clock)
    order = await om.submit_intent_fast(limit_buy(timeout_s=3600))
    confirm = asyncio.create_task(om.confirm(order))
    clock.ts = T0 + 3_600_000  # market time moved but nobody told the manager: the poll sees it
    res = await asyncio.wait_for(confirm, 5)
    assert res.orders[0].status is OrderStatus.CANCELED and res.orders[1].ord_type is OrdType.PRICE


async def test_stalled_market_time_still_times_out_by_the_wall_safety_net():
    clock = MarketClock()
    # wall bound = max(1 × 0.02 s, 0.02 s + 1 s) = 1.02 s, long after the 0.02 s timeout
    _ex, _pf, om = setup(clock, limit_wall_factor=1.0, limit_wall_margin_s=1.0)
    order = await om.submit_intent_fast(limit_buy(timeout_s=0.02))
    confirm = asyncio.create_task(om.confirm(order))
    await asyncio.sleep(0.1)  # 5 × timeout_s of wall time, no market time: still resting
    assert not confirm.done() and order.status is OrderStatus.ACCEPTED
    res = await asyncio.wait_for(confirm, 10)  # the feed never moves: the safety net fires
    assert [o.ord_type for o in res.orders] == [OrdType.LIMIT, OrdType.PRICE]
    assert res.orders[0].status is OrderStatus.CANCELED and res.status == "filled"


async def test_order_sent_before_any_tick_counts_from_the_first_market_time_seen():
    clock = MarketClock(None)
    _ex, _pf, om = setup(clock, poll_interval_s=3600)
    order = await om.submit_intent_fast(limit_buy(timeout_s=60))
    assert order.sent_market_ms is None
    confirm = asyncio.create_task(om.confirm(order))
    clock.ts = T0
    om.note_market_time(T0)
    await settle()
    assert not confirm.done()
    clock.ts = T0 + 60_000
    om.note_market_time(clock.ts)
    res = await asyncio.wait_for(confirm, 5)
    assert res.orders[0].status is OrderStatus.CANCELED


def test_wall_safety_net_bound():
    assert limit_wall_limit_s(120) == 600  # 5 × timeout_s
    assert limit_wall_limit_s(2) == 62  # timeout_s + 60 s
    assert limit_wall_limit_s(0) == 60


async def test_without_a_market_clock_the_timeout_is_wall_time_as_before():
    _ex, _pf, om = setup(None)
    long_order = await om.submit_intent_fast(limit_buy(timeout_s=3600, iid="long"))
    assert long_order.sent_market_ms is None
    waiting = asyncio.create_task(om.confirm(long_order))
    om.note_market_time(T0 + 10**9)  # no market clock: market time means nothing to the manager
    await asyncio.sleep(0.05)
    assert not waiting.done() and long_order.status is OrderStatus.ACCEPTED
    waiting.cancel()
    short = await om.submit_intent_fast(limit_buy(timeout_s=0.05, iid="short"))
    res = await asyncio.wait_for(om.confirm(short), 5)  # 0.05 s of wall time, no tick at all
    assert [o.ord_type for o in res.orders] == [OrdType.LIMIT, OrdType.PRICE]
    assert res.orders[0].status is OrderStatus.CANCELED
