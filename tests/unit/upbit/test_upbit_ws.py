"""UpbitWebSocket against a tiny local feed server: decode, keep-alive, drop → reconnect → backfill."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import jwt
import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from trader.domain import Tick
from trader.upbit.errors import AuthError
from trader.upbit.events import MyOrderEvent
from trader.upbit.ws import UpbitWebSocket, request_payload, subscription

SECRET = "ws-secret-key-SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS"
ACCESS = "ws-access-key-AAAAAAAAAAAAAAAAAAAAAAAAAAAA"


class FeedServer:
    """Produces KRW-BTC trades (seq 1, 2, …) every few ms, also while clients are away."""

    def __init__(self, fmt_simple: bool = True) -> None:
        self.history: list[dict[str, Any]] = []
        self.conns: set[ServerConnection] = set()
        self.requests: list[Any] = []
        self.auth_headers: list[str] = []
        self.new = asyncio.Event()
        self.private_messages: list[dict[str, Any]] = []
        self.simple = fmt_simple

    def trade(self, seq: int) -> dict[str, Any]:
        return {"market": "KRW-BTC", "timestamp": 1_700_000_000_000 + seq, "trade_price": 1000.0 + seq,
                "trade_volume": 0.5, "ask_bid": "BID", "sequential_id": seq}

    def frame(self, row: dict[str, Any], stream: str) -> bytes:
        if self.simple:
            msg = {"ty": "trade", "cd": row["market"], "tp": row["trade_price"],
                   "tv": row["trade_volume"], "ab": "BID", "ttms": row["timestamp"],
                   "tms": row["timestamp"], "sid": row["sequential_id"], "st": stream}
        else:
            msg = {"type": "trade", "code": row["market"], "trade_price": row["trade_price"],
                   "trade_volume": row["trade_volume"], "ask_bid": "BID",
                   "trade_timestamp": row["timestamp"], "timestamp": row["timestamp"],
                   "sequential_id": row["sequential_id"], "stream_type": stream}
        return orjson.dumps(msg)

    async def produce(self, n: int, every_s: float = 0.002) -> None:
        for _ in range(n):
            self.history.append(self.trade(len(self.history) + 1))
            self.new.set()
            self.new = asyncio.Event()
            await asyncio.sleep(every_s)

    async def handler(self, ws: ServerConnection) -> None:
        self.conns.add(ws)
        try:
            self.requests.append(orjson.loads(await ws.recv()))
            await ws.send(orjson.dumps({"status": "UP"}))
            for msg in self.private_messages:
                await ws.send(orjson.dumps(msg))
            pos = len(self.history)
            if pos:
                await ws.send(self.frame(self.history[pos - 1], "SNAPSHOT"))
            while True:
                while pos < len(self.history):
                    await ws.send(self.frame(self.history[pos], "REALTIME"))
                    pos += 1
                new, closed = asyncio.ensure_future(self.new.wait()), asyncio.ensure_future(ws.wait_closed())
                done, pending = await asyncio.wait({new, closed}, return_when=asyncio.FIRST_COMPLETED)
                for f in pending:
                    f.cancel()
                if closed in done:
                    return
        except Exception:
            return
        finally:
            self.conns.discard(ws)

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        auth = request.headers.get("Authorization")
        if request.path.endswith("/private"):
            try:
                token = (auth or "").removeprefix("Bearer ")
                payload = jwt.decode(token, SECRET, algorithms=["HS256", "HS512"])
                assert payload["access_key"] == ACCESS
                self.auth_headers.append(auth or "")
            except Exception:
                return Response(401, "Unauthorized", Headers(), b"")
        return None

    def drop(self) -> None:
        for ws in list(self.conns):
            ws.transport.abort()  # an abrupt drop, no close frame

    # the REST side of the same feed (newest first, cursor pages to older)
    async def trades_ticks(self, market: str, count: int = 200, cursor: Any = None,
                           *, days_ago: int | None = None) -> list[dict[str, Any]]:
        if days_ago:  # all of this fake's history is "today"
            return []
        rows = self.history[::-1]
        if cursor is not None:
            rows = [r for r in rows if r["sequential_id"] < int(cursor)]
        return rows[:count]

    async def candles_minutes(self, *a: Any, **k: Any) -> list[dict[str, Any]]:
        return []


@contextlib.asynccontextmanager
async def running(feed: FeedServer):
    async with serve(feed.handler, "127.0.0.1", 0, process_request=feed.process_request) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/websocket/v1"


def test_request_payload_shape() -> None:
    payload = orjson.loads(request_payload([subscription("trade", ["krw-btc"])], "SIMPLE", ticket="t"))
    assert payload == [{"ticket": "t"}, {"type": "trade", "codes": ["KRW-BTC"]}, {"format": "SIMPLE"}]


@pytest.mark.parametrize("simple", [True, False])
async def test_reconnect_backfills_gap_without_duplicates(simple: bool) -> None:
    feed = FeedServer(fmt_simple=simple)
    await feed.produce(5)
    async with running(feed) as url:
        ws = UpbitWebSocket(url, subscriptions=[subscription("trade", ["KRW-BTC"])],
                            fmt="SIMPLE" if simple else "DEFAULT", rest=feed, backoff_initial_s=0.05)
        producer = asyncio.create_task(feed.produce(400))
        got: list[Tick] = []
        dropped = False
        async with asyncio.timeout(30):
            async for ev in ws:
                assert isinstance(ev, Tick)
                got.append(ev)
                if len(got) == 50 and not dropped:
                    dropped = True
                    feed.drop()
                    await asyncio.sleep(0.2)  # trades keep coming while we are away
                if got[-1].seq == 405:  # the last trade the producer makes
                    break
        await ws.close()
        await producer
    seqs = [t.seq for t in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # contiguous: nothing lost, nothing twice
    assert seqs[-1] == 405
    assert ws.stats.reconnects == 1 and ws.stats.backfilled > 0
    assert ws.stats.gaps[0].source == "trades"
    assert ws.stats.keepalives >= 2 and not ws.connected
    assert [r[1:] for r in feed.requests] == [[{"type": "trade", "codes": ["KRW-BTC"]},
                                              {"format": "SIMPLE" if simple else "DEFAULT"}]] * 2


async def test_private_channel_signs_handshake_and_decodes_my_order(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    feed = FeedServer()
    feed.private_messages = [{"ty": "myOrder", "cd": "KRW-BTC", "uid": "o-1", "ab": "ASK", "ot": "market",
                              "s": "trade", "tuid": "t-1", "p": 1000.0, "v": 2.0, "ev": 2.0, "tc": 1,
                              "pf": 1.0, "tf": 1.0, "id": "at-5", "ttms": 5, "tms": 6, "st": "REALTIME"}]
    async with running(feed) as url:
        ws = UpbitWebSocket(url + "/private", subscriptions=[subscription("myOrder")],
                            private_auth=(ACCESS, SECRET))
        async with asyncio.timeout(10):
            async for ev in ws:
                assert isinstance(ev, MyOrderEvent)
                break
        await ws.close()
    fill = ev.fill()
    assert fill is not None and fill.identifier == "at-5" and fill.fee == 1
    token = feed.auth_headers[0].removeprefix("Bearer ")
    # the client's records (the test server's own handshake log is not ours to police)
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server"))
    assert "> Authorization: Bearer ***" in logged  # the handshake was logged, redacted
    assert token not in logged and SECRET not in logged
    assert SECRET not in repr(ws)


async def test_private_channel_bad_key_is_final() -> None:
    feed = FeedServer()
    async with running(feed) as url:
        ws = UpbitWebSocket(url + "/private", subscriptions=[subscription("myOrder")],
                            private_auth=(ACCESS, "wrong-secret-wrong-secret-wrong-secret"))
        with pytest.raises(AuthError):
            async with asyncio.timeout(10):
                async for _ in ws:
                    pass


async def test_reconnects_when_server_is_down_at_first() -> None:
    feed = FeedServer()
    await feed.produce(3)
    async with running(feed) as url:
        pass  # server stopped: the port is closed now
    ws = UpbitWebSocket(url, subscriptions=[subscription("trade", ["KRW-BTC"])], backoff_initial_s=0.05)

    async def first() -> Any:
        async for ev in ws:
            return ev

    task = asyncio.create_task(first())
    await asyncio.sleep(0.3)
    assert not task.done() and not ws.connected
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
