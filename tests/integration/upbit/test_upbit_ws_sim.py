"""UpbitWebSocket against the real simulator: SIMPLE/DEFAULT ticks, drop → reconnect → backfill, myOrder."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest

from trader.domain import OrdType, Side, Tick
from trader.upbit.errors import AuthError
from trader.upbit.events import MyAssetEvent, MyOrderEvent
from trader.upbit.rest import UpbitRestClient
from trader.upbit.ws import UpbitWebSocket, subscription


async def wait_until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def consuming(ws: UpbitWebSocket):
    got: list[object] = []

    async def run() -> None:
        async for ev in ws:
            got.append(ev)

    task = asyncio.create_task(run())
    try:
        yield got, task
    finally:
        await ws.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@pytest.fixture
async def rest(sim_server):
    c = UpbitRestClient(sim_server.access_key, sim_server.secret_key, sim_server.base_url)
    yield c
    await c.close()


@pytest.mark.parametrize("fmt", ["SIMPLE", "DEFAULT"])
async def test_drop_reconnect_backfills_gap_once(sim_server, rest: UpbitRestClient, fmt: str) -> None:
    m = sim_server.market
    ws = UpbitWebSocket(sim_server.ws_url, subscriptions=[subscription("trade", [m])], fmt=fmt, rest=rest,
                        backoff_initial_s=0.05)
    async with consuming(ws) as (got, task):
        await wait_until(lambda: ws.connected and len(got) >= 1)  # the snapshot
        await asyncio.to_thread(sim_server.control.step, 10)
        await wait_until(lambda: len(got) >= 11)
        # drop, then trade while the client is away (these sync calls hold our loop: it cannot
        # reconnect before the 25 trades happened)
        sim_server.control.drop_websockets()
        sim_server.control.step(25)
        await wait_until(lambda: ws.stats.reconnects >= 1 and ws.connected)
        await asyncio.to_thread(sim_server.control.step, 5)
        newest = (await rest.trades_ticks(m, 1))[0]["sequential_id"]
        await wait_until(lambda: bool(got) and got[-1].seq == newest)  # type: ignore[attr-defined]
        assert not task.done()
    ticks = [e for e in got if isinstance(e, Tick)]
    history = [r["sequential_id"] for r in reversed(await rest.trades_ticks(m, 500))]
    expected = history[history.index(ticks[0].seq):]
    assert [t.seq for t in ticks] == expected  # every trade once, in order, across the drop
    assert ws.stats.reconnects == 1
    assert ws.stats.backfilled >= 24 and ws.stats.gaps[0].source == "trades"
    assert all(t.market == m and t.price > 0 for t in ticks)


async def test_private_my_order_events_for_an_order(sim_server, rest: UpbitRestClient) -> None:
    m = sim_server.market
    ws = UpbitWebSocket(sim_server.private_ws_url,
                        subscriptions=[subscription("myOrder"), subscription("myAsset")],
                        private_auth=(sim_server.access_key, sim_server.secret_key))
    async with consuming(ws) as (got, task):
        await wait_until(lambda: ws.connected)
        await asyncio.sleep(0.2)  # let the subscription land
        ident = f"it-{uuid.uuid4().hex[:16]}"
        order = await rest.create_order(m, Side.BID, OrdType.PRICE, identifier=ident, price=Decimal(10000))
        await wait_until(lambda: any(isinstance(e, MyOrderEvent) and e.state in ("done", "cancel")
                                     for e in got))
        assert not task.done()
    mine = [e for e in got if isinstance(e, MyOrderEvent) and e.uuid == order.uuid]
    assert mine and all(e.identifier == ident and e.market == m and e.side is Side.BID for e in mine)
    ws_fills = [f for e in mine if (f := e.fill()) is not None]
    rest_fills = (await rest.get_order(uuid=order.uuid)).trades
    assert {f.trade_uuid for f in ws_fills} == {f.trade_uuid for f in rest_fills}
    assert sum(f.volume for f in ws_fills) == sum(f.volume for f in rest_fills)
    assert any(isinstance(e, MyAssetEvent) for e in got)


async def test_private_channel_rejects_wrong_secret(sim_server) -> None:
    ws = UpbitWebSocket(sim_server.private_ws_url, subscriptions=[subscription("myOrder")],
                        private_auth=(sim_server.access_key, "not-the-secret-not-the-secret-not-the"))
    with pytest.raises(AuthError):
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
    await ws.close()


@pytest.mark.parametrize("fmt", ["SIMPLE", "DEFAULT"])
async def test_ticker_and_orderbook_decode(sim_server, fmt: str) -> None:
    m = sim_server.market
    ws = UpbitWebSocket(sim_server.ws_url, fmt=fmt,
                        subscriptions=[subscription("ticker", [m]), subscription("orderbook", [m])])
    async with consuming(ws) as (got, _task):
        await wait_until(lambda: ws.connected and len(got) >= 2)  # the two snapshots
        await asyncio.to_thread(sim_server.control.step, 3)
        await wait_until(lambda: sum(isinstance(e, Tick) for e in got) >= 4)
    ticks = [e for e in got if isinstance(e, Tick)]
    books = [e for e in got if isinstance(e, dict) and e.get("type") == "orderbook"]
    assert books and books[0]["code"] == m and books[0]["orderbook_units"][0]["ask_price"] > 0
    assert all(t.market == m and t.price > 0 and t.seq == 0 for t in ticks)
    assert len({t.ts_ms for t in ticks}) == len(ticks)  # no repeated ticker snapshot


async def test_protocol_pings_keep_an_idle_connection(sim_server) -> None:
    m = sim_server.market
    ws = UpbitWebSocket(sim_server.ws_url, subscriptions=[subscription("trade", [m])],
                        ping_interval_s=0.1, ping_timeout_s=0.5)
    async with consuming(ws) as (_got, task):
        await wait_until(lambda: ws.connected)
        await asyncio.sleep(1.0)  # ten pings, no traffic
        assert ws.connected and ws.stats.reconnects == 0 and not task.done()
