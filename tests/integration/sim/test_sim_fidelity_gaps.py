"""Simulator fidelity over loopback: orderbook `level` grouping, the `Origin`-header limit, and
self-match prevention (`smp_type`) between the account's own orders."""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from decimal import Decimal as D
from urllib.parse import unquote, urlencode

import httpx
import jwt
import orjson
import pytest
import websockets

from trader.sim.server import SimulatorThread

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

PRICE = 3_000_000  # KRW-ETH at 3,000,000: tick 1000


async def recv_json(ws, timeout: float = 10.0) -> object:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, bytes)
    return orjson.loads(raw)


def auth(sim: SimulatorThread, query: str = "") -> dict[str, str]:
    payload = {"access_key": sim.access_key, "nonce": str(uuid.uuid4())}
    if query:
        payload["query_hash"] = hashlib.sha512(query.encode()).hexdigest()
        payload["query_hash_alg"] = "SHA512"
    return {"Authorization": "Bearer " + jwt.encode(payload, sim.secret_key, algorithm="HS256")}


def post_order(sim: SimulatorThread, **body: str) -> httpx.Response:
    q = "&".join(f"{k}={v}" for k, v in body.items())
    return httpx.post(sim.base_url + "/v1/orders", json=body, headers=auth(sim, q), timeout=10)


def get_order(sim: SimulatorThread, order_uuid: str) -> dict:
    q = unquote(urlencode({"uuid": order_uuid}))
    r = httpx.get(f"{sim.base_url}/v1/order?{q}", headers=auth(sim, q), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def sim(make_sim) -> SimulatorThread:
    # no replay data: the pushed trade alone scales the synthetic book (small, known sizes)
    s = make_sim(data=None, rate_limit=False, krw=D(100_000_000))
    s.control.push_prices([PRICE], volumes=[0.002])
    return s


def expected_groups(levels: list[list[D]], level: int, up: bool) -> list[tuple[float, float]]:
    """Upbit's grouping, computed independently: asks to the bucket above, bids to the one below."""
    out: dict[int, D] = {}
    for price, size in levels:
        steps = int(price) / level
        key = (math.ceil(steps) if up else math.floor(steps)) * level
        out[key] = out.get(key, D(0)) + size
    return [(float(p), float(s)) for p, s in sorted(out.items(), reverse=not up)]


# ---------------------------------------------------------------- orderbook level


def test_instruments_report_tick_and_levels(sim: SimulatorThread) -> None:
    r = httpx.get(f"{sim.base_url}/v1/orderbook/instruments", params={"markets": sim.market})
    assert r.status_code == 200 and r.headers["Remaining-Req"].startswith("group=orderbook;")
    assert r.json() == [{"market": "KRW-ETH", "quote_currency": "KRW", "tick_size": "1000",
                         "supported_levels": ["0", "1000", "10000", "100000"]}]


def test_rest_orderbook_groups_by_level(sim: SimulatorThread) -> None:
    book = sim.exchange.book(sim.market)
    asks = expected_groups(book.asks, 10_000, up=True)
    bids = expected_groups(book.bids, 10_000, up=False)
    r = httpx.get(f"{sim.base_url}/v1/orderbook", params={"markets": sim.market, "level": "10000"})
    assert r.status_code == 200, r.text
    [row] = r.json()
    assert row["level"] == 10000 and row["market"] == sim.market
    units = row["orderbook_units"]
    n = max(len(asks), len(bids))
    assert len(units) == n < 30  # 30 ticks of 1000 make only a few 10,000 buckets
    assert [u["ask_price"] for u in units[:len(asks)]] == [p for p, _ in asks]
    assert [u["ask_size"] for u in units[:len(asks)]] == pytest.approx([s for _, s in asks])
    assert [u["bid_price"] for u in units[:len(bids)]] == [p for p, _ in bids]
    assert [u["bid_size"] for u in units[:len(bids)]] == pytest.approx([s for _, s in bids])
    assert all(u["ask_price"] % 10_000 == 0 for u in units)
    assert units[0]["bid_price"] == 2_990_000  # best bid 2,999,000 rounds down
    assert row["total_ask_size"] == pytest.approx(sum(s for _, s in asks))
    # count limits the grouped units
    r = httpx.get(f"{sim.base_url}/v1/orderbook",
                  params={"markets": sim.market, "level": "10000", "count": "2"})
    assert len(r.json()[0]["orderbook_units"]) == 2


def test_rest_orderbook_level_zero_and_unsupported(sim: SimulatorThread) -> None:
    plain = httpx.get(f"{sim.base_url}/v1/orderbook", params={"markets": sim.market}).json()
    zero = httpx.get(f"{sim.base_url}/v1/orderbook", params={"markets": sim.market, "level": "0"}).json()
    assert plain == zero and zero[0]["level"] == 0 and len(zero[0]["orderbook_units"]) == 30
    for level in ("100", "1000000", "5000"):  # not offered at tick 1000: Upbit answers an empty list
        r = httpx.get(f"{sim.base_url}/v1/orderbook", params={"markets": sim.market, "level": level})
        assert r.status_code == 200 and r.json() == []
    r = httpx.get(f"{sim.base_url}/v1/orderbook", params={"markets": sim.market, "level": "abc"})
    assert r.status_code == 400 and r.json()["error"]["name"] == 400


async def test_ws_orderbook_level_snapshot_realtime_and_simple(sim: SimulatorThread) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(orjson.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": [f"{sim.market}.5"],
                                                      "level": 10000}]))
        snap = await recv_json(ws)
        assert snap["stream_type"] == "SNAPSHOT" and snap["level"] == 10000 and snap["code"] == sim.market
        assert all(u["ask_price"] % 10_000 == 0 and u["bid_price"] % 10_000 == 0
                   for u in snap["orderbook_units"])
        await asyncio.to_thread(sim.control.push_prices, [3_041_000], [0.002])
        live = await recv_json(ws)
        assert live["stream_type"] == "REALTIME" and live["level"] == 10000
        assert live["orderbook_units"][0]["ask_price"] == 3_050_000  # best ask 3,041,000 rounds up
        assert live["orderbook_units"][0]["bid_price"] == 3_040_000  # best bid 3,040,000 is on the grid
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(orjson.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": [sim.market],
                                                      "level": "100000", "is_only_snapshot": True},
                                    {"format": "SIMPLE"}]))
        snap = await recv_json(ws)
        # the last trade is now 3,041,000: best ask 3,041,000 and best bid 3,040,000
        assert snap["lv"] == 100000 and snap["obu"][0]["ap"] == 3_100_000
        assert snap["obu"][0]["bp"] == 3_000_000


async def test_ws_orderbook_unsupported_level_sends_nothing(sim: SimulatorThread) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(orjson.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": [sim.market],
                                                      "level": 10}]))
        await asyncio.to_thread(sim.control.push_prices, [3_005_000], [0.002])
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)
        await ws.send(orjson.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": [sim.market],
                                                      "level": "x"}]))
        assert (await recv_json(ws))["error"]["name"] == "INVALID_PARAM"


async def test_ws_orderbook_unit_counts_follow_upbit(sim: SimulatorThread) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        for code, n in ((f"{sim.market}.15", 15), (f"{sim.market}.1", 1), (f"{sim.market}.3", 30)):
            await ws.send(orjson.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": [code],
                                                          "is_only_snapshot": True}]))
            msg = await recv_json(ws)
            assert len(msg["orderbook_units"]) == n, code  # 1, 5, 15, 30 only; others give 30


# ---------------------------------------------------------------- Origin header limit


def test_origin_header_limits_quotation_to_one_per_10s(make_sim) -> None:
    sim = make_sim()  # rate limits on
    url = f"{sim.base_url}/v1/ticker"
    first = httpx.get(url, params={"markets": sim.market}, headers={"Origin": "https://example.com"})
    assert first.status_code == 200
    assert first.headers["Remaining-Req"] == "group=origin; min=1800; sec=0"
    second = httpx.get(f"{sim.base_url}/v1/orderbook", params={"markets": sim.market},
                       headers={"Origin": "https://example.com"})
    assert second.status_code == 429
    assert second.json() == {"error": {"name": "too_many_requests", "message": "Too many API requests."}}
    # without Origin the usual group applies
    plain = httpx.get(url, params={"markets": sim.market})
    assert plain.status_code == 200 and plain.headers["Remaining-Req"].startswith("group=ticker;")
    # the Exchange API is not subject to it
    for _ in range(2):
        r = httpx.get(f"{sim.base_url}/v1/accounts", headers={**auth(sim), "Origin": "https://example.com"})
        assert r.status_code == 200 and r.headers["Remaining-Req"].startswith("group=default;")
    # the usual switch turns it off
    sim.control.set_rate_limit(False)
    assert httpx.get(url, params={"markets": sim.market}, headers={"Origin": "x"}).status_code == 200


async def test_origin_header_limits_the_public_ws_handshake(make_sim) -> None:
    sim = make_sim()  # websocket-connect limits stay off: only the Origin limit is in play
    async with websockets.connect(sim.ws_url, origin="https://example.com") as ws:
        await ws.send(b"PING")
        assert await recv_json(ws) == {"status": "UP"}
    with pytest.raises(websockets.InvalidStatus) as exc:
        async with websockets.connect(sim.ws_url, origin="https://example.com"):
            pass
    assert exc.value.response.status_code == 429
    assert orjson.loads(exc.value.response.body)["error"]["name"] == "too_many_requests"
    # the same per-IP budget covers Quotation REST
    r = await asyncio.to_thread(httpx.get, f"{sim.base_url}/v1/ticker", params={"markets": sim.market},
                                headers={"Origin": "https://example.com"})
    assert r.status_code == 429
    async with websockets.connect(sim.ws_url) as ws:  # no Origin: unaffected
        await ws.send(b"PING")
        assert await recv_json(ws) == {"status": "UP"}


# ---------------------------------------------------------------- self-match prevention

MAKER_PRICE = PRICE + 2000  # the third ask level of the synthetic book
MAKER_VOL = D("0.01")
OVERLAP = D("0.004")


def place_crossing_pair(sim: SimulatorThread, **taker_extra: str) -> tuple[dict, dict, D]:
    """A resting own ask at MAKER_PRICE, then an own bid at the same price that exhausts the
    book's depth up to it and needs OVERLAP more: it meets its own ask."""
    sim.control.fund("ETH", "1", PRICE)
    maker = post_order(sim, market=sim.market, side="ask", ord_type="limit", price=str(MAKER_PRICE),
                       volume=str(MAKER_VOL))
    assert maker.status_code == 201, maker.text
    depth = sum((s for p, s in sim.exchange.book(sim.market).asks if p <= MAKER_PRICE), D(0))
    taker = post_order(sim, market=sim.market, side="bid", ord_type="limit", price=str(MAKER_PRICE),
                       volume=str(depth + OVERLAP), **taker_extra)
    assert taker.status_code == 201, taker.text
    return get_order(sim, maker.json()["uuid"]), get_order(sim, taker.json()["uuid"]), depth


def test_smp_none_trades_with_itself(sim: SimulatorThread) -> None:
    maker, taker, depth = place_crossing_pair(sim, smp_type="none")
    assert taker["state"] == "done" and D(taker["executed_volume"]) == depth + OVERLAP
    assert taker["smp_type"] == "none" and taker["prevented_volume"] == "0"
    assert maker["state"] == "wait" and D(maker["executed_volume"]) == OVERLAP
    assert D(maker["remaining_volume"]) == MAKER_VOL - OVERLAP
    assert maker["trades"][0]["price"] == f"{MAKER_PRICE}.0"


@pytest.mark.parametrize("extra", [{"smp_type": "cancel_maker"}, {}])
def test_smp_cancel_maker_is_the_default(sim: SimulatorThread, extra: dict) -> None:
    maker, taker, depth = place_crossing_pair(sim, **extra)
    assert maker["state"] == "cancel" and maker["executed_volume"] == "0.0"
    assert D(maker["prevented_volume"]) == MAKER_VOL and D(maker["prevented_locked"]) == MAKER_VOL
    assert taker["smp_type"] == "cancel_maker"  # echoed even when the order named none
    assert taker["state"] == "wait" and D(taker["executed_volume"]) == depth
    assert D(taker["remaining_volume"]) == OVERLAP  # rests, as its own ask is gone
    bal, locked, _ = sim.exchange.balance("ETH")
    assert locked == 0 and bal == D(1) + depth  # the cancelled ask's coins are free again


def test_smp_cancel_taker(sim: SimulatorThread) -> None:
    maker, taker, depth = place_crossing_pair(sim, smp_type="cancel_taker")
    assert maker["state"] == "wait" and maker["prevented_volume"] == "0"
    assert taker["state"] == "cancel" and D(taker["executed_volume"]) == depth
    assert D(taker["prevented_volume"]) == OVERLAP
    # the KRW still locked for the rest of the bid was released (notional + fee at the limit price)
    assert D(taker["prevented_locked"]) >= OVERLAP * MAKER_PRICE * D("1.0005")
    assert sim.exchange.balance("KRW")[1] == 0


async def test_smp_reduce_cuts_both_and_reports_prevented(sim: SimulatorThread) -> None:
    async with websockets.connect(sim.private_ws_url, additional_headers=auth(sim)) as ws:
        await ws.send(orjson.dumps([{"ticket": "p"}, {"type": "myOrder"}]))
        maker, taker, depth = await asyncio.to_thread(place_crossing_pair, sim, smp_type="reduce")
        events = []
        while True:
            ev = await recv_json(ws, 5)
            events.append(ev)
            if ev["uuid"] == taker["uuid"] and ev["state"] in ("done", "cancel"):
                break
    assert taker["state"] == "cancel" and D(taker["executed_volume"]) == depth  # nothing left: cancel
    assert D(taker["prevented_volume"]) == OVERLAP
    assert D(taker["prevented_locked"]) == OVERLAP * MAKER_PRICE * D("1.0005")
    assert maker["state"] == "wait" and D(maker["remaining_volume"]) == MAKER_VOL - OVERLAP
    assert D(maker["prevented_volume"]) == OVERLAP and D(maker["prevented_locked"]) == OVERLAP
    assert D(maker["locked"]) == MAKER_VOL - OVERLAP
    prevented = [e for e in events if e["state"] == "prevented"]
    assert [e["uuid"] for e in prevented] == [maker["uuid"]]
    assert prevented[0]["prevented_volume"] == float(OVERLAP) and prevented[0]["smp_type"] == "cancel_maker"
    assert sim.exchange.balance("ETH")[1] == MAKER_VOL - OVERLAP  # only what still rests is locked


def test_smp_legacy_default_trades_with_itself(make_sim) -> None:
    sim = make_sim(data=None, rate_limit=False, krw=D(100_000_000), smp_default=None)
    sim.control.push_prices([PRICE], volumes=[0.002])
    maker, taker, _ = place_crossing_pair(sim)
    assert "smp_type" not in taker and taker["state"] == "done"
    assert D(maker["executed_volume"]) == OVERLAP


def test_smp_validation(sim: SimulatorThread) -> None:
    sim.control.fund("ETH", "1", PRICE)
    base = {"market": sim.market, "side": "bid", "ord_type": "limit", "price": "2900000", "volume": "0.01"}
    for smp in ("cancel_maker", "cancel_taker", "reduce"):
        r = post_order(sim, **base, time_in_force="post_only", smp_type=smp)
        assert r.status_code == 400 and r.json()["error"]["name"] == "invalid_post_only", smp
    r = post_order(sim, **base, time_in_force="post_only", smp_type="none")
    assert r.status_code == 201 and r.json()["smp_type"] == "none"
    r = post_order(sim, **base, time_in_force="post_only")  # post_only alone: treated as none
    assert r.status_code == 201 and r.json()["smp_type"] == "none"
    for tif in ("ioc", "fok"):  # Upbit allows SMP with ioc/fok
        r = post_order(sim, **base, time_in_force=tif, smp_type="reduce")
        assert r.status_code == 201 and r.json()["smp_type"] == "reduce"
    r = post_order(sim, **base, smp_type="cancel_both")
    assert r.status_code == 400 and r.json()["error"]["name"] == "invalid_parameter"
    r = post_order(sim, market=sim.market, side="bid", ord_type="price", price="10000", smp_type="reduce")
    assert r.status_code == 201 and r.json()["smp_type"] == "reduce"


def test_post_only_is_cancelled_when_it_would_meet_an_own_order(sim: SimulatorThread) -> None:
    # empty the book's best ask level, rest an own ask there: a post_only bid at that price would
    # trade only with the account's own ask, which makes it marketable (cancelled) all the same
    sim.control.fund("ETH", "1", PRICE)
    asks = sim.exchange.book(sim.market).asks
    take = asks[0][1] + asks[1][1]
    r = post_order(sim, market=sim.market, side="bid", ord_type="limit", price=str(PRICE + 1000),
                   volume=str(take), smp_type="none")
    assert r.status_code == 201, r.text
    assert sim.exchange.book(sim.market).asks[0] == [D(PRICE), D(0)]
    ask = post_order(sim, market=sim.market, side="ask", ord_type="limit", price=str(PRICE), volume="0.01")
    assert get_order(sim, ask.json()["uuid"])["state"] == "wait"
    bid = post_order(sim, market=sim.market, side="bid", ord_type="limit", price=str(PRICE),
                     volume="0.002", time_in_force="post_only")
    assert bid.status_code == 201
    assert get_order(sim, bid.json()["uuid"])["state"] == "cancel"
    below = post_order(sim, market=sim.market, side="bid", ord_type="limit", price=str(PRICE - 1000),
                       volume="0.002", time_in_force="post_only")
    assert get_order(sim, below.json()["uuid"])["state"] == "wait"
