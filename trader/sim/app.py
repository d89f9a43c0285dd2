"""Assembly of the simulator: data → trades → exchange + feed + hub, and the ASGI app serving them.

`Simulator(SimConfig(...))` is the whole local Upbit; `.asgi()` gives the Starlette app with the
REST routes, the two WebSocket endpoints and the /_sim/ controls. The feed task starts with the
app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from trader.config import SIM_ACCESS_KEY, SIM_SECRET_KEY
from trader.marketdata.synth import TradeArrays
from trader.sim.auth import Authenticator
from trader.sim.book import supported_levels
from trader.sim.controls import control_routes
from trader.sim.faults import Faults
from trader.sim.market import Feed, MarketStats
from trader.sim.matching import Exchange
from trader.sim.ratelimit import RateLimiter
from trader.sim.rest import RestApi
from trader.sim.ws import Hub, WsEndpoint, parse_orderbook_code
from trader.upbit.rules import tick_size

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = PACKAGE_ROOT / "data" / "KRW-ETH_15m_2024.parquet"


def market_from_path(path: Path) -> str | None:
    """The market a data file holds, None when it does not say (trader/marketdata/candles.py)."""
    from trader.marketdata.candles import market_of_file

    return market_of_file(path)


def check_sim_market(market: str, data: Path) -> None:
    """Refuse to replay a file of one market under another's name (MarketDataError naming both)."""
    from trader.marketdata.candles import check_data_market

    check_data_market(market, data, what="the simulator's --market",
                      fix=f"give --data a {market} file, or leave --market out (the file names it)")


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    data: Path | None = DEFAULT_DATA
    speed: float | None = 1.0  # None = max
    krw: Decimal = Decimal("10000000")
    access_key: str = SIM_ACCESS_KEY
    secret_key: str = SIM_SECRET_KEY
    seed: int = 0
    strict: bool = False
    market: str | None = None
    ticks_per_candle: int = 8
    start: str | None = None
    paused: bool = False
    rate_limit: bool = True
    idle_s: float = 120.0
    prime: bool = True  # apply the first trade at start so quotes and the book exist
    extra_markets: list[str] = field(default_factory=list)
    # random uuids by default: a paper run must never reuse the uuids of an earlier run (ledgers
    # dedupe fills by trade uuid); seeded uuids only when asked, for reproducible traces
    deterministic_uuids: bool = False
    # /v1/trades/ticks without days_ago answers only today's (UTC) trades, as Upbit documents;
    # off by default (older runs page across days), always on with strict
    trades_day_scope: bool = False
    # WebSocket connect/message limits (websocket-connect 5/s, websocket-message 5/s + 100/min),
    # subject to the same on/off switch as `rate_limit`. Off by default here so the shared test
    # fixtures (which reconnect quickly) keep working; `python -m trader sim` turns them on.
    ws_rate_limit: bool = False
    # lockstep (opt-in): the feed applies one trade, then waits for the client's ack
    # (POST /_sim/ack, or an "ACK <sequential_id>" text frame on the public WebSocket) before the
    # next, as the backtest does; `ack_timeout_s` bounds the wait
    lockstep: bool = False
    ack_timeout_s: float = 10.0
    # smp_type applied to orders that name none: Upbit's default since 2026-11-09; None restores
    # the earlier behaviour (own orders may trade with each other, `smp_type` omitted)
    smp_default: str | None = "cancel_maker"


def load_trades(cfg: SimConfig) -> tuple[str, TradeArrays | None]:
    """The market name and its replay trades (synthesized from candles, or ticks as recorded)."""
    if cfg.data is None:
        return cfg.market or "KRW-ETH", None
    from trader.marketdata.candles import infer_interval_ms, load_frame, slice_time
    from trader.marketdata.synth import synthesize_trades

    path = Path(cfg.data)
    if cfg.market:
        check_sim_market(cfg.market, path)
    market = cfg.market or market_from_path(path) or "KRW-ETH"
    kind, frame = load_frame(path)
    # the whole file's interval (as the backtest's): a late --start may leave one candle
    interval = infer_interval_ms(frame) if kind == "candles" else None
    if cfg.start:
        frame = slice_time(frame, cfg.start, None)
    if kind == "ticks":
        return market, TradeArrays.from_frame(frame)
    return market, synthesize_trades(frame, ticks_per_candle=cfg.ticks_per_candle, seed=cfg.seed,
                                     interval_ms=interval)


class Simulator:
    """One simulated Upbit: exchange, replay feed, WebSocket hub, auth, limits, faults."""

    def __init__(self, config: SimConfig | None = None, *, trades: TradeArrays | None = None) -> None:
        self.config = cfg = config or SimConfig()
        if trades is not None:
            self.market = cfg.market or "KRW-ETH"
        else:
            self.market, trades = load_trades(cfg)
        markets = [self.market, *[m for m in cfg.extra_markets if m != self.market]]
        factory = None if cfg.deterministic_uuids else (lambda: str(uuid.uuid4()))
        self.exchange = Exchange(krw=Decimal(cfg.krw), markets=markets, seed=cfg.seed, uuid_factory=factory,
                                 smp_default=cfg.smp_default)
        self.hub = Hub()
        self.feed = Feed(self.exchange, self.market, trades, speed=cfg.speed, paused=cfg.paused,
                         publish=self._publish)
        self.feed.lockstep = cfg.lockstep
        self.feed.ack_timeout_s = cfg.ack_timeout_s
        for m in markets:
            self.feed.stats.setdefault(m, MarketStats(m))
        if cfg.prime:
            self.feed.step(1)
        self.auth = Authenticator(cfg.access_key, cfg.secret_key)
        self.limiter = RateLimiter(enabled=cfg.rate_limit)
        self.faults = Faults()
        self.exchange.subscribe(self.hub.publish_private)
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ messages
    def _publish(self, market: str, stats: MarketStats) -> None:
        hub = self.hub
        if hub.has("trade", market):
            quote = self.exchange.book_quote(market)
            hub.publish_with("trade", market, lambda simple: stats.trade_ws(quote, simple=simple))
        if hub.has("ticker", market):
            msg = stats.ticker_ws()
            if msg is not None:
                hub.publish("ticker", market, msg)
        candles = hub.candle_types.get(market)
        if candles:
            for typ in list(candles):
                msg = stats.candle_ws(typ)
                if msg is not None:
                    hub.publish(typ, market, msg)
        codes = hub.orderbook_counts.get(market)
        if codes:
            for code in list(codes):
                _, count, level = parse_orderbook_code(code)
                msg = self.orderbook_message(market, count, level=level)
                if msg is not None:  # a level the market no longer supports sends nothing
                    hub.publish("orderbook", code, msg)

    def supported_levels(self, market: str) -> list[Decimal]:
        """The orderbook grouping levels of a market at its current price (tick)."""
        last = self.exchange.last_price(market)
        return supported_levels(tick_size(Decimal(repr(last))) if last else Decimal(1))

    def orderbook_message(self, market: str, count: int = 30, *, level: Decimal = Decimal(0),
                          rest: bool = False, stream_type: str = "REALTIME") -> dict | None:
        """The orderbook of a market (REST row or WebSocket message), grouped by `level` when it is
        not 0; None when the market does not support that level (Upbit then sends nothing)."""
        if level:
            if level not in self.supported_levels(market):
                return None
            units = self.exchange.orderbook_units(market, count, level=level)
        else:
            units = self.exchange.orderbook_units(market, count)
        ts = self.exchange.clock_ms
        total_ask = sum(u["ask_size"] for u in units)
        total_bid = sum(u["bid_size"] for u in units)
        lv: int | float = int(level) if level == level.to_integral_value() else float(level)
        if rest:
            return {"market": market, "timestamp": ts, "total_ask_size": total_ask,
                    "total_bid_size": total_bid, "orderbook_units": units, "level": lv}
        return {"type": "orderbook", "code": market, "timestamp": ts, "total_ask_size": total_ask,
                "total_bid_size": total_bid, "orderbook_units": units, "stream_type": stream_type,
                "level": lv}

    def snapshot(self, typ: str, code: str) -> dict | None:
        market, _, _ = code.partition("|")[0].partition(".")
        stats = self.feed.stats_for(market)
        if stats is None or stats.last is None:
            return None
        if typ == "ticker":
            return stats.ticker_ws("SNAPSHOT")
        if typ == "trade":
            return stats.trade_ws(self.exchange.book_quote(market), "SNAPSHOT")
        if typ == "orderbook":
            _, count, level = parse_orderbook_code(code)
            return self.orderbook_message(market, count, level=level, stream_type="SNAPSHOT")
        if typ.startswith("candle."):
            return stats.candle_ws(typ, "SNAPSHOT")
        return None

    def state(self) -> dict:
        return {**self.feed.state(), "markets": self.exchange.markets, "ws_clients": len(self.hub.conns),
                "ws_sent": self.hub.sent, "rate_limit": self.limiter.enabled,
                "latency_ms": self.faults.latency_ms, "pending_failures": self.faults.pending()}

    # ------------------------------------------------------------------ ASGI
    def asgi(self) -> Starlette:
        # WS limits share the REST limiter, so --no-rate-limit and /_sim/rate_limit switch them too
        ws_limiter = self.limiter if self.config.ws_rate_limit else None
        public = WsEndpoint(self.hub, self.snapshot, idle_s=self.config.idle_s, limiter=ws_limiter,
                            on_ack=self.feed.ack if self.config.lockstep else None,
                            origin_limiter=self.limiter)
        private = WsEndpoint(self.hub, self.snapshot, authenticate=self.auth.decode,
                             idle_s=self.config.idle_s, limiter=ws_limiter)

        async def ws_public(websocket: WebSocket) -> None:
            await public(websocket)

        async def ws_private(websocket: WebSocket) -> None:
            await private(websocket, private=True)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            loop = asyncio.get_running_loop()
            self.hub.bind_loop(loop)
            self.feed.backpressure = self.hub.backpressure
            self._task = loop.create_task(self.feed.run())
            try:
                yield
            finally:
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
                await self.hub.drop_all()

        routes = [
            *RestApi(self).routes(),
            WebSocketRoute("/websocket/v1", ws_public),
            WebSocketRoute("/websocket/v1/private", ws_private),
            *control_routes(self),
        ]
        async def not_found(request: Request, exc: Exception) -> Response:
            # clients parse every error body as JSON (pyupbit calls resp.json() first)
            status = getattr(exc, "status_code", 404)
            return Response(orjson.dumps({"error": {"name": status, "message": "Not found"}}),
                            status_code=status, media_type="application/json")

        return Starlette(routes=routes, lifespan=lifespan,
                         exception_handlers={404: not_found, 405: not_found})
