"""WebSocket endpoints over loopback: snapshot/realtime, formats, binary frames, errors, private."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import jwt
import orjson
import pytest
import websockets

from trader.sim.server import SimulatorThread


async def recv_json(ws, timeout: float = 10.0) -> object:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, bytes), "Upbit sends BINARY frames"
    return orjson.loads(raw)


async def push(sim: SimulatorThread, prices: list[float]) -> None:
    await asyncio.to_thread(sim.control.push_prices, prices)


def auth_header(sim: SimulatorThread, secret: str | None = None) -> dict[str, str]:
    payload = {"access_key": sim.access_key, "nonce": str(uuid.uuid4())}
    return {"Authorization": "Bearer " + jwt.encode(payload, secret or sim.secret_key, algorithm="HS256")}


async def test_ticker_snapshot_then_realtime(sim_server: SimulatorThread) -> None:
    sim = sim_server
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(orjson.dumps([{"ticket": "t1"}, {"type": "ticker", "codes": [sim.market]}]).decode())
        snap = await recv_json(ws)
        assert snap["type"] == "ticker" and snap["code"] == sim.market and snap["stream_type"] == "SNAPSHOT"
        assert snap["trade_price"] == sim.exchange.last_price(sim.market)
        await push(sim, [3_111_000])
        live = await recv_json(ws)
        assert live["stream_type"] == "REALTIME" and live["trade_price"] == 3_111_000
        assert live["change"] in ("RISE", "EVEN", "FALL") and isinstance(live["acc_trade_volume"], float)


async def test_simple_format_trade_and_list_variant(sim_server: SimulatorThread) -> None:
    sim = sim_server
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(orjson.dumps([{"ticket": "t"}, {"type": "trade", "codes": [sim.market],
                                    "isOnlyRealtime": True}, {"format": "SIMPLE"}]))
        await push(sim, [3_050_000])
        msg = await recv_json(ws)
        assert msg["ty"] == "trade" and msg["cd"] == sim.market and msg["st"] == "REALTIME"
        assert msg["tp"] == 3_050_000
        assert msg["bap"] == 3_050_000 and msg["bbp"] == 3_049_000
        await ws.send(orjson.dumps([{"ticket": "t"}, {"type": "trade", "codes": [sim.market],
                                    "is_only_realtime": True}, {"format": "SIMPLE_LIST"}]))
        await push(sim, [3_051_000])
        batch = await recv_json(ws)
        assert isinstance(batch, list) and batch[0]["tp"] == 3_051_000


async def test_orderbook_units_and_count(sim_server: SimulatorThread) -> None:
    sim = sim_server
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(orjson.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": [f"{sim.market}.5"],
                                    "is_only_snapshot": True}]))
        msg = await recv_json(ws)
        assert msg["type"] == "orderbook" and len(msg["orderbook_units"]) == 5
        assert msg["orderbook_units"][0]["ask_price"] > msg["orderbook_units"][0]["bid_price"]
        await push(sim, [3_070_000])  # only a snapshot was asked: nothing more may come
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)


@pytest.mark.parametrize(
    ("request_", "name"),
    [
        (b"not json", "WRONG_FORMAT"),
        (b'[{"type":"ticker","codes":["KRW-ETH"]}]', "NO_TICKET"),
        (b'[{"ticket":"x"}]', "NO_TYPE"),
        (b'[{"ticket":"x"},{"type":"ticker"}]', "NO_CODES"),
        (b'[{"ticket":"x"},{"type":"myOrder"}]', "INVALID_AUTH"),
    ],
)
async def test_request_errors(sim_server_session: SimulatorThread, request_: bytes, name: str) -> None:
    async with websockets.connect(sim_server_session.ws_url) as ws:
        await ws.send(request_)
        msg = await recv_json(ws)
        assert msg["error"]["name"] == name


async def test_text_ping_gets_status_up(sim_server_session: SimulatorThread) -> None:
    async with websockets.connect(sim_server_session.ws_url) as ws:
        await ws.send("PING")
        assert await recv_json(ws) == {"status": "UP"}
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)


async def test_idle_connection_is_closed(make_sim) -> None:
    sim = make_sim(idle_s=0.5)
    async with websockets.connect(sim.ws_url) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)


async def test_drop_websockets_control(sim_server: SimulatorThread) -> None:
    sim = sim_server
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(orjson.dumps([{"ticket": "t"}, {"type": "ticker", "codes": [sim.market]}]))
        await recv_json(ws)
        dropped = await asyncio.to_thread(sim.control.drop_websockets)
        assert dropped["dropped"] == 1
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)


async def test_private_my_order_and_my_asset(sim_server: SimulatorThread) -> None:
    sim = sim_server
    async with websockets.connect(sim.private_ws_url, additional_headers=auth_header(sim)) as ws:
        await ws.send(orjson.dumps([{"ticket": "p"}, {"type": "myOrder"}, {"type": "myAsset"}]))
        await asyncio.sleep(0.2)
        body = {"market": sim.market, "side": "bid", "ord_type": "price", "price": "10000"}
        q = "&".join(f"{k}={v}" for k, v in body.items())
        payload = {"access_key": sim.access_key, "nonce": str(uuid.uuid4()),
                   "query_hash": hashlib.sha512(q.encode()).hexdigest(), "query_hash_alg": "SHA512"}
        import httpx

        async with httpx.AsyncClient(base_url=sim.base_url) as c:
            r = await c.post("/v1/orders", json=body,
                             headers={"Authorization": "Bearer " + jwt.encode(payload, sim.secret_key)})
        assert r.status_code == 201
        seen: list[tuple[str, str | None]] = []
        while ("myOrder", "cancel") not in seen:
            msg = await recv_json(ws)
            seen.append((msg["type"], msg.get("state")))
            if msg["type"] == "myOrder":
                assert msg["uuid"] == r.json()["uuid"] and msg["stream_type"] == "REALTIME"
        assert ("myOrder", "wait") in seen and ("myOrder", "trade") in seen and ("myAsset", None) in seen


async def test_private_requires_auth(sim_server_session: SimulatorThread) -> None:
    sim = sim_server_session
    for headers in ({}, auth_header(sim, secret="x" * 40)):
        async with websockets.connect(sim.private_ws_url, additional_headers=headers) as ws:
            msg = await recv_json(ws)
            assert msg["error"]["name"] == "INVALID_AUTH"
