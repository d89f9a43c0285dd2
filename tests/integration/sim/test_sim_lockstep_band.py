"""Lockstep fast-forward (trader/sim/ackgate.py): an ack's quiet band releases exactly the trades it
covers, and the first trade it does not cover — price outside, ts at or past `until_ms`, crossing
a resting order, a pushed trade — waits until the client has caught up, and is then published and
waits for its own ack. Malformed acks are answered with an error naming the field, on the
WebSocket and on POST /_sim/ack, and the feed goes on."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import websockets

from trader.marketdata.synth import TradeArrays
from trader.sim.ackgate import AckError, QuietBand, parse_ack_body, parse_ack_frame
from trader.sim.market import Feed
from trader.sim.matching import Exchange
from trader.sim.server import SimulatorThread

M = "KRW-ETH"
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
P = 3_000_000.0
INF = math.inf


def _feed(prices: list[float], step_ms: int = 1000) -> Feed:
    n = len(prices)
    trades = TradeArrays(np.array([T0 + i * step_ms for i in range(n)], np.int64), np.array(prices, float),
                         np.full(n, 0.01), np.ones(n, bool))
    feed = Feed(Exchange(krw=Decimal(10_000_000), markets=[M], seed=0), M, trades, speed=None)
    feed.lockstep = True
    feed.step(1)  # the simulator primes its first trade
    return feed


async def _until(cond: Callable[[], Any], what: str) -> None:
    for _ in range(2000):
        if cond():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never: {what}")


async def _settled(feed: Feed, applied: int) -> None:
    """The feed has applied `applied` trades and waits for an ack."""
    await _until(lambda: feed.applied == applied and feed.gate.waiting, f"{applied} applied, waiting")
    await asyncio.sleep(0.01)  # nothing more goes while it waits
    assert feed.applied == applied


class _Running:
    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    async def __aenter__(self) -> Feed:
        self.task = asyncio.create_task(self.feed.run())
        await _settled(self.feed, 1)  # the primed trade waits for a first ack
        return self.feed

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def _ack(feed: Feed, band: QuietBand | None = None) -> bool:
    return feed.ack(feed.gate.published, band)


async def test_band_releases_the_quiet_trades_and_stops_before_a_price_outside() -> None:
    prices = [P, P + 1000, P - 1000, P + 2000, P + 20_000, P, P]
    async with _Running(_feed(prices)) as feed:
        assert _ack(feed, QuietBand(P - 5000, P + 5000, INF))
        # trades 1-3 go by without acks; trade 4 is outside: the feed waits for the client to
        # catch up (the ack of trade 3) before it applies it
        await _settled(feed, 4)
        assert feed.exchange.last_price(M) == P + 2000
        assert feed.gate.passed == 3 and feed.gate.held == 0
        assert _ack(feed, QuietBand(P - 5000, P + 5000, INF))  # still outside: published, then held
        await _settled(feed, 5)
        assert feed.exchange.last_price(M) == P + 20_000 and feed.gate.held == 1
        assert feed.gate.band is None  # spent: the next trade waits for trade 4's ack
        assert _ack(feed, QuietBand(P - 5000, P + 50_000, INF))
        await _until(lambda: feed.state()["finished"], "the replay's last trade")
        assert feed.applied == len(prices) and feed.gate.passed == 5
        assert not feed.state()["ended"]  # until the client has acked the last trade too
        assert _ack(feed) and feed.state()["ended"]


async def test_catching_up_with_a_wider_band_lets_the_trade_pass() -> None:
    prices = [P, P + 1000, P + 20_000, P + 21_000, P + 40_000]
    async with _Running(_feed(prices)) as feed:
        assert _ack(feed, QuietBand(P - 5000, P + 5000, INF))
        await _settled(feed, 2)  # trade 2 is outside: barrier
        assert _ack(feed, QuietBand(P - 5000, P + 30_000, INF))  # the newest band covers 2 and 3
        await _settled(feed, 4)
        assert feed.gate.passed == 3 and feed.gate.held == 0


async def test_band_stops_at_until_ms() -> None:
    prices = [P] * 6
    async with _Running(_feed(prices, step_ms=1000)) as feed:
        assert _ack(feed, QuietBand(-INF, INF, T0 + 3000))  # trade 3 is at T0 + 3000
        await _settled(feed, 3)
        assert feed.exchange.clock_ms == T0 + 2000
        assert _ack(feed)  # a plain ack: no band
        await _settled(feed, 4)
        assert feed.exchange.clock_ms == T0 + 3000 and feed.gate.held == 1


async def test_band_stops_at_a_trade_that_crosses_a_resting_order() -> None:
    prices = [P, P - 1000, P - 2000, P - 5000, P - 6000]
    async with _Running(_feed(prices)) as feed:
        ex = feed.exchange
        order = ex.create_order(M, "bid", "limit", price=Decimal(int(P - 5000)), volume=Decimal("0.01"))
        assert ex.resting_band(M) == (P - 5000, INF)
        assert _ack(feed, QuietBand(-INF, INF, INF))  # the client would do nothing anywhere
        await _settled(feed, 3)  # trade 3 touches the bid (inclusive): the feed waits first
        assert feed.fills == 0
        assert _ack(feed, QuietBand(-INF, INF, INF))
        await _settled(feed, 4)  # published (it fills the bid), then held for its own ack
        assert feed.fills == 1 and ex.get_order(uuid=order["uuid"])["state"] == "done"
        assert feed.gate.passed == 2 and feed.gate.held == 1


async def test_pushed_trades_always_wait_and_stale_acks_release_nothing() -> None:
    prices = [P, P, P, P]
    async with _Running(_feed(prices)) as feed:
        first = feed.gate.published
        feed.push_path([P + 1000, P + 2000])
        assert _ack(feed, QuietBand(-INF, INF, INF))
        await _settled(feed, 2)  # a pushed trade is never covered by a band
        assert feed.exchange.last_price(M) == P + 1000
        assert feed.ack(first, QuietBand(-INF, INF, INF)) is False  # stale: ignored, band too
        await asyncio.sleep(0.01)
        assert feed.applied == 2 and feed.gate.band is None and feed.gate.stale == 1
        assert _ack(feed, QuietBand(-INF, INF, INF))
        await _settled(feed, 3)
        assert feed.exchange.last_price(M) == P + 2000
        assert _ack(feed, QuietBand(-INF, INF, INF))  # back to the replay: it passes to the end
        await _until(lambda: feed.state()["finished"], "the replay's last trade")
        assert feed.gate.passed == 3 and feed.gate.held == 2


async def test_the_end_counts_only_once_the_last_trade_is_acked() -> None:
    prices = [P, P, P]
    async with _Running(_feed(prices)) as feed:
        assert _ack(feed)
        await _settled(feed, 2)
        assert _ack(feed)
        await _until(lambda: feed.applied == 3, "the last trade")
        state = feed.state()
        assert state["finished"] and not state["ended"] and not feed.gate.caught_up()
        assert _ack(feed)
        assert feed.state()["ended"]


# ---- parsing ---------------------------------------------------------------------------------
def test_ack_frames_parse() -> None:
    assert parse_ack_frame(b"ACK ") == (None, None)
    assert parse_ack_frame(b"ACK 17") == (17, None)
    assert parse_ack_frame(b"ACK 17 -inf 3000000.5 inf") == (17, QuietBand(-INF, 3000000.5, INF))
    band = QuietBand(2_990_000.0, 3_010_000.0, 1_704_067_203_000.0)
    assert parse_ack_frame(f"ACK 5 {band.text()}".encode()) == (5, band)


@pytest.mark.parametrize(("frame", "field"), [
    (b"ACK x", "seq"), (b"ACK -1", "seq"), (b"ACK 5 1", "hi"), (b"ACK 5 1 2", "until_ms"),
    (b"ACK 5 1 2 3 4", "ACK"), (b"ACK 5 abc 2 3", "lo"), (b"ACK 5 1 nan 3", "hi"),
    (b"ACK 5 3 1 9", "hi"), (b"ACK 5 1 2 x", "until_ms"),
])
def test_malformed_ack_frames_name_the_field(frame: bytes, field: str) -> None:
    with pytest.raises(AckError) as err:
        parse_ack_frame(frame)
    assert err.value.field == field and str(err.value).startswith(f"{field}: ")


@pytest.mark.parametrize(("body", "field"), [
    ({"seq": "x"}, "seq"), ({"seq": True}, "seq"), ({"seq": 1.5}, "seq"), ({"seq": 5, "lo": 1}, "hi"),
    ({"seq": 5, "lo": 1, "hi": 2}, "until_ms"), ({"lo": 1, "hi": 2, "until_ms": 3}, "seq"),
    ({"seq": 5, "lo": [1], "hi": 2, "until_ms": 3}, "lo"),
    ({"seq": 5, "lo": 1, "hi": "nan", "until_ms": 3}, "hi"),
])
def test_malformed_ack_bodies_name_the_field(body: dict, field: str) -> None:
    with pytest.raises(AckError) as err:
        parse_ack_body(body)
    assert err.value.field == field


def test_ack_bodies_parse() -> None:
    assert parse_ack_body({}) == (None, None)
    assert parse_ack_body({"seq": "7"}) == (7, None)
    assert parse_ack_body({"seq": 7, "lo": "-inf", "hi": 3e6, "until_ms": 1704067203000}) == (
        7, QuietBand(-INF, 3e6, 1704067203000.0))


# ---- over the wire ------------------------------------------------------------------------------
async def test_malformed_acks_are_answered_and_the_feed_goes_on() -> None:
    with SimulatorThread(speed=None, lockstep=True, rate_limit=False) as sim:
        feed = sim.sim.feed
        async with httpx.AsyncClient(base_url=sim.base_url, timeout=10) as http:
            for body, field in ((b'{"seq": "x"}', "seq"), (b'{"seq": 1, "lo": 1}', "hi"),
                                (b"[1, 2]", "body"), (b"{not json", "body")):
                r = await http.post("/_sim/ack", content=body, headers={"content-type": "application/json"})
                assert r.status_code == 400, r.text
                assert r.json()["field"] == field and field in r.json()["error"]
            assert feed.applied == 1 and feed.gate.acks == 0  # nothing released
            async with websockets.connect(sim.ws_url) as ws:
                sub = [{"ticket": "t"}, {"type": "trade", "codes": [sim.market]}]
                await ws.send(orjson.dumps(sub).decode())
                first = orjson.loads(await ws.recv())
                await ws.send(f"ACK {first['sequential_id']} 1 nan 3")
                err = orjson.loads(await ws.recv())
                assert err["error"]["name"] == "INVALID_ACK" and err["error"]["message"].startswith("hi: ")
                assert feed.applied == 1
                # a good ack with a band over the wire: the following trades inside it go by
                lo, hi = first["trade_price"] * 0.5, first["trade_price"] * 2
                await ws.send(f"ACK {first['sequential_id']} {QuietBand(lo, hi, INF).text()}")
                second = orjson.loads(await ws.recv())
                assert second["sequential_id"] > first["sequential_id"]
                await asyncio.sleep(0.2)
                assert feed.gate.passed >= 1 and feed.gate.acks == 1
            r = await http.post("/_sim/ack", json={"seq": feed.gate.published, "lo": "-inf", "hi": "inf",
                                                   "until_ms": "inf"})
            assert r.status_code == 200 and r.json()["released"] is True
            assert sim.control.state()["lockstep"]["band"] == "-inf inf inf"
