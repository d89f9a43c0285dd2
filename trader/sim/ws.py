"""Upbit WebSocket endpoints: public quotation (/websocket/v1) and private (/websocket/v1/private).

A `Hub` keeps subscriptions per (type, code) and format; a message is encoded once per format
and the same bytes are queued to every subscriber, whose own sender task writes BINARY frames
(pyupbit decodes `recv()` as bytes). Queues are bounded by a high-water mark: at speed max the
feed waits for readers (backpressure); otherwise a reader that falls too far behind is dropped,
as Upbit drops slow consumers. Public types: ticker, trade, orderbook and candle.1s/candle.Nm.
With a limiter, `websocket-connect` (over the limit: HTTP 429 on the handshake) and
`websocket-message` (a TOO_MANY_REQUESTS error, then close 1008) are enforced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from trader.sim.ackgate import AckError, QuietBand, parse_ack_frame
from trader.sim.book import level_text
from trader.sim.matching import SimError
from trader.sim.ratelimit import RateLimiter, origin_caller

SIMPLE_KEYS: dict[str, dict[str, str]] = {
    "ticker": {
        "type": "ty", "code": "cd", "opening_price": "op", "high_price": "hp", "low_price": "lp",
        "trade_price": "tp", "prev_closing_price": "pcp", "change": "c", "change_price": "cp",
        "signed_change_price": "scp", "change_rate": "cr", "signed_change_rate": "scr", "trade_volume": "tv",
        "acc_trade_volume": "atv", "acc_trade_volume_24h": "atv24h", "acc_trade_price": "atp",
        "acc_trade_price_24h": "atp24h", "trade_date": "tdt", "trade_time": "ttm", "trade_timestamp": "ttms",
        "ask_bid": "ab", "acc_ask_volume": "aav", "acc_bid_volume": "abv", "highest_52_week_price": "h52wp",
        "highest_52_week_date": "h52wdt", "lowest_52_week_price": "l52wp", "lowest_52_week_date": "l52wdt",
        "market_state": "ms", "delisting_date": "dd", "market_warning": "mw", "timestamp": "tms",
        "stream_type": "st", "trade_status": "ts", "market_state_for_ios": "msfi",
        "is_trading_suspended": "its",
    },
    "trade": {
        "type": "ty", "code": "cd", "trade_price": "tp", "trade_volume": "tv", "ask_bid": "ab",
        "prev_closing_price": "pcp", "change": "c", "change_price": "cp", "trade_date": "td",
        "trade_time": "ttm", "trade_timestamp": "ttms", "timestamp": "tms", "sequential_id": "sid",
        "best_ask_price": "bap", "best_ask_size": "bas", "best_bid_price": "bbp", "best_bid_size": "bbs",
        "stream_type": "st",
    },
    "orderbook": {
        "type": "ty", "code": "cd", "total_ask_size": "tas", "total_bid_size": "tbs",
        "orderbook_units": "obu", "timestamp": "tms", "level": "lv", "stream_type": "st",
    },
    "myOrder": {
        "type": "ty", "code": "cd", "uuid": "uid", "ask_bid": "ab", "order_type": "ot", "state": "s",
        "trade_uuid": "tuid", "price": "p", "avg_price": "ap", "volume": "v", "remaining_volume": "rv",
        "executed_volume": "ev", "trades_count": "tc", "reserved_fee": "rsf", "remaining_fee": "rmf",
        "paid_fee": "pf", "locked": "l", "executed_funds": "ef", "time_in_force": "tif", "trade_fee": "tf",
        "is_maker": "im", "identifier": "id", "smp_type": "smpt", "prevented_volume": "pv",
        "prevented_locked": "pl", "trade_timestamp": "ttms", "order_timestamp": "otms", "timestamp": "tms",
        "stream_type": "st",
    },
    "myAsset": {
        "type": "ty", "asset_uuid": "astuid", "assets": "ast", "asset_timestamp": "asttms",
        "timestamp": "tms", "stream_type": "st",
    },
}
# candle.* messages (upbit-sdk WsCandleResponse / SimpleCandle field names)
_CANDLE_KEYS = {
    "type": "ty", "code": "cd", "candle_date_time_utc": "cdttmu", "candle_date_time_kst": "cdttmk",
    "opening_price": "op", "high_price": "hp", "low_price": "lp", "trade_price": "tp",
    "candle_acc_trade_volume": "catv", "candle_acc_trade_price": "catp", "timestamp": "tms",
    "stream_type": "st",
}
CANDLE_TYPES = ("candle.1s", "candle.1m", "candle.3m", "candle.5m", "candle.10m", "candle.15m",
                "candle.30m", "candle.60m", "candle.240m")
SIMPLE_KEYS.update({t: _CANDLE_KEYS for t in CANDLE_TYPES})
_UNIT_KEYS = {"ask_price": "ap", "bid_price": "bp", "ask_size": "as", "bid_size": "bs"}
_ASSET_KEYS = {"currency": "cu", "balance": "b", "locked": "l"}
FORMATS = ("DEFAULT", "SIMPLE", "JSON_LIST", "SIMPLE_LIST")
PUBLIC_TYPES = ("ticker", "trade", "orderbook")
PRIVATE_TYPES = ("myOrder", "myAsset")
QUOTE_TYPES = PUBLIC_TYPES + CANDLE_TYPES  # everything /websocket/v1 serves
TOO_MANY = "요청 수 제한을 초과했습니다."  # message of the TOO_MANY_REQUESTS WebSocket error


_KEY_ORDER: dict[tuple[str, int, str], tuple[str, ...]] = {}
ORDERBOOK_COUNTS = (1, 5, 15, 30)  # `KRW-BTC.15`; since 2025-07-02 any other count gives 30


def parse_orderbook_code(code: str) -> tuple[str, int, Decimal]:
    """(market, unit count, level) of an orderbook subscription key: the client's code
    (`KRW-BTC` or `KRW-BTC.15`), plus `|<level>` when a grouping level was asked for."""
    base, _, level = code.partition("|")
    market, _, count = base.partition(".")
    n = int(count) if count.isdigit() else 30
    return market, (n if n in ORDERBOOK_COUNTS else 30), (Decimal(level) if level else Decimal(0))


def parse_level(value: object) -> Decimal | None:
    """An orderbook `level` (number or numeric string) as a Decimal; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        level = Decimal(str(value))
    except InvalidOperation:
        return None
    return level if level.is_finite() and level >= 0 else None


def simplify(msg: dict) -> dict:
    # the builders emit a fixed key order per (type, size, first key): map the keys once, then
    # zip the values (the hot path of the trade stream)
    sig = (msg["type"], len(msg), next(iter(msg)))
    order = _KEY_ORDER.get(sig)
    if order is None:
        keys = SIMPLE_KEYS[sig[0]]
        order = _KEY_ORDER[sig] = tuple(keys.get(k, k) for k in msg)
    out = dict(zip(order, msg.values(), strict=True))
    if "obu" in out:
        out["obu"] = [{_UNIT_KEYS[k]: v for k, v in u.items()} for u in out["obu"]]
    if "ast" in out:
        out["ast"] = [{_ASSET_KEYS.get(k, k): v for k, v in a.items()} for a in out["ast"]]
    return out


def encode(msg: dict, fmt: str) -> bytes:
    body = orjson.dumps(simplify(msg) if fmt.startswith("SIMPLE") else msg)
    return b"[" + body + b"]" if fmt.endswith("_LIST") else body


class _DenialLogFilter(logging.Filter):
    """uvicorn's websockets-sansio server logs a refused handshake (our 429) as an error
    ("returned without completing handshake") although the response went out; drop that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing handshake" not in record.getMessage()


_DENIAL_FILTER = _DenialLogFilter()


def ws_error(name: str, message: str) -> bytes:
    return orjson.dumps({"error": {"name": name, "message": message}})


class Conn:
    """One WebSocket connection: its subscriptions, format and outgoing queue."""

    HIGH_WATER = 2048
    DROP_AT = 100_000

    def __init__(self, ws: WebSocket, hub: Hub, *, private: bool = False) -> None:
        self.ws = ws
        self.hub = hub
        self.private = private
        self.fmt = "DEFAULT"
        self.keys: list[tuple[str, str]] = []
        self.dq: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self.closed = False
        self.dropping = False  # fell too far behind: being disconnected
        self.last_activity = time.monotonic()
        self.status_up = False
        self.close_after: int | None = None  # close with this code once the queue is sent
        self.limit_key = f"ws-conn:{uuid.uuid4().hex}"  # websocket-message limits are per connection

    def close_when_drained(self, code: int) -> None:
        """Send what is queued (e.g. an error message), then close."""
        self.close_after = code
        self.ready.set()

    def push(self, data: bytes) -> None:
        if self.closed or self.dropping:
            return
        self.dq.append(data)
        n = len(self.dq)
        if n == 1:
            self.ready.set()
        if n >= self.HIGH_WATER:
            self.drained.clear()
            if n >= self.DROP_AT:
                self.dropping = True
                self.dq.clear()
                self.drained.set()
                self.hub.kick(self)

    async def sender(self, idle_s: float) -> None:
        ws_send = self.ws.send
        dq = self.dq
        try:
            while not self.closed:
                if not dq:
                    self.ready.clear()
                    timeout = idle_s - (time.monotonic() - self.last_activity)
                    if self.status_up:
                        timeout = min(timeout, 10.0)
                    if timeout <= 0:
                        await self.close(1000)
                        return
                    try:
                        await asyncio.wait_for(self.ready.wait(), timeout)
                    except TimeoutError:
                        if self.status_up and time.monotonic() - self.last_activity < idle_s:
                            dq.append(b'{"status":"UP"}')
                        continue
                while dq:
                    await ws_send({"type": "websocket.send", "bytes": dq.popleft()})
                    if len(dq) < Conn.HIGH_WATER // 2 and not self.drained.is_set():
                        self.drained.set()
                self.drained.set()
                self.last_activity = time.monotonic()
                if self.close_after is not None:
                    await self.close(self.close_after)
                    return
        except Exception:  # the peer went away mid-send; the receive loop ends the connection
            self.closed = True
            self.drained.set()

    async def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        self.drained.set()
        with contextlib.suppress(Exception):
            await self.ws.close(code)


class Hub:
    """Subscriptions and fan-out of public and private messages."""

    def __init__(self) -> None:
        self.subs: dict[tuple[str, str], dict[str, list[Conn]]] = {}
        self.conns: set[Conn] = set()
        self.orderbook_counts: dict[str, set[str]] = {}  # market -> subscribed codes ("KRW-BTC.15")
        self.candle_types: dict[str, set[str]] = {}  # market -> subscribed candle.* types
        self.sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def has(self, typ: str, code: str) -> bool:
        return (typ, code) in self.subs

    def subscribe(self, conn: Conn, typ: str, code: str) -> None:
        self.subs.setdefault((typ, code), {}).setdefault(conn.fmt, []).append(conn)
        conn.keys.append((typ, code))
        if typ == "orderbook":
            self.orderbook_counts.setdefault(parse_orderbook_code(code)[0], set()).add(code)
        elif typ in CANDLE_TYPES:
            self.candle_types.setdefault(code, set()).add(typ)

    def unsubscribe_all(self, conn: Conn) -> None:
        for key in conn.keys:
            by_fmt = self.subs.get(key)
            if not by_fmt:
                continue
            lst = by_fmt.get(conn.fmt, [])
            if conn in lst:
                lst.remove(conn)
            if not lst:
                by_fmt.pop(conn.fmt, None)
            if not by_fmt:
                del self.subs[key]
        conn.keys.clear()
        self.orderbook_counts = {}
        self.candle_types = {}
        for typ, code in self.subs:
            if typ == "orderbook":
                self.orderbook_counts.setdefault(parse_orderbook_code(code)[0], set()).add(code)
            elif typ in CANDLE_TYPES:
                self.candle_types.setdefault(code, set()).add(typ)

    def publish(self, typ: str, code: str, msg: dict) -> None:
        by_fmt = self.subs.get((typ, code))
        if not by_fmt:
            return
        for fmt, conns in by_fmt.items():
            data = encode(msg, fmt)
            for c in conns:
                c.push(data)
            self.sent += len(conns)

    def publish_with(self, typ: str, code: str, build: Callable[[bool], dict | None]) -> None:
        """Like `publish`, with a builder that makes SIMPLE names itself (`build(simple)`)."""
        by_fmt = self.subs.get((typ, code))
        if not by_fmt:
            return
        for fmt, conns in by_fmt.items():
            msg = build(fmt.startswith("SIMPLE"))
            if msg is None:
                continue
            body = orjson.dumps(msg)
            data = b"[" + body + b"]" if fmt.endswith("_LIST") else body
            for c in conns:
                c.push(data)
            self.sent += len(conns)

    def publish_private(self, kind: str, payload: dict) -> None:
        """Exchange listener: may be called from another thread (tests poke the Exchange directly)."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._publish_private(kind, payload)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._publish_private, kind, payload)

    def _publish_private(self, kind: str, payload: dict) -> None:
        if kind == "myOrder":
            self.publish(kind, payload.get("code", ""), payload)
        self.publish(kind, "*", payload)

    def backpressure(self) -> asyncio.Future | None:
        """A future to await while some reader is above its high-water mark (speed max)."""
        for c in self.conns:
            if not c.drained.is_set():
                return asyncio.ensure_future(c.drained.wait())
        return None

    def kick(self, conn: Conn) -> None:
        """Disconnect a reader that fell too far behind (1008: policy violation)."""
        if self._loop is not None:
            self._loop.create_task(conn.close(1008))

    async def drop_all(self) -> int:
        """Close every WebSocket (the /_sim/drop_websockets control)."""
        conns = list(self.conns)
        for c in conns:
            await c.close(1012)
        return len(conns)


def _flag(obj: dict, snake: str, camel: str) -> bool:
    return bool(obj.get(snake, obj.get(camel, False)))


class WsEndpoint:
    """Handles one WebSocket session (public or private) against the hub."""

    def __init__(self, hub: Hub, snapshot: Callable[[str, str], dict | None], *,
                 authenticate: Callable[[str | None], Any] | None = None, idle_s: float = 120.0,
                 before_connect: Callable[[], Any] | None = None,
                 limiter: RateLimiter | None = None,
                 on_ack: Callable[[int | None, QuietBand | None], Any] | None = None,
                 origin_limiter: RateLimiter | None = None) -> None:
        self.hub = hub
        # the `origin` limit (1 handshake per 10 s per IP when an Origin header is sent; public
        # endpoint only): checked whenever given, independently of the websocket-* limits
        self.origin_limiter = origin_limiter
        # lockstep only: "ACK <sequential_id> [<lo> <hi> <until_ms>]" text frames release the feed
        # (outside Upbit's protocol; trader/sim/ackgate.py)
        self.on_ack = on_ack
        self.snapshot = snapshot
        self.authenticate = authenticate
        self.idle_s = idle_s
        self.before_connect = before_connect
        self.limiter = limiter  # websocket-connect / websocket-message limits (None: unlimited)

    async def _admit(self, websocket: WebSocket, private: bool) -> bool:
        """`websocket-connect`: 5/s per IP (public) or per account (private, authenticated), and
        the `origin` limit for a public handshake with an Origin header.
        Over the limit the handshake is refused with HTTP 429 (418 once banned), the status
        Upbit documents for any request over its limit; the body is the REST error JSON."""
        host = websocket.client.host if websocket.client else "local"
        try:
            has_origin = websocket.headers.get("origin") is not None
            if not private and has_origin and self.origin_limiter is not None:
                self.origin_limiter.check("origin", origin_caller(host))
            if self.limiter is not None:
                # own keys: a WebSocket reconnect storm must not ban the REST callers of the same IP
                authed = private and websocket.headers.get("authorization")
                self.limiter.check("websocket-connect", "ws-account" if authed else f"ws-ip:{host}")
        except SimError as err:
            body = Response(orjson.dumps(err.body()), status_code=err.status, media_type="application/json")
            logger = logging.getLogger("uvicorn.error")
            if _DENIAL_FILTER not in logger.filters:
                logger.addFilter(_DENIAL_FILTER)
            try:
                await websocket.send_denial_response(body)
            except RuntimeError:  # the server lacks the denial extension: accept, error, close
                await websocket.accept()
                await websocket.send_bytes(ws_error("TOO_MANY_REQUESTS", TOO_MANY))
                await websocket.close(1008)
            return False
        return True

    def _over_message_limit(self, conn: Conn) -> bool:
        """`websocket-message`: 5/s and 100/min per connection (PING keepalives not counted)."""
        if self.limiter is None:
            return False
        try:
            self.limiter.check("websocket-message", conn.limit_key)
            self.limiter.check("websocket-message-min", conn.limit_key)
        except SimError:
            return True
        return False

    async def __call__(self, websocket: WebSocket, *, private: bool = False) -> None:
        if not await self._admit(websocket, private):
            return
        await websocket.accept()
        conn = Conn(websocket, self.hub, private=private)
        if private and self.authenticate is not None:
            try:
                self.authenticate(websocket.headers.get("authorization"))
            except Exception:
                await websocket.send_bytes(ws_error("INVALID_AUTH", "인증 정보가 올바르지 않습니다."))
                await websocket.close(1008)
                return
        self.hub.conns.add(conn)
        sender = asyncio.create_task(conn.sender(self.idle_s))
        try:
            while not conn.closed:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                conn.last_activity = time.monotonic()
                raw = message.get("bytes")
                if raw is None:
                    raw = (message.get("text") or "").encode()
                if conn.close_after is not None:
                    continue  # over the limit: closing once the error is sent
                if self.on_ack is not None and raw[:4] == b"ACK ":
                    self._ack(conn, raw)
                    continue
                if raw.strip() != b"PING" and self._over_message_limit(conn):
                    # Upbit's exact answer is undocumented: a WebSocket error, then close (1008)
                    self.hub.unsubscribe_all(conn)
                    conn.push(ws_error("TOO_MANY_REQUESTS", TOO_MANY))
                    conn.close_when_drained(1008)
                    continue
                self.handle(conn, raw)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if self.limiter is not None:
                self.limiter.forget(conn.limit_key)
            conn.closed = True
            conn.ready.set()
            conn.drained.set()
            self.hub.unsubscribe_all(conn)
            self.hub.conns.discard(conn)
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender

    def _ack(self, conn: Conn, raw: bytes) -> None:
        """"ACK <seq> [<lo> <hi> <until_ms>]" (trader/sim/ackgate.py); a malformed one releases
        nothing and is answered with an error naming the field."""
        assert self.on_ack is not None
        try:
            seq, band = parse_ack_frame(raw)
        except AckError as err:
            conn.push(ws_error("INVALID_ACK", str(err)))
            return
        self.on_ack(seq, band)

    def handle(self, conn: Conn, raw: bytes) -> None:
        text = raw.strip()
        if text == b"PING":
            conn.status_up = True
            conn.push(b'{"status":"UP"}')
            return
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            conn.push(ws_error("WRONG_FORMAT", "요청 형식이 올바르지 않습니다."))
            return
        if isinstance(req, dict):
            req = [req]
        if not isinstance(req, list) or not all(isinstance(x, dict) for x in req):
            conn.push(ws_error("WRONG_FORMAT", "요청 형식이 올바르지 않습니다."))
            return
        if not any("ticket" in x for x in req):
            conn.push(ws_error("NO_TICKET", "ticket 필드가 없습니다."))
            return
        fmt = "DEFAULT"
        for x in req:
            if "format" in x:
                fmt = str(x["format"]).upper()
        if fmt not in FORMATS:
            conn.push(ws_error("WRONG_FORMAT", "format 값이 올바르지 않습니다."))
            return
        types = [x for x in req if "type" in x]
        if not types:
            conn.push(ws_error("NO_TYPE", "type 필드가 없습니다."))
            return
        allowed = PRIVATE_TYPES if conn.private else QUOTE_TYPES
        plan: list[tuple[str, list[str], bool, bool]] = []
        for t in types:
            typ = str(t["type"])
            if typ not in allowed:
                if typ in PRIVATE_TYPES:
                    conn.push(ws_error("INVALID_AUTH", "인증 정보가 올바르지 않습니다."))
                else:
                    conn.push(ws_error("WRONG_FORMAT", f"지원하지 않는 type 입니다: {typ}"))
                return
            codes = t.get("codes") or []
            if not isinstance(codes, list):
                conn.push(ws_error("WRONG_FORMAT", "codes는 배열이어야 합니다."))
                return
            if typ in QUOTE_TYPES and not codes:
                conn.push(ws_error("NO_CODES", "codes 필드가 없습니다."))
                return
            only_snap = _flag(t, "is_only_snapshot", "isOnlySnapshot")
            only_real = _flag(t, "is_only_realtime", "isOnlyRealtime")
            keys = [str(c) for c in codes]
            if typ == "orderbook" and t.get("level") is not None:
                level = parse_level(t["level"])
                if level is None:
                    conn.push(ws_error("INVALID_PARAM", "level 값이 올바르지 않습니다."))
                    return
                if level:  # grouped books are separate subscriptions; an unsupported level sends nothing
                    keys = [f"{c}|{level_text(level)}" for c in keys]
            plan.append((typ, keys, only_snap, only_real))
        # a new request on the same socket replaces the subscription
        self.hub.unsubscribe_all(conn)
        conn.fmt = fmt
        for typ, codes, only_snap, only_real in plan:
            if typ == "myAsset" or (typ == "myOrder" and not codes):
                codes = ["*"]
            for code in codes:
                if not only_real and typ in QUOTE_TYPES:
                    snap = self.snapshot(typ, code)
                    if snap is not None:
                        conn.push(encode(snap, fmt))
                if not only_snap:
                    self.hub.subscribe(conn, typ, code)


def new_ticket() -> str:
    return str(uuid.uuid4())
