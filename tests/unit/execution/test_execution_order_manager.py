"""OrderManager against an in-memory exchange: idempotent sends, fills booked once, sizing, timeouts."""

import asyncio
from dataclasses import replace
from decimal import Decimal as D

import pytest

from tests.unit.execution.fakes import FakeExchange, FakeRepo
from trader.domain import Intent, IntentKind, OrderState, OrdType
from trader.execution.order_manager import OrderManager, attempt_identifier
from trader.execution.states import OrderStatus
from trader.portfolio import Portfolio
from trader.upbit.errors import AmbiguousOrderError, RateLimitError, RetryableError

MARKET = "KRW-BTC"


class CheckedRepo(FakeRepo):
    """Asserts the write order: an order is recorded before it is sent; a fill before the ledger."""

    def __init__(self, portfolio: Portfolio) -> None:
        super().__init__()
        self.portfolio = portfolio

    def record_fill(self, fill, realized_pnl=None):
        assert not self.portfolio.has_applied(fill.trade_uuid), "ledger applied a fill before it was stored"
        return super().record_fill(fill, realized_pnl)


class RecordingExchange(FakeExchange):
    repo: FakeRepo

    async def create_order(self, market, side, ord_type, *, identifier, **kw):
        assert identifier in self.repo.orders, "order sent before it was recorded"
        return await super().create_order(market, side, ord_type, identifier=identifier, **kw)


async def no_sleep(_s: float) -> None:
    await asyncio.sleep(0)


def setup(krw="1000000", price="5000000", **kw):
    ex = RecordingExchange(D(krw), D(price))
    pf = Portfolio(D(krw))
    repo = CheckedRepo(pf)
    ex.repo = repo
    om = OrderManager(
        ex, repo, pf, namespace="t", clock=lambda: 1, sleep=no_sleep, poll_interval_s=0.01,
        market_poll_s=0.001, ambiguous_grace_s=0.02, **kw,
    )  # fmt: skip
    return ex, repo, pf, om


def buy(krw="100000", iid="b1", **kw):
    return Intent(MARKET, IntentKind.BUY, "entry", 1, iid, krw=D(krw), **kw)


def sell(volume=None, iid="s1", kind=IntentKind.SELL, **kw):
    return Intent(MARKET, kind, "stop_loss", 2, iid, volume=None if volume is None else D(volume), **kw)


async def test_market_buy_cancel_with_dust_counts_as_filled_and_books_each_fill_once():
    ex, repo, pf, om = setup()
    res = await om.execute(buy())
    assert res.status == "filled"
    (order,) = res.orders
    assert order.ord_type is OrdType.PRICE and order.status is OrderStatus.FILLED
    assert ex.orders[order.uuid].snap.state is OrderState.CANCEL
    assert res.filled_volume == D("0.02") and res.avg_price == D("5000000")
    assert pf.position(MARKET).volume == D("0.02")
    assert pf.krw == ex.krw  # ledger == exchange, fees included
    assert list(repo.fills) == [f.trade_uuid for f in res.fills]
    assert repo.orders[order.identifier]["state"] == "done"
    assert order.identifier == buy().identifier("t")


async def test_rate_limit_before_send_is_retried_with_the_same_identifier():
    ex, _repo, _pf, om = setup()
    ex.script = [("before", RateLimitError(429, "too_many_requests", retry_after=0.0))] * 3
    res = await om.execute(buy())
    assert res.status == "filled"
    idents = [c for c in ex.calls if c.startswith("create")]
    assert len(idents) == 4 and len(set(idents)) == 1
    assert len(ex.orders) == 1


async def test_ambiguous_after_the_exchange_created_it_is_resolved_by_lookup_not_resent():
    ex, _repo, pf, om = setup()
    ex.script = [("after", AmbiguousOrderError(buy().identifier("t"), "read timeout"))]
    res = await om.execute(buy())
    assert res.status == "filled"
    assert len(ex.orders) == 1
    assert sum(c.startswith("create") for c in ex.calls) == 1
    assert pf.krw == ex.krw


async def test_ambiguous_that_never_reached_the_exchange_is_resent_after_grace_with_same_identifier():
    ex, _repo, _pf, om = setup()
    ex.script = [("before", AmbiguousOrderError("x", "connection reset"))]
    res = await om.execute(buy())
    assert res.status == "filled"
    creates = [c for c in ex.calls if c.startswith("create")]
    assert creates == [f"create {buy().identifier('t')}"] * 2
    assert len(ex.orders) == 1


async def test_ambiguous_whose_lookup_keeps_failing_stays_in_doubt_then_resolves():
    ex, repo, _pf, om = setup()
    ex.script = [("after", AmbiguousOrderError("x", "502"))]
    ex.get_script = [RetryableError(503, "unavailable")] * 5
    res = await om.execute(buy())
    assert res.status == "filled" and len(ex.orders) == 1
    assert "ambiguous" in [s.split(":")[1] for k, s in repo.log if k == "mark"]


async def test_resend_that_hits_duplicated_identifier_looks_the_order_up():
    ex, _repo, _pf, om = setup()
    # the first request is refused as ambiguous but *did* create the order; the lookup misses it
    # during the grace (a lagging read), so the manager re-sends: the exchange says duplicate
    ex.script = [("after", AmbiguousOrderError("x", "timeout"))]
    from trader.upbit.errors import OrderNotFoundError

    ex.get_script = [OrderNotFoundError(404, "order_not_found")] * 50
    task = asyncio.create_task(om.execute(buy()))
    await asyncio.sleep(0.05)
    ex.get_script.clear()
    res = await task
    assert res.status == "filled" and len(ex.orders) == 1
    assert len(set(c for c in ex.calls if c.startswith("create"))) == 1


async def test_market_sell_cancels_resting_sells_and_never_exceeds_free_balance():
    ex, _repo, _pf, om = setup()
    await om.execute(buy())  # 0.02 BTC
    # a resting take-profit limit sell locks half of it
    tp = Intent(MARKET, IntentKind.SELL_PARTIAL, "take_profit", 3, "tp1", volume=D("0.01"),
                limit_price=D("6000000"), timeout_s=60)  # fmt: skip
    tp_order = await om.submit_intent_fast(tp)
    assert tp_order.status is OrderStatus.ACCEPTED
    assert ex.coin_locked["BTC"] == D("0.01")
    # the exchange holds a hair less than the ledger thinks (e.g. rounding of a fee elsewhere)
    ex.coin["BTC"] -= D("0.00000001")
    res = await om.execute(sell(), last_price=D("5000000"))
    assert res.status == "filled"
    assert ex.orders[tp_order.uuid].snap.state is OrderState.CANCEL
    assert tp_order.superseded and tp_order.status is OrderStatus.CANCELED
    assert res.filled_volume == D("0.01999999")
    assert ex.coin["BTC"] == 0
    # the superseded take-profit does not fall back to a market order of its own
    tp_res = await om.confirm(tp_order)
    assert tp_res.filled_volume == 0 and len(tp_res.orders) == 1


async def test_sell_below_minimum_is_dust_and_nothing_is_sent():
    ex, _repo, _pf, om = setup()
    await om.execute(buy("10000"))  # 0.002 BTC = 10,000 KRW
    res = await om.execute(sell("0.0005", kind=IntentKind.SELL_PARTIAL), last_price=D("5000000"))
    assert res.status == "dust" and res.filled_volume == 0
    assert sum(c.startswith("create") for c in ex.calls) == 1


async def test_partial_sell_leaving_unsellable_remainder_sells_everything():
    _ex, _repo, _pf, om = setup()
    await om.execute(buy("12000"))  # 0.0024 BTC = 12,000 KRW
    res = await om.execute(sell("0.0015", kind=IntentKind.SELL_PARTIAL), last_price=D("5000000"))
    assert res.filled_volume == D("0.0024")


async def test_limit_buy_partial_fill_times_out_cancels_and_buys_the_rest_at_market():
    ex, _repo, pf, om = setup()
    intent = buy("100000", limit_price=D("4000000"), timeout_s=0.05, on_timeout="market")
    order = await om.submit_intent_fast(intent)
    assert order.ord_type is OrdType.LIMIT and order.volume == D("0.025")
    ex.fill_limit(order.uuid, D("0.01"))  # 40,000 KRW worth
    res = await om.confirm(order)
    assert [o.ord_type for o in res.orders] == [OrdType.LIMIT, OrdType.PRICE]
    assert res.orders[0].status is OrderStatus.CANCELED
    assert res.orders[1].price == D("60000")  # the rest of the KRW
    assert res.orders[1].identifier == attempt_identifier(intent, "t", 1) != order.identifier
    assert res.filled_volume == D("0.01") + D("0.012")
    assert res.avg_price == (D("40000") + D("60000")) / D("0.022")
    assert pf.krw == ex.krw + ex.krw_locked and ex.krw_locked == 0
    assert pf.position(MARKET).volume == ex.coin["BTC"]


async def test_limit_sell_timeout_with_cancel_policy_gives_up_with_partial_result():
    ex, _repo, pf, om = setup()
    await om.execute(buy())
    intent = sell("0.02", kind=IntentKind.SELL_PARTIAL, limit_price=D("6000000"), timeout_s=0.05,
                  on_timeout="cancel")  # fmt: skip
    order = await om.submit_intent_fast(intent)
    ex.fill_limit(order.uuid, D("0.005"))
    res = await om.confirm(order)
    assert res.status == "partial" and res.filled_volume == D("0.005") and len(res.orders) == 1
    assert ex.coin["BTC"] == D("0.015") and pf.position(MARKET).volume == D("0.015")


async def test_limit_sell_reprice_uses_the_new_best_price():
    last = {"p": D("5100000")}
    ex, _repo, _pf, om = setup(price_source=lambda m: last["p"])
    await om.execute(buy())
    intent = sell("0.02", kind=IntentKind.SELL_PARTIAL, limit_price=D("6000000"), timeout_s=0.03,
                  on_timeout="reprice")  # fmt: skip
    order = await om.submit_intent_fast(intent)

    async def fill_second():
        while len(ex.orders) < 3:
            await asyncio.sleep(0.005)
        second = list(ex.orders)[-1]
        ex.fill_limit(second, D("0.02"))
        om.notify({"uid": second, "s": "trade"})

    filler = asyncio.create_task(fill_second())
    res = await asyncio.wait_for(om.confirm(order), 5)
    await filler
    assert [o.price for o in res.orders] == [D("6000000"), D("5100000")]
    assert res.status == "filled" and res.filled_volume == D("0.02")


async def test_myorder_event_wakes_the_wait_before_the_poll_interval():
    ex, _repo, _pf, om = setup()
    om.settings = replace(om.settings, poll_interval_s=3600)  # only the event can wake the wait in time
    intent = buy(limit_price=D("4000000"), timeout_s=3600)
    order = await om.submit_intent_fast(intent)
    ex.fill_limit(order.uuid, D("0.025"))
    om.notify({"uid": order.uuid, "s": "done"})
    res = await asyncio.wait_for(om.confirm(order), 5)
    assert res.status == "filled"


async def test_buy_refused_for_funds_is_resized_from_the_exchange_balance():
    ex, _repo, _pf, om = setup()
    ex.krw = D("50000")  # the ledger believes 1,000,000
    res = await om.execute(buy("100000"))
    assert res.status == "filled"
    assert res.orders[0].status is OrderStatus.REJECTED
    assert res.orders[1].price == D("49975")  # 50,000 / 1.0005 floored
    assert res.orders[1].identifier == attempt_identifier(buy(), "t", 1)


async def test_reserved_krw_counts_in_flight_buys():
    _ex, _repo, _pf, om = setup()
    order = await om.submit_intent_fast(buy("100000", limit_price=D("4000000"), timeout_s=60))
    assert om.reserved_krw() == D("100000") * D("1.0005")
    await om.cancel(order)
    assert om.reserved_krw() == 0


@pytest.mark.parametrize("kind", [IntentKind.SELL, IntentKind.SELL_PARTIAL])
async def test_sell_without_position_is_refused_locally(kind):
    _ex, repo, _pf, om = setup()
    res = await om.execute(sell("0.01", kind=kind), last_price=D("5000000"))
    assert res.status == "rejected" and not repo.orders
