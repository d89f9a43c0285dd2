"""UpbitRestClient against an in-process fake (httpx.MockTransport): mapping, retries, errors, secrets."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import httpx
import jwt
import pytest

from trader.domain import OrderState, OrdType, Side
from trader.upbit.errors import (
    AmbiguousOrderError,
    AuthError,
    DuplicateIdentifierError,
    InsufficientFundsError,
    OrderNotFoundError,
    RateLimitError,
    RetryableError,
)
from trader.upbit.ratelimit import RateLimiter
from trader.upbit.rest import UpbitRestClient

ACCESS = "unit-access-key-AAAAAAAAAAAAAAAAAAAAAAAA"
SECRET = "unit-secret-key-SSSSSSSSSSSSSSSSSSSSSSSSSSSSSS"
RR = {"Remaining-Req": "group=default; min=1800; sec=29"}

ORDER = {
    "uuid": "9ca023a5-851b-4fec-9f0a-48cd83c2eaae", "side": "bid", "ord_type": "limit",
    "price": "155772000", "state": "wait", "market": "KRW-BTC", "created_at": "2025-06-25T15:42:25+09:00",
    "volume": "0.0001", "remaining_volume": "0.0001", "reserved_fee": "7.7886", "remaining_fee": "7.7886",
    "paid_fee": "0", "locked": "15584.9886", "executed_volume": "0", "prevented_volume": "0",
    "prevented_locked": "0", "trades_count": 0, "identifier": "at-1",
}
DONE_MARKET_BUY = {
    **ORDER, "ord_type": "price", "price": "6000", "volume": None, "remaining_volume": None,
    "state": "cancel", "executed_volume": "0.00003736", "paid_fee": "2.99989592", "locked": "0.20826408",
    "trades_count": 1,
    "trades": [{"market": "KRW-BTC", "uuid": "t-1", "price": "160594000", "volume": "0.00003736",
                "funds": "5999.79184", "trend": "up", "created_at": "2025-08-09T16:44:00.597751+09:00",
                "side": "bid"}],
}


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


Responder = Callable[[httpx.Request], httpx.Response]


class FakeUpbit:
    """Queue of scripted responses per (method, path); records every request and its JWT."""

    def __init__(self) -> None:
        self.script: dict[tuple[str, str], list[Responder | httpx.Response | Exception]] = {}
        self.requests: list[httpx.Request] = []
        self.tokens: list[str] = []

    def on(self, method: str, path: str, *responses: Responder | httpx.Response | Exception) -> None:
        self.script.setdefault((method, path), []).extend(responses)

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.requests.append(req)
        auth = req.headers.get("authorization", "")
        if auth:
            self.tokens.append(auth.removeprefix("Bearer "))
        queue = self.script.get((req.method, req.url.path))
        if not queue:
            return httpx.Response(404, json={"error": {"name": "no_script", "message": str(req.url.path)}})
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item(req) if callable(item) else item

    def posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST"]


def ok(body: Any, status: int = 200, group: str = "default", sec: int = 29) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"Remaining-Req": f"group={group}; min=1800; sec={sec}"})


def err(
    status: int, name: str | int, message: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json={"error": {"name": name, "message": message}}, headers=headers)


@pytest.fixture
def fake() -> FakeUpbit:
    return FakeUpbit()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(fake: FakeUpbit, clock: FakeClock):
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake), base_url="http://fake.test")
    c = UpbitRestClient(
        ACCESS, SECRET, "http://fake.test",
        limiter=RateLimiter(clock=clock.now, sleep=clock.sleep), http_client=http, sleep=clock.sleep,
    )
    yield c
    await c.close()


async def test_accounts_mapped_to_decimal_balances(client: UpbitRestClient, fake: FakeUpbit) -> None:
    fake.on("GET", "/v1/accounts", ok([
        {"currency": "KRW", "balance": "1000000.0", "locked": "0.0", "avg_buy_price": "0",
         "avg_buy_price_modified": False, "unit_currency": "KRW"},
        {"currency": "BTC", "balance": "0.1", "locked": "0.00000001", "avg_buy_price": "50000000.0",
         "avg_buy_price_modified": False, "unit_currency": "KRW"},
    ]))
    balances = await client.accounts()
    assert balances["KRW"].balance == Decimal("1000000.0")
    assert balances["BTC"].total == Decimal("0.10000001")
    assert balances["BTC"].avg_buy_price == Decimal("50000000.0")
    payload = jwt.decode(fake.tokens[0], SECRET, algorithms=["HS256", "HS512"])
    assert payload["access_key"] == ACCESS and "query_hash" not in payload


async def test_create_order_body_fixed_point_and_signed(client: UpbitRestClient, fake: FakeUpbit) -> None:
    fake.on("POST", "/v1/orders", ok(ORDER, 201, group="order", sec=7))
    snap = await client.create_order("KRW-BTC", Side.BID, OrdType.LIMIT, identifier="at-1",
                                     price=Decimal("155772000"), volume=Decimal("1E-4"))
    body = json.loads(fake.posts()[0].content)
    assert body == {"market": "KRW-BTC", "ord_type": "limit", "side": "bid", "identifier": "at-1",
                    "price": "155772000.0", "volume": "0.0001"}
    payload = jwt.decode(fake.tokens[0], SECRET, algorithms=["HS256", "HS512"])
    expected = "&".join(f"{k}={v}" for k, v in body.items())
    assert payload["query_hash"] == hashlib.sha512(expected.encode()).hexdigest()
    assert snap.state is OrderState.WAIT and snap.locked == Decimal("15584.9886")
    assert snap.identifier == "at-1" and snap.volume == Decimal("0.0001")


async def test_get_order_trades_become_fills(client: UpbitRestClient, fake: FakeUpbit) -> None:
    fake.on("GET", "/v1/order", ok(DONE_MARKET_BUY))
    snap = await client.get_order(identifier="at-1")
    req = fake.requests[-1]
    payload = jwt.decode(fake.tokens[-1], SECRET, algorithms=["HS256"])
    assert payload["query_hash"] == hashlib.sha512(unquote(req.url.query.decode()).encode()).hexdigest()
    assert req.url.params["identifier"] == "at-1"
    assert snap.state is OrderState.CANCEL and snap.executed_volume == Decimal("0.00003736")
    (fill,) = snap.trades
    assert fill.trade_uuid == "t-1" and fill.funds == Decimal("5999.79184")
    assert fill.fee == Decimal("5999.79184") * Decimal("0.0005")
    assert fill.side is Side.BID and fill.identifier == "at-1" and fill.ts_ms > 0
    assert snap.paid_fee == Decimal("2.99989592")


async def test_fill_fee_uses_market_fee_from_chance(client: UpbitRestClient, fake: FakeUpbit) -> None:
    fake.on("GET", "/v1/orders/chance", ok({
        "bid_fee": "0.0025", "ask_fee": "0.0025", "maker_bid_fee": "0.0025", "maker_ask_fee": "0.0025",
        "market": {"id": "KRW-BTC", "name": "BTC/KRW", "order_sides": ["ask", "bid"],
                   "bid": {"currency": "KRW", "min_total": "5000"},
                   "ask": {"currency": "BTC", "min_total": "5000"},
                   "max_total": "1000000000", "state": "active"},
        "bid_account": {"currency": "KRW", "balance": "10000", "locked": "0", "avg_buy_price": "0",
                        "avg_buy_price_modified": False, "unit_currency": "KRW"},
        "ask_account": {"currency": "BTC", "balance": "0", "locked": "0", "avg_buy_price": "0",
                        "avg_buy_price_modified": False, "unit_currency": "KRW"},
    }))
    # the exchange's paid_fee agrees with its 0.25 % fee (the order's paid_fee is authoritative)
    fake.on("GET", "/v1/order", ok({**DONE_MARKET_BUY, "paid_fee": "14.9994796"}))
    chance = await client.chance("KRW-BTC")
    assert chance.bid_fee == Decimal("0.0025") and chance.min_total_bid == Decimal("5000")
    assert chance.bid_account is not None and chance.bid_account.balance == Decimal("10000")
    snap = await client.get_order(uuid="x")
    assert snap.trades[0].fee == Decimal("5999.79184") * Decimal("0.0025")


@pytest.mark.parametrize(
    ("status", "name", "exc"),
    [
        (400, "insufficient_funds_bid", InsufficientFundsError),
        (404, "order_not_found", OrderNotFoundError),
        (400, "duplicated_identifier", DuplicateIdentifierError),
        (401, "jwt_verification", AuthError),
    ],
)
async def test_final_errors_typed(client: UpbitRestClient, fake: FakeUpbit, status: int, name: str,
                                  exc: type[Exception]) -> None:
    fake.on("POST", "/v1/orders", err(status, name, "nope"))
    with pytest.raises(exc) as info:
        await client.create_order("KRW-BTC", Side.BID, OrdType.PRICE, identifier="at-2", price=Decimal(6000))
    assert info.value.name == name
    assert len(fake.posts()) == 1  # a refusal is final: never re-sent


async def test_429_backs_off_then_succeeds_once(client: UpbitRestClient, fake: FakeUpbit,
                                                clock: FakeClock) -> None:
    fake.on("POST", "/v1/orders",
            err(429, "too_many_requests", "Too many API requests.",
                {"Remaining-Req": "group=order; min=1800; sec=0"}),
            ok(ORDER, 201, group="order"))
    snap = await client.create_order("KRW-BTC", Side.BID, OrdType.LIMIT, identifier="at-1",
                                     price=Decimal(155772000), volume=Decimal("0.0001"))
    assert snap.uuid == ORDER["uuid"]
    assert len(fake.posts()) == 2
    assert sum(clock.sleeps) >= 1.0  # waited out the spent window before re-sending


async def test_429_retry_meeting_duplicate_returns_the_landed_order(
    client: UpbitRestClient, fake: FakeUpbit
) -> None:
    fake.on("POST", "/v1/orders", err(429, "too_many_requests"), err(400, "duplicated_identifier"))
    fake.on("GET", "/v1/order", ok(ORDER))
    snap = await client.create_order("KRW-BTC", Side.BID, OrdType.LIMIT, identifier="at-1",
                                     price=Decimal(155772000), volume=Decimal("0.0001"))
    assert snap.identifier == "at-1"
    assert len(fake.posts()) == 2
    assert fake.requests[-1].url.params["identifier"] == "at-1"


async def test_5xx_on_create_is_ambiguous_and_not_resent(client: UpbitRestClient, fake: FakeUpbit) -> None:
    fake.on("POST", "/v1/orders", err(500, "server_error"))
    with pytest.raises(AmbiguousOrderError) as info:
        await client.create_order("KRW-BTC", Side.ASK, OrdType.MARKET, identifier="at-3",
                                  volume=Decimal("0.5"))
    assert info.value.identifier == "at-3"
    assert len(fake.posts()) == 1


async def test_timeout_after_send_on_create_is_ambiguous(client: UpbitRestClient, fake: FakeUpbit) -> None:
    fake.on("POST", "/v1/orders", httpx.ReadTimeout("slow"))
    with pytest.raises(AmbiguousOrderError):
        await client.create_order("KRW-BTC", Side.ASK, OrdType.MARKET, identifier="at-4",
                                  volume=Decimal("0.5"))
    assert len(fake.posts()) == 1


async def test_connect_error_on_create_is_retried(client: UpbitRestClient, fake: FakeUpbit) -> None:
    fake.on("POST", "/v1/orders", httpx.ConnectError("refused"), ok(ORDER, 201, group="order"))
    snap = await client.create_order("KRW-BTC", Side.BID, OrdType.LIMIT, identifier="at-1",
                                     price=Decimal(155772000), volume=Decimal("0.0001"))
    assert snap.uuid == ORDER["uuid"] and len(fake.posts()) == 2


async def test_5xx_on_read_is_retried(client: UpbitRestClient, fake: FakeUpbit, clock: FakeClock) -> None:
    fake.on("GET", "/v1/order", err(503, "unavailable"), err(502, "bad_gateway"), ok(ORDER))
    snap = await client.get_order(uuid=ORDER["uuid"])
    assert snap.uuid == ORDER["uuid"] and len(fake.requests) == 3 and len(clock.sleeps) >= 2


async def test_read_gives_up_with_retryable_error(client: UpbitRestClient, fake: FakeUpbit) -> None:
    fake.on("GET", "/v1/accounts", err(500, "server_error"))
    with pytest.raises(RetryableError):
        await client.accounts()
    assert len(fake.requests) == client.max_attempts


async def test_418_blocks_every_group_for_announced_time(client: UpbitRestClient, fake: FakeUpbit,
                                                         clock: FakeClock) -> None:
    fake.on("GET", "/v1/accounts", err(418, "blocked", "blocked", {"Retry-After": "5"}), ok([]))
    assert await client.accounts() == {}
    assert sum(clock.sleeps) >= 5.0
    fake.on("GET", "/v1/ticker", err(418, "blocked", "IP blocked for 600 seconds"))
    with pytest.raises(RateLimitError) as info:
        await client.ticker(["KRW-BTC"])
    assert info.value.retry_after == 600.0  # too long to wait inline: the caller decides


async def test_quotation_numbers_are_exact_decimals(client: UpbitRestClient, fake: FakeUpbit) -> None:
    fake.on("GET", "/v1/ticker", httpx.Response(
        200, content=b'[{"market":"KRW-BTC","trade_price":155772000.0,"change_rate":0.0012345678901234567}]',
        headers={"Remaining-Req": "group=ticker; min=600; sec=9"}))
    (row,) = await client.ticker(["KRW-BTC"])
    assert row["change_rate"] == Decimal("0.0012345678901234567")
    assert fake.requests[0].url.params["markets"] == "KRW-BTC"
    assert "authorization" not in fake.requests[0].headers  # quotation calls are not signed


async def test_trades_ticks_cursor_and_candles(client: UpbitRestClient, fake: FakeUpbit) -> None:
    fake.on("GET", "/v1/trades/ticks", ok([], group="trade"))
    fake.on("GET", "/v1/candles/minutes/1", ok([], group="candle"))
    await client.trades_ticks("KRW-BTC", 500, cursor=12345)
    await client.candles_minutes("KRW-BTC", 1, to="2025-06-24T04:56:53Z", count=3)
    assert fake.requests[0].url.params["cursor"] == "12345"
    assert fake.requests[1].url.params["to"] == "2025-06-24T04:56:53Z"


async def test_open_orders_pages(client: UpbitRestClient, fake: FakeUpbit) -> None:
    page1 = [{**ORDER, "uuid": f"u{i}"} for i in range(100)]
    fake.on("GET", "/v1/orders/open", ok(page1), ok([{**ORDER, "uuid": "last"}]))
    orders = await client.open_orders("KRW-BTC")
    assert len(orders) == 101 and orders[-1].uuid == "last"
    assert fake.requests[1].url.params["page"] == "2"
    assert fake.requests[0].url.params.get_list("states[]") == ["wait", "watch"]


async def test_secrets_absent_from_errors_logs_and_repr(
    client: UpbitRestClient, fake: FakeUpbit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.on("GET", "/v1/accounts", err(401, "jwt_verification", f"bad token {SECRET}"))
    fake.on("POST", "/v1/orders", err(500, "server_error", f"echo {ACCESS}"))
    fake.on("GET", "/v1/order", httpx.ReadTimeout("timeout"))
    errors: list[Exception] = []
    for call in (client.accounts(),
                 client.create_order("KRW-BTC", Side.BID, OrdType.PRICE, identifier="at-9",
                                     price=Decimal(5000)),
                 client.get_order(uuid="u")):
        with pytest.raises(Exception) as info:  # every kind of failure: checked below
            await call
        errors.append(info.value)
    tokens = set(fake.tokens)
    assert tokens
    for exc in errors:
        text = f"{exc!s} {exc!r} {exc.__cause__!r} {exc.__context__!r}"
        assert SECRET not in text and ACCESS not in text
        assert not any(t in text for t in tokens)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in logged and not any(t in logged for t in tokens)
    assert SECRET not in repr(client) and ACCESS not in repr(client)


async def test_from_settings_reads_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from trader.config import Settings

    monkeypatch.setenv("UPBIT_ACCESS_KEY", ACCESS)
    monkeypatch.setenv("UPBIT_SECRET_KEY", SECRET)
    monkeypatch.setenv("TRADER_UPBIT_BASE_URL", "http://127.0.0.1:9/v1")
    c = UpbitRestClient.from_settings(Settings(_env_file=None))
    try:
        assert c.base_url == "http://127.0.0.1:9" and SECRET not in repr(c)
    finally:
        await c.close()
    monkeypatch.delenv("UPBIT_SECRET_KEY")
    with pytest.raises(ValueError, match="UPBIT_SECRET_KEY"):
        UpbitRestClient.from_settings(Settings(_env_file=None))


def test_order_fees_add_up_to_the_exchanges_paid_fee() -> None:
    """Per-trade fees are funds × rate, but the order's paid_fee is the truth: Σ fees == paid_fee."""
    from trader.upbit.convert import order_from_json

    order = {**DONE_MARKET_BUY, "paid_fee": "3.00000000"}
    snap = order_from_json(order)
    assert sum(f.fee for f in snap.trades) == Decimal("3.00000000") == snap.paid_fee
