"""Upbit WebSocket client: subscribe, keep alive, reconnect with back-off, resubscribe, backfill gaps.

`UpbitWebSocket` is an async iterator. With `events=True` (default) it yields domain events
(`Tick` for trade/ticker, `MyOrderEvent`, `MyAssetEvent`, dicts with DEFAULT names for the rest);
with `events=False` the decoded dicts as sent. Frames are decoded with orjson; nothing blocks the
loop. Keep-alive is the protocol PING (websockets' `ping_interval`); `{"status":"UP"}` messages
are counted and skipped. After a drop it reconnects with jittered exponential back-off, sends the
same request again, and — when given a REST client — fills the hole: the first trade after the
reconnect and the last one before the drop bound the gap; the missed trades come from
`/v1/trades/ticks` (or minute candles) and are yielded oldest first BEFORE that first live trade.
Every trade is delivered once (de-duplicated by sequential_id).

The private channel (`myOrder`, `myAsset`) signs the handshake (`private_auth=(access, secret)`)
with a fresh JWT on every connect; the token never reaches a log (websockets' debug log of the
handshake headers goes through a redacting logger).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from trader.domain import Tick
from trader.timeutil import now_ms
from trader.upbit.auth import Credentials, make_token
from trader.upbit.errors import AuthError, redact
from trader.upbit.events import Event, error_from_message, to_event
from trader.upbit.gaps import Gap, SeenTrades, TradesSource, backfill

log = logging.getLogger(__name__)

Format = Literal["SIMPLE", "DEFAULT"]


class _RedactFilter(logging.Filter):
    """Rewrites a record's message without bearer tokens/keys before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact(text)
        if clean != text:
            record.msg, record.args = clean, None
        return True


# websockets logs every handshake header at DEBUG, Authorization included: give it this logger.
_protocol_log = logging.getLogger("trader.upbit.ws.protocol")
_protocol_log.addFilter(_RedactFilter())


@dataclass
class WsStats:
    """Counters of one client (all connections)."""

    messages: int = 0  # frames decoded (keep-alives included)
    events: int = 0  # items yielded (backfilled ticks included)
    reconnects: int = 0
    keepalives: int = 0
    duplicates: int = 0  # trades dropped because their sequential_id was already delivered
    backfilled: int = 0
    last_message_at: float = 0.0  # time.time() of the last frame
    gaps: list[Gap] = field(default_factory=list)


def request_payload(
    subscriptions: Sequence[dict[str, Any]], fmt: str = "SIMPLE", ticket: str | None = None
) -> bytes:
    """The request array: ticket first, then the type objects, then the format."""
    return orjson.dumps([{"ticket": ticket or f"trader-{uuid.uuid4()}"}, *subscriptions, {"format": fmt}])


def subscription(kind: str, codes: Sequence[str] = (), **options: Any) -> dict[str, Any]:
    """`{"type": kind, "codes": [UPPERCASE…], …}` (myAsset takes no codes)."""
    sub: dict[str, Any] = {"type": kind}
    if codes:
        sub["codes"] = [c.upper() for c in codes]
    sub.update(options)
    return sub


class UpbitWebSocket:
    """Reconnecting Upbit WebSocket; `async for event in ws: …`, `await ws.close()` to stop."""

    def __init__(
        self,
        url: str,
        *,
        subscriptions: list[dict[str, Any]],
        fmt: Format = "SIMPLE",
        private_auth: tuple[str, str] | None = None,
        rest: TradesSource | None = None,
        events: bool = True,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        ping_interval_s: float | None = 20.0,
        ping_timeout_s: float | None = 20.0,
        open_timeout_s: float = 10.0,
        max_size: int = 4 * 2**20,
    ) -> None:
        self.url = url
        self.subscriptions = subscriptions
        self.fmt = fmt
        self._creds = Credentials(*private_auth) if private_auth else None
        self.rest = rest
        self.events = events
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.open_timeout_s = open_timeout_s
        self.max_size = max_size
        self.stats = WsStats()
        self.seen = SeenTrades()
        self.connected = False
        self._ws: ClientConnection | None = None
        self._closed = False
        self._resync: set[str] = set()
        self._connected_once = False
        self._decode: Callable[[bytes | str], Any] = orjson.loads

    def __repr__(self) -> str:
        return f"UpbitWebSocket(url={self.url!r}, fmt={self.fmt!r}, private={self._creds is not None})"

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._run()

    async def __aenter__(self) -> UpbitWebSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        ws = self._ws
        if ws is not None:
            await ws.close()

    async def send_text(self, text: str) -> bool:
        """Send one text frame on the live connection (e.g. a lockstep simulator's "ACK <seq>");
        False when not connected. Not part of Upbit's protocol: only for the simulator."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    # ---------------------------------------------------------------- connection loop

    def _headers(self) -> dict[str, str]:
        if self._creds is None:
            return {}
        return {"Authorization": f"Bearer {make_token(self._creds.access_key, self._creds.secret_key)}"}

    async def _connect(self) -> ClientConnection:
        host = urlsplit(self.url).hostname or ""
        return await connect(
            self.url,
            additional_headers=self._headers(),
            open_timeout=self.open_timeout_s,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_timeout_s,
            max_size=self.max_size,
            proxy=None if host in ("127.0.0.1", "localhost", "::1") else True,
            logger=_protocol_log,
        )

    async def _backoff(self, attempt: int) -> None:
        delay = min(self.backoff_initial_s * 2 ** max(attempt - 1, 0), self.backoff_max_s)
        delay *= 0.5 + random.random() / 2  # full jitter in [½, 1]: a fleet never reconnects in step
        log.info("websocket reconnect in %.2fs (attempt %d)", delay, attempt)
        await asyncio.sleep(delay)

    async def _run(self) -> AsyncIterator[Event]:
        attempt = 0
        payload = request_payload(self.subscriptions, self.fmt)
        while not self._closed:
            try:
                ws = await self._connect()
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise AuthError(status, "INVALID_AUTH", "websocket handshake refused") from None
                attempt += 1
                log.warning("websocket handshake refused: HTTP %d", status)
                await self._backoff(attempt)
                continue
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                attempt += 1
                log.warning("websocket connect failed: %s", type(exc).__name__)
                await self._backoff(attempt)
                continue
            self._ws = ws
            if self._connected_once:
                self.stats.reconnects += 1
                self._resync = set(self.seen.last)  # markets whose stream has a hole to check
            self._connected_once = True
            self.connected = True
            try:
                await ws.send(payload)
                async for frame in ws:
                    attempt = 0  # the connection works: the next drop starts the back-off afresh
                    async for item in self._handle(frame):
                        yield item
            except ConnectionClosed as exc:
                if not self._closed:
                    log.warning("websocket dropped (%s)", exc.rcvd.code if exc.rcvd else "no close frame")
            finally:
                self.connected = False
                self._ws = None
                await ws.close()
            if self._closed:
                return
            attempt += 1
            await self._backoff(attempt)

    # ---------------------------------------------------------------- messages

    async def _handle(self, frame: bytes | str) -> AsyncIterator[Event]:
        self.stats.messages += 1
        self.stats.last_message_at = time.time()
        msg = self._decode(frame)
        if isinstance(msg, list):  # JSON_LIST / SIMPLE_LIST formats
            for m in msg:
                async for item in self._handle_one(m):
                    yield item
            return
        async for item in self._handle_one(msg):
            yield item

    async def _handle_one(self, msg: dict[str, Any]) -> AsyncIterator[Event]:
        if "status" in msg and len(msg) == 1:
            self.stats.keepalives += 1
            return
        if "error" in msg:
            raise error_from_message(msg)
        if not self.events:
            self.stats.events += 1
            yield msg
            return
        event = to_event(msg)
        if event is None:
            return
        if isinstance(event, Tick):
            if event.market in self._resync:
                self._resync.discard(event.market)
                for tick in await self._fill_gap(event):
                    self.stats.events += 1
                    yield tick
            if not self.seen.add(event):
                self.stats.duplicates += 1
                return
        self.stats.events += 1
        yield event

    async def _fill_gap(self, first: Tick) -> list[Tick]:
        """Missed trades between the last delivered tick and `first` (the first after reconnect)."""
        last = self.seen.last.get(first.market)
        if last is None or (first.seq and first.seq == last.seq) or first.ts_ms < last.ts_ms:
            return []  # nothing happened while we were away
        if self.rest is None:
            self.stats.gaps.append(Gap(first.market, last.ts_ms, last.seq, first.ts_ms, first.seq, 0, "none"))
            log.warning("gap in %s not filled: no REST client", first.market)
            return []
        ticks, gap = await backfill(self.rest, last, first, self.seen, now_ms=now_ms())
        self.stats.gaps.append(gap)
        out = [t for t in ticks if self.seen.add(t)]
        self.stats.backfilled += len(out)
        log.info("gap in %s filled with %d %s", first.market, len(out), gap.source)
        return out
