"""`POST /v1/orders` written straight to a kept-alive HTTP/1.1 connection (opt-in fast path).

Why: between two orders the trading loop decodes thousands of ticks, so the order path runs with
cold caches, and the official SDK's request building plus httpx/httpcore's send path (pydantic
options, URL parsing, header merging, anyio lock checkpoints) cost 2–3 ms from the decision to the
bytes on the socket (bench/live_latency.py). Here one request is a dict → JSON, one JWT (the same
`trader.upbit.auth` signing the private WebSocket uses, checked against the SDK's tokens by the
simulator's verifier) and one `transport.write`; the response is parsed by h11.

Only the request is ours. Everything after it reuses the SDK client's behaviour: a non-2xx answer
becomes the SDK's own `APIStatusError` (built by the SDK from the response), a failure becomes an
`APIConnectionError` whose cause says whether the request can have left (`httpx.ConnectError`:
never sent) or not (`httpx.ReadError`/`ReadTimeout`: it may have been executed), so
`UpbitRestClient._request` applies its identifier rule unchanged. Keys never appear in errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11
import httpx
import orjson
from upbit import APIConnectionError, AsyncUpbit

from trader.upbit.auth import Credentials, make_token
from trader.upbit.client import order_request_out

ORDERS_PATH = "/v1/orders"
# a connection idle longer than this is not reused: a server may have closed it, and a POST on a
# connection closed under it would fail after sending — an ambiguous order for nothing
IDLE_REUSE_S = 4.0
# `keep_warm` replaces the spare connection before it gets that old, so an order never waits for
# a connect (over TLS to Upbit, a handshake of tens of milliseconds)
REFRESH_AFTER_S = IDLE_REUSE_S - 1.5


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and time.monotonic() - self.idle_since < IDLE_REUSE_S
        )

    def close(self) -> None:
        self.writer.close()


class RawResponse:
    """What `UpbitRestClient._request` reads from a successful answer (as the SDK's raw response)."""

    def __init__(self, status: int, headers: httpx.Headers, body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self._body = body

    async def read(self) -> bytes:
        return self._body


class DirectOrderSender:
    """Sends order creations over its own connections to `base_url` (one request per connection
    at a time; a second concurrent order opens a second connection)."""

    def __init__(self, sdk: AsyncUpbit, creds: Credentials, base_url: str, *, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._host_header = parts.netloc.encode()
        self._url = f"{base_url.rstrip('/')}{ORDERS_PATH}"
        self._sdk = sdk
        self._creds = creds
        self.timeout_s = timeout_s
        self._idle: list[_Conn] = []
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self._https else None
        self._warmer: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._warmer is not None:
            self._warmer.cancel()
            with contextlib.suppress(BaseException):
                await self._warmer
        while self._idle:
            self._idle.pop().close()

    def keep_warm(self) -> None:
        """Keep one fresh idle connection ready from now on (a background task, until close)."""
        if self._warmer is None or self._warmer.done():
            loop = asyncio.get_running_loop()
            self._warmer = loop.create_task(self._keep_warm(), name="direct-orders-warm")

    async def _keep_warm(self) -> None:
        while True:
            now = time.monotonic()
            fresh = [c for c in self._idle if c.usable() and now - c.idle_since < REFRESH_AFTER_S]
            if not fresh:
                try:
                    conn = await self._open()
                except APIConnectionError:
                    conn = None  # the exchange is unreachable now: an order will report it
                if conn is not None:
                    stale, self._idle = self._idle, [conn]
                    for old in stale:
                        old.close()
            await asyncio.sleep(0.5)

    async def create(self, params: dict[str, str]) -> RawResponse:
        """POST the order; raises the SDK's APIStatusError / APIConnectionError like its client."""
        request = self._request_bytes(params)
        conn = await self._connection()
        try:
            conn.writer.write(request)
        except Exception as exc:  # the transport refused the bytes: nothing left
            conn.close()
            refused = httpx.ConnectError(type(exc).__name__)
            raise self._connection_error(refused) from refused
        callback = order_request_out.get()
        if callback is not None:
            callback()
        failure: BaseException | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                await conn.writer.drain()
                status, headers, body, keep = await self._read_response(conn.reader)
        except TimeoutError:
            failure = httpx.ReadTimeout("timed out waiting for the order's answer")
        except (OSError, h11.ProtocolError, asyncio.IncompleteReadError, EOFError) as exc:
            failure = httpx.ReadError(type(exc).__name__)
        except asyncio.CancelledError:  # shutdown mid-order: the answer is never read, drop it
            conn.close()
            raise
        if failure is not None:
            conn.close()
            raise self._connection_error(failure) from failure  # the cause tells: maybe executed
        if keep:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
        response_headers = httpx.Headers(headers)
        if status >= 400:
            response = httpx.Response(
                status, headers=response_headers, content=body, request=httpx.Request("POST", self._url)
            )
            raise self._sdk._make_status_error_from_response(response) from None
        return RawResponse(status, response_headers, body)

    # ---- plumbing ---------------------------------------------------------------------------
    def _request_bytes(self, params: dict[str, str]) -> bytes:
        body = orjson.dumps(params)
        token = make_token(self._creds.access_key, self._creds.secret_key, params)
        head = (
            b"POST " + ORDERS_PATH.encode() + b" HTTP/1.1\r\nHost: " + self._host_header
            + b"\r\nAuthorization: Bearer " + token.encode()
            + b"\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n"
        )  # fmt: skip
        return head + body

    async def _connection(self) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return await self._open()

    async def _open(self) -> _Conn:
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._ssl else None
                )
        except (OSError, TimeoutError) as exc:  # nothing was sent: safe to retry
            refused = httpx.ConnectError(type(exc).__name__)
            raise self._connection_error(refused) from refused
        return _Conn(reader, writer)

    @staticmethod
    async def _read_response(
        reader: asyncio.StreamReader,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        parser = h11.Connection(h11.CLIENT)
        # h11 must see the request it answers: a minimal one of the same method and framing
        framing = [("Host", "x"), ("Content-Length", "0")]
        parser.send(h11.Request(method="POST", target=ORDERS_PATH, headers=framing))
        parser.send(h11.EndOfMessage())
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data:
                    raise EOFError("connection closed before the answer was complete")
                parser.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = list(event.headers)
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                keep = parser.our_state is h11.DONE and parser.their_state is h11.DONE
                return status, headers, b"".join(chunks), keep
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("connection closed")

    def _connection_error(self, cause: Exception) -> APIConnectionError:
        return APIConnectionError(message=f"order request failed: {type(cause).__name__}",
                                  request=httpx.Request("POST", self._url))  # fmt: skip

