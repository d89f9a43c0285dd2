"""Upbit REST endpoints (Exchange and Quotation API) over the in-process exchange and feed.

Every answer goes through `_respond`: injected faults first, then (Exchange API) JWT checks,
then the per-group rate limit whose `Remaining-Req` header every 2xx carries. Exchange errors
have string names; Quotation errors integer names, as Upbit sends them. Bodies: over 1 MiB → 413
before parsing, malformed JSON → 400 (trader/sim/params.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trader.sim.book import level_text
from trader.sim.listing import CLOSED_MAX_LIMIT, bad_page, closed_in_window
from trader.sim.market import DAY_MS, MINUTE_UNITS, PERIODS, SECONDS_KEPT_MS, parse_day_time
from trader.sim.matching import SimError
from trader.sim.params import BadBody, RequestData, read_request
from trader.sim.ratelimit import origin_caller, too_many
from trader.sim.ws import parse_level
from trader.timeutil import datetime_to_ms
from trader.upbit.rules import FEE_RATE, MAX_ORDER_KRW, MIN_ORDER_KRW, format_decimal, tick_size

if TYPE_CHECKING:
    from trader.sim.app import Simulator

JSON = "application/json; charset=utf-8"
NAMES = {
    "BTC": ("비트코인", "Bitcoin"), "ETH": ("이더리움", "Ethereum"), "XRP": ("엑스알피(리플)", "XRP"),
    "SOL": ("솔라나", "Solana"), "DOGE": ("도지코인", "Dogecoin"), "ADA": ("에이다", "Cardano"),
    "TIA": ("셀레스티아", "Celestia"),
}


def quote_error(status: int, message: str) -> SimError:
    return SimError(status, status, message)  # type: ignore[arg-type]  # Quotation names are ints


def query_only_error() -> SimError:
    """--strict: Upbit's answer to a body on an endpoint that takes only a query string."""
    return SimError(400, "QUERY_PARAMETER_NOT_SUPPORTED",
                    "이 API는 쿼리 파라미터 형식의 요청만 지원합니다. 요청 본문에 값을 포함할 수 없습니다.")


MISSING = "Missing request parameter error. Check the required parameters!"
INVALID = "Invalid parameter. Check the given value!"


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type=JSON)


def parse_time_ms(text: str) -> int:
    """Upbit `to`/`start_time`: ISO with offset or Z, naive (= UTC), or epoch ms."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    t = t.replace(" ", "T")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return datetime_to_ms(dt)  # exact: no float seconds


def _int(value: str | None, default: int, lo: int, hi: int, err: Callable[[], SimError]) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError as exc:
        raise err() from exc
    if n < lo or n > hi:
        raise err()
    return n


class RestApi:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.ex = sim.exchange

    # ------------------------------------------------------------------ plumbing
    def routes(self) -> list[Route]:
        x = self._exchange
        q = self._quote
        return [
            Route("/v1/accounts", x(self.accounts, "default"), methods=["GET"]),
            Route("/v1/orders/chance", x(self.chance, "default"), methods=["GET"]),
            Route("/v1/orders", x(self.create, "order", status=201), methods=["POST"]),
            Route("/v1/orders", x(self.list_legacy, "default"), methods=["GET"]),
            Route("/v1/orders/test", x(self.create_test, "order-test", status=201), methods=["POST"]),
            Route("/v1/orders/cancel_and_new", x(self.cancel_and_new, "order", status=201), methods=["POST"]),
            Route("/v1/order", x(self.get_order, "default"), methods=["GET"]),
            Route("/v1/order", x(self.cancel, "default", query_only=True), methods=["DELETE"]),
            Route("/v1/orders/open", x(self.list_open, "default"), methods=["GET"]),
            Route("/v1/orders/open", x(self.cancel_open, "order-cancel-all", query_only=True),
                  methods=["DELETE"]),
            Route("/v1/orders/closed", x(self.list_closed, "default"), methods=["GET"]),
            Route("/v1/orders/uuids", x(self.list_uuids, "default"), methods=["GET"]),
            Route("/v1/orders/uuids", x(self.cancel_uuids, "default", query_only=True), methods=["DELETE"]),
            Route("/v1/market/all", q(self.market_all, "market"), methods=["GET"]),
            Route("/v1/ticker", q(self.ticker, "ticker"), methods=["GET"]),
            Route("/v1/ticker/all", q(self.ticker_all, "ticker"), methods=["GET"]),
            Route("/v1/candles/minutes/{unit}", q(self.candles_minutes, "candle"), methods=["GET"]),
            Route("/v1/candles/days", q(self.candles_days, "candle"), methods=["GET"]),
            Route("/v1/candles/seconds", q(self.candles_seconds, "candle"), methods=["GET"]),
            *[Route(f"/v1/candles/{kind}", q(self._period_endpoint(kind), "candle"), methods=["GET"])
              for kind in PERIODS],
            Route("/v1/orderbook", q(self.orderbook, "orderbook"), methods=["GET"]),
            Route("/v1/orderbook/instruments", q(self.instruments, "orderbook"), methods=["GET"]),
            Route("/v1/trades/ticks", q(self.trades, "trade"), methods=["GET"]),
        ]

    def _exchange(self, fn: Callable[[RequestData], object], group: str, *, status: int = 200,
                  query_only: bool = False) -> Callable[[Request], Awaitable[Response]]:
        sim = self.sim

        async def endpoint(request: Request) -> Response:
            try:
                await sim.faults.before_request()
                rd = await read_request(request)
                if sim.config.strict:
                    if (query_only or request.method == "GET") and rd.body_kind:
                        raise query_only_error()
                    if request.method == "POST" and rd.body_kind == "form":
                        raise SimError(400, "invalid_parameter", "POST 요청은 JSON 본문만 지원합니다.")
                sim.auth.verify(request.headers.get("authorization"), has_params=rd.has_params,
                                raw_query=rd.raw_query, raw_body=rd.raw_body, json_body=rd.json_body)
                header = sim.limiter.check(group, sim.auth.access_key)
                result = fn(rd)
                return _json(result, status, {"Remaining-Req": header})
            except SimError as err:
                return _json(err.body(), err.status)

        return endpoint

    def _quote(self, fn: Callable[[RequestData, Request], object],
               group: str) -> Callable[[Request], Awaitable[Response]]:
        sim = self.sim

        async def endpoint(request: Request) -> Response:
            try:
                await sim.faults.before_request()
                rd = await read_request(request)
                if sim.config.strict and rd.body_kind:  # every Quotation endpoint is a GET
                    raise query_only_error()
                host = request.client.host if request.client else "local"
                if request.headers.get("origin") is not None:
                    # browser-style requests: Upbit's separate 1-per-10-s limit, shared with the
                    # public WebSocket handshake of the same IP
                    header = sim.limiter.check("origin", origin_caller(host))
                else:
                    header = sim.limiter.check(group, host)
                return _json(fn(rd, request), 200, {"Remaining-Req": header})
            except BadBody as err:  # Quotation errors carry integer names
                return _json(quote_error(err.status, INVALID if err.status == 400 else err.message).body(),
                             err.status)
            except SimError as err:
                return _json(err.body(), err.status)

        return endpoint

    # ------------------------------------------------------------------ exchange API
    def accounts(self, rd: RequestData) -> object:
        return self.ex.accounts()

    def _market_param(self, rd: RequestData) -> str:
        market = rd.get("market")
        if not market:
            raise SimError(400, "validation_error", "market 파라미터가 필요합니다.")
        if market not in self.ex.markets:
            raise SimError(400, "notfoundmarket", f"다음 마켓에 없는 종목입니다: {market}")
        return market

    def chance(self, rd: RequestData) -> object:
        market = self._market_param(rd)
        coin = market.split("-", 1)[1]
        fee = format_decimal(self.ex.fee_rate) if self.ex.fee_rate != FEE_RATE else "0.0005"
        return {
            "bid_fee": fee, "ask_fee": fee, "maker_bid_fee": fee, "maker_ask_fee": fee,
            "market": {
                "id": market, "name": f"{coin}/KRW", "order_types": ["limit"],
                "order_sides": ["ask", "bid"],
                "bid_types": ["best_fok", "best_ioc", "limit", "limit_fok", "limit_ioc", "price"],
                "ask_types": ["best_fok", "best_ioc", "limit", "limit_fok", "limit_ioc", "market"],
                "bid": {"currency": "KRW", "price_unit": None, "min_total": str(MIN_ORDER_KRW)},
                "ask": {"currency": coin, "price_unit": None, "min_total": str(MIN_ORDER_KRW)},
                "max_total": str(MAX_ORDER_KRW), "state": "active",
            },
            "bid_account": self.ex.account_row("KRW"),
            "ask_account": self.ex.account_row(coin),
        }

    def _order_args(self, rd: RequestData) -> dict:
        market, side, ord_type = rd.get("market"), rd.get("side"), rd.get("ord_type")
        if not market or not side or not ord_type:
            raise SimError(400, "validation_error", "market, side, ord_type 파라미터가 필요합니다.")
        sfx = side if side in ("bid", "ask") else "bid"

        def num(name: str, err: str) -> Decimal | None:
            raw = rd.get(name)
            if raw is None or raw == "":
                return None
            if "e" in raw.lower() or raw.strip() != raw:
                raise SimError(400, f"{err}_{sfx}", f"{name} 값의 형식이 올바르지 않습니다: {raw}")
            try:
                return Decimal(raw)
            except InvalidOperation as exc:
                raise SimError(400, f"{err}_{sfx}", f"{name} 값의 형식이 올바르지 않습니다: {raw}") from exc

        return {
            "market": market, "side": side, "ord_type": ord_type,
            "price": num("price", "invalid_price"), "volume": num("volume", "invalid_volume"),
            "identifier": rd.get("identifier"), "time_in_force": rd.get("time_in_force") or None,
            "smp_type": rd.get("smp_type") or None,
        }

    def create(self, rd: RequestData) -> object:
        a = self._order_args(rd)
        return self.ex.create_order(a.pop("market"), a.pop("side"), a.pop("ord_type"), **a)

    def create_test(self, rd: RequestData) -> object:
        a = self._order_args(rd)
        return self.ex.create_order(a.pop("market"), a.pop("side"), a.pop("ord_type"), test=True, **a)

    def cancel_and_new(self, rd: RequestData) -> object:
        """Cancel an open order and place a new one on the same market and side."""
        new_type = rd.get("new_ord_type")
        if not new_type:
            raise SimError(400, "validation_error", "new_ord_type 파라미터가 필요합니다.")
        prev = self.ex.get_order(uuid=rd.get("prev_order_uuid"), identifier=rd.get("prev_order_identifier"))
        accepted = self.ex.cancel_order(uuid=prev["uuid"])
        pairs = [("market", prev["market"]), ("side", prev["side"]), ("ord_type", new_type)]
        volume = rd.get("new_volume")
        if volume == "remain_only":
            volume = self.ex.get_order(uuid=prev["uuid"])["remaining_volume"]
        for key, value in (("price", rd.get("new_price")), ("volume", volume),
                           ("identifier", rd.get("new_identifier")),
                           ("time_in_force", rd.get("new_time_in_force")),
                           ("smp_type", rd.get("new_smp_type"))):
            if value is not None:
                pairs.append((key, value))
        new = self.create(RequestData(pairs, "", b"", None, ""))
        assert isinstance(new, dict)
        return {**accepted, "new_order_uuid": new["uuid"], "new_order_identifier": new.get("identifier")}

    def get_order(self, rd: RequestData) -> object:
        return self.ex.get_order(uuid=rd.get("uuid"), identifier=rd.get("identifier"))

    def cancel(self, rd: RequestData) -> object:
        return self.ex.cancel_order(uuid=rd.get("uuid"), identifier=rd.get("identifier"))

    @staticmethod
    def _order_by(rd: RequestData) -> str:
        order_by = (rd.get("order_by") or "desc").lower()
        if order_by not in ("asc", "desc"):
            raise SimError(400, "invalid_parameter", "order_by 값이 올바르지 않습니다.")
        return order_by

    @staticmethod
    def _states(rd: RequestData, default: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
        state = rd.get("state")
        states = rd.getlist("states")
        if state and states:
            raise SimError(400, "invalid_parameter", "state와 states는 함께 사용할 수 없습니다.")
        chosen = tuple(states) if states else ((state,) if state else default)
        if any(s not in allowed for s in chosen):
            raise SimError(400, "invalid_parameter", "state 값이 올바르지 않습니다.")
        if set(chosen) & {"wait", "watch"} and set(chosen) & {"done", "cancel"}:
            raise SimError(400, "invalid_parameter", "미체결과 완료 상태는 함께 조회할 수 없습니다.")
        return chosen

    def _page(self, orders: list, rd: RequestData, *, max_limit: int = 100, paged: bool = True) -> list[dict]:
        if self._order_by(rd) == "desc":
            orders = list(reversed(orders))
        limit = _int(rd.get("limit"), 100, 1, max_limit, bad_page)
        page = _int(rd.get("page"), 1, 1, 10**9, bad_page) if paged else 1
        start = (page - 1) * limit
        return [o.to_json() for o in orders[start:start + limit]]

    def list_legacy(self, rd: RequestData) -> object:
        uuids, idents = rd.getlist("uuids"), rd.getlist("identifiers")
        states = self._states(rd, ("wait",), ("wait", "watch", "done", "cancel"))
        orders = self.ex.orders(market=rd.get("market"), states=None if (uuids or idents) and not (
            rd.get("state") or rd.getlist("states")) else states, uuids=uuids, identifiers=idents)
        return self._page(orders, rd)

    def list_open(self, rd: RequestData) -> object:
        states = self._states(rd, ("wait", "watch"), ("wait", "watch"))
        return self._page(self.ex.orders(market=rd.get("market"), states=states), rd)

    def list_closed(self, rd: RequestData) -> object:
        states = self._states(rd, ("done", "cancel"), ("done", "cancel"))
        try:
            end = parse_time_ms(rd.get("end_time")) if rd.get("end_time") else None
            start = parse_time_ms(rd.get("start_time")) if rd.get("start_time") else None
        except ValueError as exc:
            raise SimError(400, "invalid_parameter", "start_time/end_time 형식이 올바르지 않습니다.") from exc
        orders = closed_in_window(self.ex, rd.get("market"), states, start, end)
        return self._page(orders, rd, max_limit=CLOSED_MAX_LIMIT, paged=False)

    def list_uuids(self, rd: RequestData) -> object:
        uuids, idents = rd.getlist("uuids"), rd.getlist("identifiers")
        if not uuids and not idents:
            raise SimError(400, "validation_error", "uuids 또는 identifiers 중 하나가 필요합니다.")
        if uuids and idents:
            raise SimError(400, "invalid_parameter", "uuids와 identifiers는 함께 사용할 수 없습니다.")
        orders = self.ex.orders(market=rd.get("market"), uuids=uuids, identifiers=idents)
        return self._page(orders, rd, max_limit=100, paged=False)

    def _batch_cancel(self, orders: list) -> dict:
        ok, failed = [], []
        for o in orders:
            entry = {"market": o.market, "uuid": o.uuid, "identifier": o.identifier}
            try:
                self.ex.cancel_order(uuid=o.uuid)
                ok.append(entry)
            except SimError:
                failed.append(entry)
        return {"success": {"count": len(ok), "orders": ok},
                "failed": {"count": len(failed), "orders": failed}}

    def cancel_open(self, rd: RequestData) -> object:
        side = (rd.get("cancel_side") or "all").lower()
        if side not in ("all", "ask", "bid"):
            raise SimError(400, "invalid_parameter", "cancel_side 값이 올바르지 않습니다.")
        pairs = set(rd.getlist("pairs", split_commas=True))
        excluded = set(rd.getlist("excluded_pairs", split_commas=True))
        quotes = set(rd.getlist("quote_currencies", split_commas=True))
        count = _int(rd.get("count"), 20, 1, 300,
                     lambda: SimError(400, "invalid_parameter", "count 값이 올바르지 않습니다."))
        orders = [o for o in self.ex.orders(states=("wait", "watch"))
                  if (side == "all" or o.side == side) and (not pairs or o.market in pairs)
                  and o.market not in excluded and (not quotes or o.market.split("-")[0] in quotes)]
        if self._order_by(rd) == "desc":
            orders.reverse()
        return self._batch_cancel(orders[:count])

    def cancel_uuids(self, rd: RequestData) -> object:
        uuids, idents = rd.getlist("uuids"), rd.getlist("identifiers")
        if not uuids and not idents:
            raise SimError(400, "validation_error", "uuids 또는 identifiers 중 하나가 필요합니다.")
        orders = self.ex.orders(uuids=uuids, identifiers=idents)
        return self._batch_cancel(orders)

    # ------------------------------------------------------------------ quotation API
    def _markets(self, rd: RequestData, *, name: str = "markets") -> list[str]:
        markets = rd.getlist(name, split_commas=True)
        if not markets:
            raise quote_error(400, MISSING)
        unknown = [m for m in markets if m not in self.ex.markets]
        if unknown:
            raise quote_error(404, "Code not found")
        return markets

    def market_all(self, rd: RequestData, request: Request) -> object:
        details = (rd.get("is_details", "isDetails") or "false").lower() == "true"
        out = []
        for m in self.ex.markets:
            coin = m.split("-", 1)[1]
            ko, en = NAMES.get(coin, (coin, coin))
            row: dict = {"market": m, "korean_name": ko, "english_name": en}
            if details:
                row["market_warning"] = "NONE"
                row["market_event"] = {"warning": False, "caution": {
                    "PRICE_FLUCTUATIONS": False, "TRADING_VOLUME_SOARING": False,
                    "DEPOSIT_AMOUNT_SOARING": False, "GLOBAL_PRICE_DIFFERENCES": False,
                    "CONCENTRATION_OF_SMALL_ACCOUNTS": False}}
            out.append(row)
        return out

    def ticker(self, rd: RequestData, request: Request) -> object:
        out = []
        for m in self._markets(rd):
            st = self.sim.feed.stats_for(m)
            row = st.ticker_rest() if st else None
            if row is not None:
                out.append(row)
        return out

    def ticker_all(self, rd: RequestData, request: Request) -> object:
        quotes = set(rd.getlist("quote_currencies", split_commas=True)) or {"KRW"}
        out = []
        for m in self.ex.markets:
            st = self.sim.feed.stats_for(m)
            row = st.ticker_rest() if st and m.split("-")[0] in quotes else None
            if row is not None:
                out.append(row)
        return out

    def _candle_args(self, rd: RequestData) -> tuple[str, int, int]:
        market = rd.get("market")
        if not market:
            raise quote_error(400, MISSING)
        if market not in self.ex.markets:
            raise quote_error(404, "Code not found")
        count = _int(rd.get("count"), 1, 1, 200, lambda: quote_error(400, INVALID))
        to = rd.get("to")
        try:
            to_ms = parse_time_ms(to) if to else (self.ex.clock_ms or time.time_ns() // 1_000_000) + 1
        except ValueError as exc:
            raise quote_error(400, INVALID) from exc
        return market, count, to_ms

    def candles_minutes(self, rd: RequestData, request: Request) -> object:
        try:
            unit = int(request.path_params["unit"])
        except ValueError as exc:
            raise quote_error(400, INVALID) from exc
        if unit not in MINUTE_UNITS:
            raise quote_error(400, INVALID)
        market, count, to_ms = self._candle_args(rd)
        st = self.sim.feed.stats_for(market)
        return st.candles_minutes(unit, to_ms, count) if st else []

    def candles_days(self, rd: RequestData, request: Request) -> object:
        market, count, to_ms = self._candle_args(rd)
        st = self.sim.feed.stats_for(market)
        return st.candles_days(to_ms, count) if st else []

    def orderbook(self, rd: RequestData, request: Request) -> object:
        """`level` groups the book into price buckets (KRW markets); a level the market does not
        support yields no row, so a one-market request answers `[]`, as Upbit documents."""
        count = _int(rd.get("count"), 30, 1, 30, lambda: quote_error(400, INVALID))
        raw_level = rd.get("level")
        level = Decimal(0)
        if raw_level is not None and raw_level != "":
            parsed = parse_level(raw_level)
            if parsed is None:
                raise quote_error(400, INVALID)
            level = parsed
        rows = [self.sim.orderbook_message(m, count, level=level, rest=True) for m in self._markets(rd)]
        return [r for r in rows if r is not None]

    def instruments(self, rd: RequestData, request: Request) -> object:
        out = []
        for m in self._markets(rd):
            last = self.ex.last_price(m)
            tick = tick_size(Decimal(repr(last))) if last else Decimal(1)
            out.append({"market": m, "quote_currency": m.split("-", 1)[0],
                        "tick_size": format(tick.normalize(), "f"),
                        "supported_levels": [level_text(lv) for lv in self.sim.supported_levels(m)]})
        return out

    def candles_seconds(self, rd: RequestData, request: Request) -> object:
        market, count, to_ms = self._candle_args(rd)
        st = self.sim.feed.stats_for(market)
        now = self.ex.clock_ms or time.time_ns() // 1_000_000
        return st.candles_seconds(to_ms, count, since_ms=now - SECONDS_KEPT_MS) if st else []

    def _period_endpoint(self, kind: str) -> Callable[[RequestData, Request], object]:
        def endpoint(rd: RequestData, request: Request) -> object:
            market, count, to_ms = self._candle_args(rd)
            st = self.sim.feed.stats_for(market)
            return st.candles_period(kind, to_ms, count) if st else []

        return endpoint

    def trades(self, rd: RequestData, request: Request) -> object:
        """Newest first. `days_ago` (1..7) picks a UTC day before today, `to` (HHmmss or
        HH:mm:ss, exclusive) a time within it, `cursor` (a sequential_id) continues below that
        trade. Without `days_ago` every kept day is searched, unless the simulator is strict (or
        `trades_day_scope`): then, as Upbit documents, only today's trades."""
        market = rd.get("market")
        if not market:
            raise quote_error(400, MISSING)
        if market not in self.ex.markets:
            raise quote_error(404, "Code not found")
        invalid = lambda: quote_error(400, INVALID)  # noqa: E731
        count = _int(rd.get("count"), 1, 1, 500, invalid)
        days_ago = _int(rd.get("days_ago"), 0, 1, 7, invalid) if rd.get("days_ago") else None
        raw_cursor, raw_to = rd.get("cursor"), rd.get("to")
        try:
            cursor = int(raw_cursor) if raw_cursor else None
            to_in_day = parse_day_time(raw_to) if raw_to else None
        except ValueError as exc:
            raise invalid() from exc
        st = self.sim.feed.stats_for(market)
        today = st.today_ms() if st else None
        if st is None or today is None:
            return []
        cfg = self.sim.config
        scoped = days_ago is not None or cfg.strict or cfg.trades_day_scope
        day = today - (days_ago or 0) * DAY_MS
        since_ms = day if scoped else None
        if to_in_day is not None:
            to_ms: int | None = day + to_in_day
        else:
            to_ms = day + DAY_MS if scoped else None
        return st.trades_rest(count, to_ms, cursor=cursor, since_ms=since_ms)


__all__ = ["RestApi", "parse_time_ms", "query_only_error", "too_many"]
