"""JWT construction (query hash as the docs define it) and the per-group rate limiter."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import unquote

import jwt
import pytest
from upbit._qs import Querystring

from trader.upbit.auth import Credentials, auth_headers, make_token, query_string
from trader.upbit.ratelimit import RateLimiter, RemainingReq, group_for, parse_remaining_req


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def test_query_string_arrays_unencoded_in_order() -> None:
    qs = query_string({"market": "KRW-BTC", "states": ["done", "cancel"], "limit": 100, "skip": None})
    assert qs == "market=KRW-BTC&states[]=done&states[]=cancel&limit=100"


def test_token_payload_and_hash() -> None:
    token = make_token("ak", "s" * 40, {"uuid": "abc", "identifier": "x y"})
    payload = jwt.decode(token, "s" * 40, algorithms=["HS256"])
    assert payload["access_key"] == "ak"
    assert payload["query_hash_alg"] == "SHA512"
    # the same string the official SDK hashes (spaces stay '+', as its urlencode+unquote leaves them)
    sdk_qs = unquote(Querystring(array_format="brackets").stringify({"uuid": "abc", "identifier": "x y"}))
    assert payload["query_hash"] == hashlib.sha512(sdk_qs.encode()).hexdigest()
    assert query_string({"uuid": "abc", "states": ["a", "b"]}) == unquote(
        Querystring(array_format="brackets").stringify({"uuid": "abc", "states": ["a", "b"]})
    )
    plain = jwt.decode(make_token("ak", "s" * 40), "s" * 40, algorithms=["HS256"])
    assert "query_hash" not in plain
    assert plain["nonce"] != payload["nonce"]


def test_credentials_never_print() -> None:
    creds = Credentials("ACCESSKEY123456", "SECRETSECRETSECRET" * 2)
    assert "SECRETSECRETSECRET" not in repr(creds) and "ACCESSKEY123456" not in str(creds)
    assert auth_headers(creds)["Authorization"].startswith("Bearer ")


def test_parse_remaining_req() -> None:
    assert parse_remaining_req("group=default; min=1800; sec=29") == RemainingReq("default", 1800, 29)
    assert parse_remaining_req("group=order-test; min=0; sec=0") == RemainingReq("order-test", 0, 0)
    assert parse_remaining_req("nonsense") is None
    assert parse_remaining_req(None) is None


@pytest.mark.parametrize(
    ("method", "path", "group"),
    [
        ("POST", "/v1/orders", "order"),
        ("GET", "/v1/orders/open", "default"),
        ("DELETE", "/v1/orders/open", "order-cancel-all"),
        ("GET", "/v1/order", "default"),
        ("GET", "/v1/candles/minutes/1", "candle"),
        ("GET", "/v1/trades/ticks", "trade"),
        ("GET", "/v1/ticker", "ticker"),
        ("GET", "/v1/orderbook", "orderbook"),
        ("GET", "/v1/market/all", "market"),
        ("POST", "/v1/orders/test", "order-test"),
    ],
)
def test_group_for(method: str, path: str, group: str) -> None:
    assert group_for(method, path) == group


async def test_limiter_never_exceeds_limit_in_any_window() -> None:
    clock = FakeClock()
    lim = RateLimiter({"order": 8}, clock=clock.now, sleep=clock.sleep, margin_s=0.0)
    times = []
    for _ in range(20):
        await lim.acquire("order")
        times.append(clock.t)
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u < t + 1.0) <= 8
    assert times[7] == times[0] and times[8] >= times[0] + 1.0


async def test_limiter_follows_server_remaining() -> None:
    clock = FakeClock()
    lim = RateLimiter({"default": 30}, clock=clock.now, sleep=clock.sleep, margin_s=0.0)
    await lim.acquire("default")
    lim.observe(RemainingReq("default", 1800, 2))  # another process used the rest of the window
    await lim.acquire("default")
    await lim.acquire("default")
    assert clock.sleeps == []
    await lim.acquire("default")
    assert clock.sleeps and clock.t >= 1001.0
    lim.observe(RemainingReq("default", 1800, 0))
    assert lim.delay("default") == pytest.approx(1.0)


async def test_limiter_block_all_for_418() -> None:
    clock = FakeClock()
    lim = RateLimiter(clock=clock.now, sleep=clock.sleep)
    lim.block_all(30.0)
    await lim.acquire("ticker")
    assert sum(clock.sleeps) == pytest.approx(30.0)


async def test_limiter_waits_without_blocking_the_loop() -> None:
    lim = RateLimiter({"g": 1}, margin_s=0.0)
    await lim.acquire("g")
    other = asyncio.create_task(asyncio.sleep(0, result="ran"))
    waiter = asyncio.create_task(lim.acquire("g"))
    assert await other == "ran"  # the loop kept running while the limiter waited
    waiter.cancel()
