"""The official upbit-sdk (AsyncUpbit) works against the simulator by changing only its URLs."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from upbit import AsyncUpbit

from trader.sim.server import SimulatorThread


@pytest.fixture
def sim(make_sim) -> SimulatorThread:
    # the SDK retries and several calls per test: keep Upbit's limits out of the way here
    return make_sim(rate_limit=False)


def client(sim: SimulatorThread) -> AsyncUpbit:
    return AsyncUpbit(access_key=sim.access_key, secret_key=sim.secret_key, base_url=sim.base_url,
                      websocket_base_url=sim.ws_base_url, max_retries=0)


async def test_sdk_accounts_chance_and_quotes(sim: SimulatorThread) -> None:
    async with client(sim) as up:
        accounts = await up.accounts.list()
        krw = next(a for a in accounts if a.currency == "KRW")
        assert Decimal(krw.balance) == Decimal("10000000")
        chance = await up.orders.retrieve_chance(market=sim.market)
        assert chance.bid_fee == "0.0005"
        assert chance.market.id == sim.market
        tickers = await up.tickers.list_by_trading_pairs(markets=sim.market)
        assert tickers[0].market == sim.market
        assert float(tickers[0].trade_price) == sim.exchange.last_price(sim.market)
        sim.control.push_prices([3_080_000, 3_090_000])
        candles = await up.candles.list_minutes(1, market=sim.market, count=3)
        assert candles and float(candles[0].trade_price) == 3_090_000
        days = await up.candles.list_days(market=sim.market, count=2)
        assert float(days[0].trade_price) == 3_090_000
        books = await up.orderbooks.list(markets=sim.market)
        assert len(books[0].orderbook_units) == 30
        assert float(books[0].orderbook_units[0].ask_price) == 3_090_000
        trades = await up.trades.list(market=sim.market, count=2)
        assert float(trades[0].trade_price) == 3_090_000


async def test_sdk_every_order_type(sim: SimulatorThread) -> None:
    sim.control.fund("ETH", "1")
    async with client(sim) as up:
        last = sim.exchange.last_price(sim.market)
        assert last is not None
        rest = await up.orders.create(market=sim.market, side="bid", ord_type="limit", price="2000000",
                                      volume="0.01", identifier="sdk-limit-1")
        assert rest.state == "wait" and rest.identifier == "sdk-limit-1"
        got = await up.orders.retrieve(uuid=rest.uuid)
        assert got.state == "wait" and got.trades == []
        by_ident = await up.orders.retrieve(identifier="sdk-limit-1")
        assert by_ident.uuid == rest.uuid
        buy = await up.orders.create(market=sim.market, side="bid", ord_type="price", price="10000")
        done = await up.orders.retrieve(uuid=buy.uuid)
        assert done.state == "cancel" and Decimal(done.executed_volume) > 0 and len(done.trades) == 1
        sell = await up.orders.create(market=sim.market, side="ask", ord_type="market", volume="0.01")
        assert (await up.orders.retrieve(uuid=sell.uuid)).state == "done"
        for side, args in (("bid", {"price": "10000"}), ("ask", {"volume": "0.005"})):
            for tif in ("ioc", "fok"):
                o = await up.orders.create(market=sim.market, side=side, ord_type="best", time_in_force=tif,
                                           **args)
                final = await up.orders.retrieve(uuid=o.uuid)
                assert final.state in ("done", "cancel") and Decimal(final.executed_volume) > 0
        opened = [o async for o in up.orders.list_open(market=sim.market)]
        assert [o.uuid for o in opened] == [rest.uuid]
        cancelled = await up.orders.cancel(uuid=rest.uuid)
        assert cancelled.state == "wait"
        closed = await up.orders.list_closed(market=sim.market)
        assert rest.uuid in {o.uuid for o in closed}
        assert (await up.orders.retrieve(uuid=rest.uuid)).state == "cancel"
        test = await up.orders.test_create(market=sim.market, side="bid", ord_type="limit", price="2000000",
                                           volume="0.01")
        assert test.state == "wait"
        assert [o.uuid for o in await up.orders.list_by_uuids(uuids=[buy.uuid, sell.uuid])] \
            == [sell.uuid, buy.uuid]


async def test_sdk_ws_public_ticker(sim: SimulatorThread) -> None:
    async with client(sim) as up, up.ws_public.connect_public() as ws:
        await ws.send([{"ticket": "sdk-test"}, {"type": "ticker", "codes": [sim.market]}])
        snap = await asyncio.wait_for(ws.recv(), 10)
        assert snap.code == sim.market and snap.stream_type == "SNAPSHOT"
        sim.control.push_prices([3_100_000])
        live = await asyncio.wait_for(ws.recv(), 10)
        assert live.stream_type == "REALTIME" and float(live.trade_price) == 3_100_000


async def test_sdk_ws_private_my_order(sim: SimulatorThread) -> None:
    async with client(sim) as up, up.ws_private.connect_private() as ws:
        await ws.send([{"ticket": "sdk-private"}, {"type": "myOrder"}])
        await asyncio.sleep(0.2)
        placed = await up.orders.create(market=sim.market, side="bid", ord_type="limit", price="2000000",
                                        volume="0.01")
        event = await asyncio.wait_for(ws.recv(), 10)
        assert event.uuid == placed.uuid and event.state == "wait" and event.ask_bid == "BID"


async def test_sdk_cancel_and_new_and_unknown_path(sim: SimulatorThread) -> None:
    async with client(sim) as up:
        first = await up.orders.create(market=sim.market, side="bid", ord_type="limit", price="2000000",
                                       volume="0.01")
        replaced = await up.orders.cancel_and_new(prev_order_uuid=first.uuid, new_ord_type="limit",
                                                  new_price="2001000", new_volume="remain_only")
        assert replaced.uuid == first.uuid
        new_uuid = replaced.model_extra["new_order_uuid"] if replaced.model_extra else None
        assert new_uuid
        new = await up.orders.retrieve(uuid=new_uuid)
        assert new.price == "2001000.0" and new.volume == "0.01" and new.state == "wait"
        assert (await up.orders.retrieve(uuid=first.uuid)).state == "cancel"
    r = httpx.get(sim.base_url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["name"] == 404
