"""REST over loopback: every endpoint's shape and headers, lists, batch cancel, candles, feed."""

from __future__ import annotations

import hashlib
import time
import uuid
from urllib.parse import unquote, urlencode

import httpx
import jwt
import pytest

from trader.sim.server import SimulatorThread

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


class Client:
    """A minimal signed client as the docs describe (unencoded query string hashed)."""

    def __init__(self, sim: SimulatorThread) -> None:
        self.sim = sim
        self.http = httpx.Client(base_url=sim.base_url, timeout=10)

    def _auth(self, query: str) -> dict[str, str]:
        payload = {"access_key": self.sim.access_key, "nonce": str(uuid.uuid4())}
        if query:
            payload["query_hash"] = hashlib.sha512(query.encode()).hexdigest()
            payload["query_hash_alg"] = "SHA512"
        return {"Authorization": "Bearer " + jwt.encode(payload, self.sim.secret_key, algorithm="HS512")}

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None,
                body: dict | None = None) -> httpx.Response:
        if body is not None:
            q = "&".join(f"{k}={v}" for k, v in body.items())
            return self.http.request(method, path, json=body, headers=self._auth(q))
        q = unquote(urlencode(params or []))
        url = path + ("?" + urlencode(params) if params else "")
        return self.http.request(method, url, headers=self._auth(q))

    def ok(self, method: str, path: str, params: list[tuple[str, str]] | None = None,
           body: dict | None = None, status: int = 200) -> object:
        r = self.request(method, path, params, body)
        assert r.status_code == status, r.text
        assert r.headers["Remaining-Req"].startswith("group=")
        return r.json()


@pytest.fixture
def sim(make_sim) -> SimulatorThread:
    return make_sim(rate_limit=False)


@pytest.fixture
def api(sim: SimulatorThread):
    c = Client(sim)
    yield c
    c.http.close()


def limit_bid(api: Client, price: str, volume: str = "0.01", **extra: str) -> dict:
    body = {"market": api.sim.market, "side": "bid", "ord_type": "limit", "price": price, "volume": volume,
            **extra}
    return api.ok("POST", "/v1/orders", body=body, status=201)


def test_order_lists(api: Client) -> None:
    a = limit_bid(api, "2000000", identifier="a")
    b = limit_bid(api, "2001000", identifier="b")
    c = limit_bid(api, "2002000")
    api.ok("DELETE", "/v1/order", [("uuid", c["uuid"])])
    opened = api.ok("GET", "/v1/orders/open", [("market", api.sim.market)])
    assert [o["uuid"] for o in opened] == [b["uuid"], a["uuid"]]  # newest first by default
    asc = api.ok("GET", "/v1/orders/open", [("order_by", "asc"), ("limit", "1"), ("page", "2")])
    assert [o["uuid"] for o in asc] == [b["uuid"]]
    closed = api.ok("GET", "/v1/orders/closed", [("states[]", "done"), ("states[]", "cancel")])
    assert [o["uuid"] for o in closed] == [c["uuid"]]
    by_ids = api.ok("GET", "/v1/orders/uuids", [("identifiers[]", "a"), ("identifiers[]", "b")])
    assert {o["uuid"] for o in by_ids} == {a["uuid"], b["uuid"]}
    legacy = api.ok("GET", "/v1/orders", [("market", api.sim.market), ("state", "cancel")])
    assert [o["uuid"] for o in legacy] == [c["uuid"]]
    r = api.request("GET", "/v1/orders", [("states[]", "wait"), ("states[]", "done")])
    assert (r.status_code, r.json()["error"]["name"]) == (400, "invalid_parameter")


def test_batch_cancel_and_test_order(api: Client) -> None:
    for p in ("2000000", "2001000", "2002000"):
        limit_bid(api, p)
    krw_locked = api.sim.exchange.balance("KRW")[1]
    assert krw_locked > 0
    res = api.ok("DELETE", "/v1/orders/open", [("cancel_side", "bid"), ("count", "2")])
    assert res["success"]["count"] == 2 and res["failed"]["count"] == 0
    res = api.ok("DELETE", "/v1/orders/open", [("pairs", api.sim.market)])
    assert res["success"]["count"] == 1
    assert api.sim.exchange.balance("KRW")[1] == 0
    before = api.sim.exchange.accounts()
    body = {"market": api.sim.market, "side": "bid", "ord_type": "limit", "price": "2000000",
            "volume": "0.01"}
    t = api.ok("POST", "/v1/orders/test", body=body, status=201)
    assert t["state"] == "wait" and api.sim.exchange.accounts() == before
    assert api.ok("GET", "/v1/orders/open") == []


def test_chance_and_accounts_shapes(api: Client) -> None:
    chance = api.ok("GET", "/v1/orders/chance", [("market", api.sim.market)])
    assert chance["market"]["bid"] == {"currency": "KRW", "price_unit": None, "min_total": "5000"}
    assert chance["market"]["max_total"] == "1000000000"
    assert chance["bid_account"]["currency"] == "KRW" and chance["ask_account"]["balance"] == "0.0"
    rows = api.ok("GET", "/v1/accounts")
    assert rows == [{"currency": "KRW", "balance": "10000000.0", "locked": "0.0", "avg_buy_price": "0",
                     "avg_buy_price_modified": False, "unit_currency": "KRW"}]


def test_candles_follow_replayed_trades(sim: SimulatorThread) -> None:
    t0 = sim.exchange.clock_ms - sim.exchange.clock_ms % 60_000 + 60_000
    # minute 0: two trades, minute 1: none, minute 2: one trade
    sim.control.push_prices([3_100_000, 3_120_000, 3_090_000], volumes=[1, 2, 3],
                            timestamps=[t0 + 1_000, t0 + 2_000, t0 + 121_000])
    with httpx.Client(base_url=sim.base_url) as c:
        rows = c.get("/v1/candles/minutes/1", params={"market": sim.market, "count": 3}).json()
        starts = [r["candle_date_time_utc"] for r in rows]
        assert len(rows) == 3 and starts == sorted(starts, reverse=True)
        newest, older = rows[0], rows[1]
        assert newest["trade_price"] == 3_090_000 and newest["candle_acc_trade_volume"] == 3
        assert older["opening_price"] == 3_100_000 and older["high_price"] == 3_120_000
        assert older["candle_acc_trade_volume"] == 3 and older["unit"] == 1
        # `to` is exclusive and naive times are UTC (what pyupbit sends)
        to = newest["candle_date_time_utc"].replace("T", " ")
        again = c.get("/v1/candles/minutes/1", params={"market": sim.market, "count": 1, "to": to}).json()
        assert again[0]["candle_date_time_utc"] == older["candle_date_time_utc"]
        five = c.get("/v1/candles/minutes/5", params={"market": sim.market}).json()
        assert five[0]["trade_price"] == 3_090_000
        ticks = c.get("/v1/trades/ticks", params={"market": sim.market, "count": 2}).json()
        assert [t["trade_price"] for t in ticks] == [3_090_000, 3_120_000]
        ticker = c.get("/v1/ticker", params={"markets": sim.market}).json()[0]
        assert ticker["trade_price"] == 3_090_000 and ticker["trade_timestamp"] == t0 + 121_000
        assert c.get("/v1/ticker?markets=" + sim.market + "&markets=" + sim.market).status_code == 200
        details = c.get("/v1/market/all", params={"isDetails": "true"}).json()
        assert details[0]["market"] == sim.market and "market_event" in details[0]


def test_feed_runs_pauses_and_steps(sim: SimulatorThread) -> None:
    start = sim.control.state()
    assert start["paused"] and start["position"] == 1
    stepped = sim.control.step(5)
    assert stepped["stepped"] == 5 and stepped["position"] == 6
    sim.control.resume(speed=100_000)
    deadline = time.monotonic() + 20
    while sim.control.state()["position"] < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    paused = sim.control.pause()
    assert paused["position"] >= 50 and paused["clock_ms"] > stepped["clock_ms"]
    pos = paused["position"]
    time.sleep(0.2)
    assert sim.control.state()["position"] == pos


def test_resting_order_fills_from_pushed_path(sim: SimulatorThread, api: Client) -> None:
    o = limit_bid(api, "3000000", "0.01")
    sim.control.push_prices([3_010_000, 2_999_000], volumes=[5, 5])
    got = api.ok("GET", "/v1/order", [("uuid", o["uuid"])])
    assert got["state"] == "done" and got["trades"][0]["price"] == "3000000.0"
    sim.control.reset(krw=123456)
    assert api.ok("GET", "/v1/accounts")[0]["balance"] == "123456.0"
    r = api.request("GET", "/v1/order", [("uuid", o["uuid"])])
    assert r.status_code == 404


def test_latency_control(sim: SimulatorThread) -> None:
    sim.control.set_latency(300)
    with httpx.Client(base_url=sim.base_url) as c:
        t = time.monotonic()
        assert c.get("/v1/market/all").status_code == 200
        assert time.monotonic() - t >= 0.3
    sim.control.set_latency(0)
