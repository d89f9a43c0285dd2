"""Async Upbit REST client over the official SDK (`upbit.AsyncUpbit`): typed results, typed errors.

Why the SDK's own retries are OFF (`max_retries=0`): it re-sends any request after a timeout, a
connection error, a 429 or a 5xx — including `POST /v1/orders`, where a timeout after the request
reached the exchange would place the order twice. This client retries itself, by this rule:

- reads (and cancels, which cannot add exposure): 429/418, 5xx and network errors are retried
  with jittered exponential back-off, honouring `Remaining-Req sec=0` and the 418 block time;
- order creation: retried only when the request certainly did not execute — 429/418 (refused
  before processing) or a connect error (never sent). A retry that meets `duplicated_identifier`
  proves the earlier attempt landed, and returns that order. A timeout after sending, or a 5xx,
  raises `AmbiguousOrderError`: the caller resolves it with `get_order(identifier=…)`.

Every request first waits in the per-group `RateLimiter`, which every response's `Remaining-Req`
header keeps in step with the server. Keys never reach logs, reprs or exception messages: SDK
exceptions (which carry the signed request) are replaced, not chained.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Literal

import httpx
from upbit import APIConnectionError, APIStatusError, AsyncUpbit

from trader.domain import OrderSnapshot, OrdType, Side
from trader.upbit.auth import Credentials, mask
from trader.upbit.client import Balance, order_request_out
from trader.upbit.convert import (
    Chance,
    balances_from_json,
    chance_from_json,
    order_from_json,
    order_params,
    order_ref,
)
from trader.upbit.direct import DirectOrderSender
from trader.upbit.errors import (
    AmbiguousOrderError,
    DuplicateIdentifierError,
    RateLimitError,
    RetryableError,
    UpbitError,
    error_parts,
    from_response,
    redact,
)
from trader.upbit.ratelimit import RateLimiter, group_for, parse_remaining_req

log = logging.getLogger(__name__)

Kind = Literal["read", "create", "cancel"]
# Failures that happen before a single byte of the request left: safe to re-send even an order.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_SECONDS_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec|second|초)", re.IGNORECASE)
_DEFAULT_418_BLOCK_S = 30.0


def _decode(raw: bytes) -> Any:
    """JSON with exact Decimals for the Quotation API's number fields (ints stay ints)."""
    return json.loads(raw, parse_float=Decimal)


_BODY_WRITTEN = "http11.send_request_body.complete"


async def _trace_order_write(request: httpx.Request) -> None:
    """httpx request hook: have httpcore report the moment a POST's body is written."""
    callback = order_request_out.get()
    if callback is None or request.method != "POST":
        return

    earlier = request.extensions.get("trace")  # someone else's trace keeps working

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == _BODY_WRITTEN:
            callback()
        if earlier is not None:
            await earlier(event, info)

    request.extensions = {**request.extensions, "trace": trace}


class UpbitRestClient:
    """`trader.upbit.client.ExchangeClient` over HTTP (Upbit or the simulator), plus quotation calls."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        max_wait_s: float = 10.0,
        backoff_s: float = 0.2,
        limiter: RateLimiter | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        direct_orders: bool = False,
    ) -> None:
        base_url = base_url.rstrip("/")
        if base_url.endswith("/v1"):  # the SDK appends /v1/...; accept the docs' ".../v1" form too
            base_url = base_url[: -len("/v1")]
        self.base_url = base_url
        self._creds = Credentials(access_key, secret_key)
        self.max_attempts = max(1, max_attempts)
        self.max_wait_s = max_wait_s
        self.backoff_s = backoff_s
        self.limiter = limiter or RateLimiter()
        self._sleep = sleep
        self._fee_rates: dict[str, dict[str, Decimal]] = {}
        self._sdk = AsyncUpbit(
            access_key=access_key,
            secret_key=secret_key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,  # see the module docstring: retries are ours, by the identifier rule
            http_client=http_client,
        )
        self._raw = self._sdk.with_raw_response
        # opt-in: order creations skip the SDK's request machinery (trader.upbit.direct)
        self._direct = (
            DirectOrderSender(self._sdk, self._creds, base_url, timeout_s=timeout_s)
            if direct_orders
            else None
        )
        # tell an order's sender when its request is written out (see client.order_request_out)
        self._sdk._client.event_hooks["request"].append(_trace_order_write)

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> UpbitRestClient:
        """From `trader.config.Settings` (keys from UPBIT_ACCESS_KEY/UPBIT_SECRET_KEY)."""
        if settings.upbit_access_key is None or settings.upbit_secret_key is None:
            raise ValueError("UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY must be set")
        kwargs.setdefault("direct_orders", settings.direct_orders)
        return cls(
            settings.upbit_access_key.get_secret_value(),
            settings.upbit_secret_key.get_secret_value(),
            settings.upbit_base_url,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"UpbitRestClient(base_url={self.base_url!r}, access_key={mask(self._creds.access_key)})"

    def keep_order_connection_warm(self) -> None:
        """With direct orders: hold a fresh connection ready for the next order (see direct.py)."""
        if self._direct is not None:
            self._direct.keep_warm()

    async def close(self) -> None:
        if self._direct is not None:
            await self._direct.close()
        await self._sdk.close()

    async def __aenter__(self) -> UpbitRestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- exchange (ExchangeClient)

    async def accounts(self) -> dict[str, Balance]:
        rows = await self._request("GET", "/v1/accounts", lambda: self._raw.accounts.list())
        return balances_from_json(rows)

    async def chance(self, market: str) -> Chance:
        """Fees and limits of a market; caches its fee rates for the fills of later orders."""
        data = await self._request(
            "GET", "/v1/orders/chance", lambda: self._raw.orders.retrieve_chance(market=market)
        )
        result = chance_from_json(data)
        self._fee_rates[market] = result.fee_rates
        return result

    async def create_order(
        self,
        market: str,
        side: Side,
        ord_type: OrdType,
        *,
        identifier: str,
        price: Decimal | None = None,
        volume: Decimal | None = None,
        time_in_force: str | None = None,
    ) -> OrderSnapshot:
        """POST /v1/orders. Never blindly re-sent: see the module docstring for the retry rule."""
        params: dict[str, Any] = order_params(market, side, ord_type, identifier=identifier, price=price,
                                              volume=volume, time_in_force=time_in_force)
        direct = self._direct
        if direct is not None:
            send: Callable[[], Awaitable[Any]] = lambda: direct.create(params)  # noqa: E731
        else:
            send = lambda: self._raw.orders.create(**params)  # noqa: E731
        data = await self._request("POST", "/v1/orders", send, kind="create", identifier=identifier)
        return self._order(data)

    async def get_order(self, *, uuid: str | None = None, identifier: str | None = None) -> OrderSnapshot:
        kw = order_ref(uuid, identifier)
        return self._order(await self._request("GET", "/v1/order", lambda: self._raw.orders.retrieve(**kw)))

    async def cancel_order(self, *, uuid: str | None = None, identifier: str | None = None) -> OrderSnapshot:
        """DELETE /v1/order: returns the order as it was when the cancel was accepted (often `wait`)."""
        kw = order_ref(uuid, identifier)
        data = await self._request(
            "DELETE", "/v1/order", lambda: self._raw.orders.cancel(**kw), kind="cancel"
        )
        return self._order(data)

    async def open_orders(self, market: str | None = None) -> list[OrderSnapshot]:
        """All open orders (wait and watch), every page."""
        out: list[OrderSnapshot] = []
        page = 1
        while True:
            kw: dict[str, Any] = {"states": ["wait", "watch"], "limit": 100, "page": page}
            if market:
                kw["market"] = market
            rows = await self._request(
                "GET", "/v1/orders/open", lambda kw=kw: self._raw.orders.list_open(**kw)
            )
            out.extend(self._order(r) for r in rows)
            if len(rows) < 100:
                return out
            page += 1

    async def closed_orders(self, market: str | None = None, *, limit: int = 100) -> list[OrderSnapshot]:
        """Done/cancelled orders of the last 7 days (Upbit's default window), newest first."""
        kw: dict[str, Any] = {"limit": limit, "order_by": "desc"}
        if market:
            kw["market"] = market
        rows = await self._request("GET", "/v1/orders/closed", lambda: self._raw.orders.list_closed(**kw))
        return [self._order(r) for r in rows]

    # ---------------------------------------------------------------- quotation (numbers are Decimal)

    async def markets(self, *, details: bool = False) -> list[dict[str, Any]]:
        """GET /v1/market/all: every market the exchange lists (rows with `market`, names...)."""
        return await self._request(
            "GET", "/v1/market/all", lambda: self._raw.trading_pairs.list(is_details=details)
        )

    async def ticker(self, markets: list[str] | str) -> list[dict[str, Any]]:
        codes = markets if isinstance(markets, str) else ",".join(markets)
        return await self._request(
            "GET", "/v1/ticker", lambda: self._raw.tickers.list_by_trading_pairs(markets=codes)
        )

    async def candles_minutes(
        self, market: str, unit: int, to: str | None = None, count: int = 200
    ) -> list[dict[str, Any]]:
        """Minute candles, newest first (Upbit's order); `to` is an exclusive end (ISO-8601)."""
        kw: dict[str, Any] = {"market": market, "count": count}
        if to:
            kw["to"] = to
        return await self._request(
            "GET", f"/v1/candles/minutes/{unit}", lambda: self._raw.candles.list_minutes(unit, **kw)  # type: ignore[arg-type]
        )

    async def trades_ticks(
        self, market: str, count: int = 200, cursor: str | int | None = None, *, days_ago: int | None = None
    ) -> list[dict[str, Any]]:
        """Recent trades, newest first; `cursor` (a sequential_id) pages to older trades."""
        kw: dict[str, Any] = {"market": market, "count": count}
        if cursor is not None:
            kw["cursor"] = str(cursor)
        if days_ago is not None:
            kw["days_ago"] = days_ago
        return await self._request("GET", "/v1/trades/ticks", lambda: self._raw.trades.list(**kw))

    async def orderbook(self, markets: list[str] | str) -> list[dict[str, Any]]:
        codes = markets if isinstance(markets, str) else ",".join(markets)
        return await self._request("GET", "/v1/orderbook", lambda: self._raw.orderbooks.list(markets=codes))

    # ---------------------------------------------------------------- plumbing

    def _order(self, data: dict[str, Any]) -> OrderSnapshot:
        return order_from_json(data, self._fee_rates.get(str(data.get("market"))))

    def _backoff(self, attempt: int) -> float:
        """Jittered exponential back-off: 0.2 s, 0.4 s, 0.8 s … ±25 %."""
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_wait_s) * (0.75 + random.random() / 2)

    def _redact(self, text: str) -> str:
        return redact(text, self._creds.access_key, self._creds.secret_key)

    def _status_error(self, exc: APIStatusError, group: str) -> UpbitError:
        """SDK status error → our typed error (redacted); updates the limiter from its headers."""
        status = exc.status_code
        name, message = error_parts(exc.body, exc.name or status)
        headers = exc.response.headers
        remaining = parse_remaining_req(headers.get("remaining-req"))
        self.limiter.observe(remaining)
        retry_after = 0.0
        if status == 418:
            retry_after = self._block_seconds(headers, message)
            self.limiter.block_all(retry_after)
        elif status == 429:
            # the window is spent: close the group for a full window (more if the server says so)
            retry_after = max(self._header_seconds(headers) or 0.0, self.limiter.window(group))
            self.limiter.block(remaining.group if remaining else group, retry_after)
        elif status >= 500:
            retry_after = self._header_seconds(headers) or 0.0
        return from_response(status, name, self._redact(message), retry_after)

    @staticmethod
    def _header_seconds(headers: httpx.Headers) -> float | None:
        value = headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    def _block_seconds(self, headers: httpx.Headers, message: str) -> float:
        """418's block duration: Retry-After, else a number of seconds in the message, else 30 s."""
        seconds = self._header_seconds(headers)
        if seconds is None:
            m = _SECONDS_RE.search(message)
            seconds = float(m.group(1)) if m else _DEFAULT_418_BLOCK_S
        return seconds

    async def _request(
        self,
        method: str,
        path: str,
        call: Callable[[], Awaitable[Any]],
        *,
        kind: Kind = "read",
        identifier: str | None = None,
    ) -> Any:
        """Pace, send, decode; retry per the module rule; raise typed, redacted errors."""
        group = group_for(method, path)
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire(group)
            # Decide outside the `except` blocks: raising inside them would chain the SDK
            # exception (it holds the signed request and the raw body) as __context__.
            err: UpbitError | None = None
            network: str | None = None
            not_sent = False
            try:
                raw = await call()
            except APIStatusError as exc:
                err = self._status_error(exc, group)
            except APIConnectionError as exc:
                cause = exc.__cause__
                network = type(cause).__name__ if cause is not None else type(exc).__name__
                not_sent = isinstance(cause, _NOT_SENT)
            if err is None and network is None:
                self.limiter.observe(parse_remaining_req(raw.headers.get("remaining-req")))
                return _decode(await raw.read())
            if network is not None:
                if kind == "create" and not not_sent:
                    raise AmbiguousOrderError(identifier or "", f"network: {network}")
                if attempt >= self.max_attempts:
                    raise RetryableError(0, "network_error", f"{method} {path}: {network}")
                delay = self._backoff(attempt)
                log.warning("%s %s: %s, retry %d in %.2fs", method, path, network, attempt, delay)
                await self._sleep(delay)
                continue
            assert err is not None
            if kind == "create" and attempt > 1 and isinstance(err, DuplicateIdentifierError):
                # an earlier attempt of this very call landed: that order is the answer
                log.warning("order %s: retry met duplicated_identifier, fetching it", identifier)
                return await self._request(
                    "GET", "/v1/order", lambda: self._raw.orders.retrieve(identifier=identifier)
                )
            if kind == "create" and err.status >= 500:
                raise AmbiguousOrderError(identifier or "", f"HTTP {err.status} {err.name}")
            if not err.retryable or attempt >= self.max_attempts:
                raise err
            if isinstance(err, RateLimitError):
                if err.retry_after > self.max_wait_s:
                    raise err
                log.warning("%s %s: %s %s, retry %d after back-off",
                            method, path, err.status, err.name, attempt)
                continue  # the limiter now holds the group (or every group) for the back-off
            delay = max(self._backoff(attempt), getattr(err, "retry_after", 0.0))
            log.warning("%s %s: %s %s, retry %d in %.2fs", method, path, err.status, err.name, attempt, delay)
            await self._sleep(delay)
