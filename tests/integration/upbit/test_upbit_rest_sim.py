"""UpbitRestClient over loopback HTTP against the real simulator: every call, typed errors, retries."""

from __future__ import annotations

import asyncio
import logging
import uuid
from decimal import Decimal

import pytest

from trader.domain import OrderState, OrdType, Side
from trader.upbit.errors import (
    AmbiguousOrderError,
    DuplicateIdentifierError,
    FinalError,
    InsufficientFundsError,
    OrderNotFoundError,
    RetryableError,
)
from trader.upbit.ratelimit import GROUP_LIMITS, RateLimiter
from trader.upbit.rest import UpbitRestClient
from trader.upbit.rules import round_price


# every test runs with orders through the SDK and through the direct path (trader.upbit.direct):
# both must give the same results, the same typed errors and the same retry behaviour
@pytest.fixture(params=[False, True], ids=["sdk-orders", "direct-orders"])
def direct_orders(request) -> bool:
    return bool(request.param)


@pytest.fixture
async def client(sim_server, direct_orders):
    c = UpbitRestClient(sim_server.access_key, sim_server.secret_key, sim_server.base_url, timeout_s=5.0,
                        direct_orders=direct_orders)  # fmt: skip
    yield c
    await c.close()


def ident() -> str:
    return f"it-{uuid.uuid4().hex[:20]}"


async def last_price(client: UpbitRestClient, market: str) -> Decimal:
    (t,) = await client.ticker([market])
    return Decimal(str(t["trade_price"]))


async def test_every_rest_call(client: UpbitRestClient, sim_server) -> None:
    m = sim_server.market
    accounts = await client.accounts()
    assert accounts["KRW"].balance > 0
    chance = await client.chance(m)
    assert chance.market == m and chance.bid_fee == Decimal("0.0005") and chance.min_total_bid == 5000
    price = await last_price(client, m)
    (book,) = await client.orderbook([m])
    assert book["market"] == m and book["orderbook_units"]
    ticks = await client.trades_ticks(m, 5)
    assert ticks and ticks[0]["market"] == m and "sequential_id" in ticks[0]
    candles = await client.candles_minutes(m, 1, count=3)
    assert candles and candles[0]["market"] == m

    # market buy: fills at once, ends `cancel` with executed volume (Upbit's dust rule) or done
    buy = await client.create_order(m, Side.BID, OrdType.PRICE, identifier=ident(), price=Decimal(10000))
    got = await client.get_order(uuid=buy.uuid)
    assert got.executed_volume > 0 and got.is_final and got.trades
    assert sum(f.funds for f in got.trades) <= Decimal(10000)
    assert got.trades[0].fee == got.trades[0].funds * chance.bid_fee
    by_ident = await client.get_order(identifier=buy.identifier)
    assert by_ident.uuid == buy.uuid

    # resting limit bid below the market: open, then cancelled
    limit = await client.create_order(m, Side.BID, OrdType.LIMIT, identifier=ident(),
                                      price=round_price(price * Decimal("0.8")), volume=Decimal("0.01"))
    assert limit.state is OrderState.WAIT and limit.locked > 0
    assert [o.uuid for o in await client.open_orders(m)] == [limit.uuid]
    await client.cancel_order(uuid=limit.uuid)
    assert (await client.get_order(uuid=limit.uuid)).state is OrderState.CANCEL
    assert await client.open_orders(m) == []
    closed = await client.closed_orders(m)
    assert {buy.uuid, limit.uuid} <= {o.uuid for o in closed}

    # sell what was bought, by volume
    coin = m.split("-")[1]
    vol = (await client.accounts())[coin].balance
    sell = await client.create_order(m, Side.ASK, OrdType.MARKET, identifier=ident(), volume=vol)
    assert (await client.get_order(uuid=sell.uuid)).executed_volume == vol


async def test_typed_final_errors(client: UpbitRestClient, sim_server) -> None:
    m = sim_server.market
    with pytest.raises(InsufficientFundsError):
        await client.create_order(m, Side.BID, OrdType.PRICE, identifier=ident(), price=Decimal(900_000_000))
    with pytest.raises(OrderNotFoundError):
        await client.get_order(uuid=str(uuid.uuid4()))
    with pytest.raises(OrderNotFoundError):
        await client.get_order(identifier="never-sent")
    same = ident()
    await client.create_order(m, Side.BID, OrdType.PRICE, identifier=same, price=Decimal(6000))
    with pytest.raises(DuplicateIdentifierError):
        await client.create_order(m, Side.BID, OrdType.PRICE, identifier=same, price=Decimal(6000))
    with pytest.raises(FinalError) as info:  # under the 5,000 KRW minimum
        await client.create_order(m, Side.BID, OrdType.PRICE, identifier=ident(), price=Decimal(1000))
    assert "under_min_total" in info.value.name


async def test_429_is_waited_out_and_never_doubles_an_order(client: UpbitRestClient, sim_server) -> None:
    m = sim_server.market
    sim_server.control.fail_next(2, 429)
    i = ident()
    order = await client.create_order(m, Side.BID, OrdType.PRICE, identifier=i, price=Decimal(6000))
    assert order.identifier == i
    assert (await client.get_order(identifier=i)).uuid == order.uuid
    everything = await client.closed_orders(m) + await client.open_orders(m)
    assert [o.uuid for o in everything if o.identifier == i] == [order.uuid]  # placed exactly once


async def test_burst_without_pacing_hits_real_429s_and_still_places_each_order_once(
    sim_server, caplog: pytest.LogCaptureFixture, direct_orders: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="trader.upbit.rest")
    # our own limiter opened wide, so the simulator's limiter answers 429 and the retry path runs
    loose = RateLimiter({g: 1000 for g in GROUP_LIMITS})
    client = UpbitRestClient(sim_server.access_key, sim_server.secret_key, sim_server.base_url,
                             limiter=loose, max_attempts=10, direct_orders=direct_orders)
    m = sim_server.market
    ids = [ident() for _ in range(20)]
    try:
        orders = await asyncio.gather(*(
            client.create_order(m, Side.BID, OrdType.PRICE, identifier=i, price=Decimal(6000)) for i in ids))
        assert sorted(o.identifier for o in orders) == sorted(ids)
        closed = await client.closed_orders(m, limit=100)
        assert sorted(o.identifier for o in closed if o.identifier in ids) == sorted(ids)  # once each
        assert [r for r in caplog.records if "429" in r.getMessage()]  # the simulator did push back
    finally:
        await client.close()


async def test_paced_burst_gets_no_429(client: UpbitRestClient, sim_server, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="trader.upbit.rest")
    m = sim_server.market
    await asyncio.gather(*(client.create_order(m, Side.BID, OrdType.PRICE, identifier=ident(),
                                               price=Decimal(5000)) for _ in range(12)))
    await asyncio.gather(*(client.accounts() for _ in range(40)))
    assert not [r for r in caplog.records if "429" in r.getMessage()]  # the limiter kept us under


async def test_5xx_on_create_is_ambiguous_and_resolved_by_identifier(
    client: UpbitRestClient, sim_server
) -> None:
    m = sim_server.market
    i = ident()
    sim_server.control.fail_next(1, 500)
    with pytest.raises(AmbiguousOrderError) as info:
        await client.create_order(m, Side.BID, OrdType.PRICE, identifier=i, price=Decimal(6000))
    assert info.value.identifier == i
    # resolution: look it up; not there → it never landed → the same identifier may be sent again
    with pytest.raises(OrderNotFoundError):
        await client.get_order(identifier=i)
    order = await client.create_order(m, Side.BID, OrdType.PRICE, identifier=i, price=Decimal(6000))
    assert (await client.get_order(identifier=i)).uuid == order.uuid


async def test_timeout_after_send_is_ambiguous_then_resolved_once(sim_server, direct_orders: bool) -> None:
    m = sim_server.market
    client = UpbitRestClient(sim_server.access_key, sim_server.secret_key, sim_server.base_url, timeout_s=0.3,
                             direct_orders=direct_orders)
    i = ident()
    try:
        sim_server.control.set_latency(800)  # the answer comes after our timeout
        with pytest.raises(AmbiguousOrderError):
            await client.create_order(m, Side.BID, OrdType.PRICE, identifier=i, price=Decimal(6000))
        await asyncio.sleep(1.0)
        sim_server.control.set_latency(0)
        # the caller's resolution rule: look up by identifier; re-send only when it is not there
        try:
            order = await client.get_order(identifier=i)
        except OrderNotFoundError:
            order = await client.create_order(m, Side.BID, OrdType.PRICE, identifier=i, price=Decimal(6000))
        everything = await client.closed_orders(m) + await client.open_orders(m)
        assert [o.uuid for o in everything if o.identifier == i] == [order.uuid]
    finally:
        sim_server.control.set_latency(0)
        await client.close()


async def test_5xx_on_read_is_retried(client: UpbitRestClient, sim_server) -> None:
    sim_server.control.fail_next(2, 503)
    assert "KRW" in await client.accounts()


async def test_an_order_request_reports_when_its_body_is_written(client: UpbitRestClient, sim_server) -> None:
    """The trading loop holds the next tick until this signal (trader.upbit.client.order_request_out)."""
    from trader.upbit.client import order_request_out

    m = sim_server.market
    calls: list[str] = []
    token = order_request_out.set(lambda: calls.append("out"))
    try:
        await client.accounts()  # a read is not an order: no signal
        assert calls == []
        await client.create_order(m, Side.BID, OrdType.PRICE, identifier=ident(), price=Decimal(10000))
        assert calls == ["out"]
    finally:
        order_request_out.reset(token)
    # without a callback set (any other caller), nothing is reported and nothing breaks
    await client.create_order(m, Side.BID, OrdType.PRICE, identifier=ident(), price=Decimal(10000))
    assert calls == ["out"]


async def test_a_callers_own_httpx_trace_keeps_working_beside_the_order_signal(sim_server) -> None:
    import httpx

    from trader.upbit.client import order_request_out

    events: list[str] = []

    async def trace(name: str, info: dict) -> None:
        events.append(name)

    async def hook(request: httpx.Request) -> None:
        request.extensions = {**request.extensions, "trace": trace}

    http = httpx.AsyncClient(event_hooks={"request": [hook]}, timeout=5.0)
    client = UpbitRestClient(
        sim_server.access_key, sim_server.secret_key, sim_server.base_url, http_client=http
    )
    out: list[str] = []
    token = order_request_out.set(lambda: out.append("out"))
    try:
        await client.create_order(sim_server.market, Side.BID, OrdType.PRICE, identifier=ident(),
                                  price=Decimal(10000))  # fmt: skip
    finally:
        order_request_out.reset(token)
        await client.close()
        await http.aclose()
    assert out == ["out"]
    assert "http11.send_request_body.complete" in events


async def test_direct_orders_never_send_when_the_exchange_is_unreachable_and_say_so() -> None:
    # a refused connection: nothing left, so the order is retried, then reported as retryable
    client = UpbitRestClient("ak-unreachable", "sk-unreachable-secret-0123456789abcdef", "http://127.0.0.1:9",
                             max_attempts=2, backoff_s=0.01, direct_orders=True)  # fmt: skip
    try:
        with pytest.raises(RetryableError) as info:
            await client.create_order("KRW-BTC", Side.BID, OrdType.PRICE, identifier=ident(),
                                      price=Decimal(6000))  # fmt: skip
        assert "sk-unreachable-secret-0123456789abcdef" not in str(info.value)
    finally:
        await client.close()


async def test_direct_orders_reuse_one_kept_alive_connection(sim_server) -> None:
    client = UpbitRestClient(sim_server.access_key, sim_server.secret_key, sim_server.base_url,
                             direct_orders=True)  # fmt: skip
    try:
        for _ in range(3):
            await client.create_order(sim_server.market, Side.BID, OrdType.PRICE, identifier=ident(),
                                      price=Decimal(6000))  # fmt: skip
        assert client._direct is not None and len(client._direct._idle) == 1
    finally:
        await client.close()


async def test_direct_orders_keep_a_fresh_connection_ready(sim_server, monkeypatch) -> None:
    from trader.upbit import direct

    monkeypatch.setattr(direct, "REFRESH_AFTER_S", 0.3)  # replace the spare every ~0.3-0.8 s
    client = UpbitRestClient(sim_server.access_key, sim_server.secret_key, sim_server.base_url,
                             direct_orders=True)  # fmt: skip
    try:
        client.keep_order_connection_warm()
        await asyncio.sleep(0.2)
        sender = client._direct
        assert sender is not None and len(sender._idle) == 1  # ready before the first order
        first = sender._idle[0]
        await asyncio.sleep(1.2)
        assert len(sender._idle) == 1 and sender._idle[0] is not first and first.writer.is_closing()
        await client.create_order(sim_server.market, Side.BID, OrdType.PRICE, identifier=ident(),
                                  price=Decimal(6000))  # fmt: skip
    finally:
        await client.close()
    assert sender._warmer is not None and sender._warmer.done()
