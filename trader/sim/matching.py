"""The in-process exchange: accounts, order validation, matching, fills and private events.

Synchronous on purpose: the backtest and the ledger tests drive it directly, and the ASGI app
wraps it. Everything is Decimal. Marketable orders take liquidity from the synthetic 30-level
book (`book.py`) as takers; resting limit orders fill, as makers at their own price, when a
replayed trade prints through them (`on_trade`), limited by that trade's volume. Errors are
`SimError`s carrying Upbit's status code and error name.
"""

from __future__ import annotations

import random
import threading
import uuid as uuid_mod
from collections.abc import Callable, Iterable, Sequence
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from trader.domain import Fill, Side
from trader.sim.accounts import Accounts
from trader.sim.book import SyntheticBook, group_units
from trader.sim.orders import D0, Order, Trade
from trader.timeutil import now_ms
from trader.upbit.rules import FEE_RATE, MAX_ORDER_KRW, MIN_ORDER_KRW, is_on_tick

Q8 = Decimal("0.00000001")
_INF = float("inf")

MSG = {
    "notfoundmarket": "다음 마켓에 없는 종목입니다: {market}",
    "invalid_price": "주문가격 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요.",
    "invalid_volume": "주문수량 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요.",
    "under_min_total": "최소주문금액 이상으로 주문해주세요",
    "over_krw_funds_bid": "최대 주문 가능 금액 1000000000 KRW 보다 작은 주문을 입력해 주세요.",
    "insufficient_funds_bid": "주문가능한 금액(KRW)이 부족합니다.",
    "insufficient_funds_ask": "주문가능한 금액({coin})이 부족합니다.",
    "duplicated_identifier": "identifier가 중복되었습니다.",
    "order_not_found": "주문을 찾지 못했습니다.",
    "invalid_time_in_force": "time_in_force 값이 올바르지 않습니다.",
    "book_depth": "호가창 30호가 안에서 체결 가능한 수량을 초과했습니다.",
    "invalid_smp_type": "smp_type 값이 올바르지 않습니다.",
    "invalid_post_only": "post_only 주문은 smp_type(reduce, cancel_maker, cancel_taker)과 "
                         "함께 사용할 수 없습니다.",
}
# self-match prevention modes (`none` since 2026-11-09, when `cancel_maker` became the default)
SMP_TYPES = ("cancel_maker", "cancel_taker", "reduce", "none")


class SimError(Exception):
    """An Upbit error response: rendered as {"error": {"name": name, "message": message}}."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(f"{status} {name}: {message}")
        self.status = status
        self.name = name
        self.message = message

    def body(self) -> dict:
        return {"error": {"name": self.name, "message": self.message}}


def _bad(name: str, message: str, status: int = 400) -> SimError:
    return SimError(status, name, message)


def _floor8(value: Decimal) -> Decimal:
    return value.quantize(Q8, rounding=ROUND_DOWN)


def _to_dec(value: float) -> Decimal:
    return Decimal(repr(value))


class _MarketState:
    """Per-market state: last price, volume scale, synthetic book, resting orders."""

    __slots__ = ("ask_floor", "asks", "bid_ceiling", "bids", "book", "last", "last_ts", "ref_vol")

    def __init__(self, market: str, seed: int) -> None:
        self.book = SyntheticBook(market, seed)
        self.last: float | None = None
        self.last_ts = 0
        self.ref_vol = 0.0
        self.bids: list[Order] = []  # resting bids, best (highest price, oldest) first
        self.asks: list[Order] = []  # resting asks, best (lowest price, oldest) first
        self.bid_ceiling = -_INF
        self.ask_floor = _INF

    def refresh_band(self) -> None:
        self.bid_ceiling = self.bids[0].price_f if self.bids else -_INF
        self.ask_floor = self.asks[0].price_f if self.asks else _INF


class Exchange:
    """A simulated Upbit account on a set of KRW markets (thread-safe, synchronous)."""

    def __init__(
        self,
        *,
        krw: Decimal,
        markets: Iterable[str],
        fee_rate: Decimal = FEE_RATE,
        seed: int = 0,
        uuid_factory: Callable[[], str] | None = None,
        smp_default: str | None = "cancel_maker",
    ) -> None:
        self.fee_rate = Decimal(fee_rate)
        # smp_type of an order that names none: Upbit applies cancel_maker since 2026-11-09 (and
        # echoes it); None = the earlier behaviour (no prevention, field omitted)
        self.smp_default = smp_default
        self.seed = seed
        self._rng = random.Random(seed)
        self._uuid_factory = uuid_factory or self._seeded_uuid
        self._lock = threading.RLock()
        self._listeners: list[Callable[[str, dict], None]] = []
        self._markets: dict[str, _MarketState] = {m: _MarketState(m, seed) for m in markets}
        self._init_krw = Decimal(krw)
        self._reset_state(Decimal(krw))

    # ------------------------------------------------------------------ state
    def _reset_state(self, krw: Decimal) -> None:
        self.accounts_book = Accounts(krw)
        self._orders: dict[str, Order] = {}
        self._by_identifier: dict[str, str] = {}
        self._seq = 0
        self._events: list[tuple[str, dict]] = []
        for st in self._markets.values():
            st.bids.clear()
            st.asks.clear()
            st.refresh_band()
        self._clock_ms = max((st.last_ts for st in self._markets.values()), default=0)

    def reset(self, krw: Decimal | None = None) -> None:
        """Forget every order and balance; keep market prices (the /_sim/reset control)."""
        with self._lock:
            self._reset_state(Decimal(krw) if krw is not None else self._init_krw)

    def fund(self, currency: str, amount: Decimal, avg_buy_price: Decimal | None = None) -> None:
        """Credit (or debit, when negative) a free balance (the /_sim/fund control)."""
        with self._lock:
            self.accounts_book.fund(currency.upper(), Decimal(amount), avg_buy_price)
            self._asset_event([currency.upper()])
            self._flush()

    def _seeded_uuid(self) -> str:
        return str(uuid_mod.UUID(int=self._rng.getrandbits(128), version=4))

    @property
    def markets(self) -> list[str]:
        return list(self._markets)

    def add_market(self, market: str) -> None:
        with self._lock:
            self._markets.setdefault(market, _MarketState(market, self.seed))

    @property
    def clock_ms(self) -> int:
        return self._clock_ms

    def _now(self, ts_ms: int | None) -> int:
        if ts_ms is not None:
            return int(ts_ms)
        return self._clock_ms or now_ms()

    def subscribe(self, listener: Callable[[str, dict], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str, dict], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _flush(self) -> None:
        if not self._events:
            return
        events, self._events = self._events, []
        for kind, payload in events:
            for listener in list(self._listeners):
                listener(kind, payload)

    def _order_event(self, order: Order, ts_ms: int, state: str | None = None,
                     trade: Trade | None = None) -> None:
        if self._listeners:
            self._events.append(("myOrder", order.to_my_order(ts_ms, state, trade)))

    def _asset_event(self, currencies: list[str], ts_ms: int | None = None) -> None:
        if not self._listeners:
            return
        ts = self._now(ts_ms)
        assets = []
        for cur in dict.fromkeys(currencies):
            row = self.accounts_book.peek(cur)
            assets.append({"currency": cur, "balance": float(row.balance) if row else 0.0,
                           "locked": float(row.locked) if row else 0.0})
        self._events.append(("myAsset", {
            "type": "myAsset", "asset_uuid": self._seeded_uuid(), "assets": assets,
            "asset_timestamp": ts, "timestamp": ts, "stream_type": "REALTIME",
        }))

    def _market(self, market: str) -> _MarketState:
        st = self._markets.get(market)
        if st is None:
            raise _bad("notfoundmarket", MSG["notfoundmarket"].format(market=market))
        return st

    # ------------------------------------------------------------------ quotes
    def last_price(self, market: str) -> float | None:
        st = self._markets.get(market)
        return st.last if st else None

    def resting_band(self, market: str) -> tuple[float, float]:
        st = self._markets.get(market)
        if st is None:
            return (-_INF, _INF)
        return (st.bid_ceiling, st.ask_floor)

    def book(self, market: str) -> SyntheticBook:
        """The synthetic book of a market, rebuilt if the price moved since it was last read."""
        with self._lock:
            st = self._market(market)
            st.book.ensure(st.last, st.ref_vol)
            return st.book

    def book_quote(self, market: str) -> tuple[float, float, float, float]:
        """Best ask/size and best bid/size as floats without building the whole book."""
        st = self._markets.get(market)
        if st is None or st.last is None:
            return (0.0, 0.0, 0.0, 0.0)
        return st.book.quote(st.last, st.ref_vol)

    def orderbook_units(self, market: str, count: int = 30, *, level: Decimal | None = None) -> list[dict]:
        """Quotation orderbook units, best first; grouped into `level` price buckets when given."""
        with self._lock:
            book = self.book(market)
            if level:
                return group_units(book.asks, book.bids, level, count)
            return book.units(count)

    # ------------------------------------------------------------------ market feed
    def on_trade(self, market: str, ts_ms: int, price: float, volume: float, is_bid: bool) -> list[Fill]:
        """Advance a market by one trade and fill the resting orders it crosses."""
        st = self._markets.get(market)
        if st is None:
            with self._lock:
                st = self._markets.setdefault(market, _MarketState(market, self.seed))
        prev = st.last
        st.last = price
        st.last_ts = ts_ms
        if ts_ms > self._clock_ms:
            self._clock_ms = ts_ms
        # volume scale for the synthetic book: a slow moving average of trade volumes
        st.ref_vol = volume if st.ref_vol == 0.0 else st.ref_vol * 0.95 + volume * 0.05
        if st.bid_ceiling < price < st.ask_floor:
            return []
        with self._lock:
            fills = self._match_resting(market, st, ts_ms, price, volume, prev)
            self._flush()
        return fills

    def replay_quiet_trades(
        self, market: str, last_ts: int, volumes: Sequence[float], last_price: float
    ) -> None:
        """Advance a market over trades that provably cross no resting order, in bulk.

        Leaves the exchange exactly as `on_trade` would after seeing them one by one (last price
        and time, market clock, the moving average of trade volume that scales the book — same
        float operations in the same order, hence bit-identical). The backtest uses it for the
        trades it skips; the caller guarantees they lie strictly inside `resting_band`.
        """
        st = self._markets.get(market)
        if st is None:
            with self._lock:
                st = self._markets.setdefault(market, _MarketState(market, self.seed))
        r = st.ref_vol
        k, m = 0, len(volumes)
        while r == 0.0 and k < m:  # on_trade's "first volume seeds the average" rule
            r = volumes[k]
            k += 1
        if min(volumes[k:], default=0.0) < 0.0:  # nonsense data: keep on_trade's rule on every trade
            for v in volumes[k:]:
                r = v if r == 0.0 else r * 0.95 + v * 0.05
        else:  # r > 0 and v >= 0 keep r > 0, so the rule's test can be dropped from the hot loop
            for v in volumes[k:]:
                r = r * 0.95 + v * 0.05
        st.ref_vol = r
        st.last = last_price
        st.last_ts = last_ts
        if last_ts > self._clock_ms:
            self._clock_ms = last_ts

    def _match_resting(self, market: str, st: _MarketState, ts_ms: int, price: float, volume: float,
                       prev: float | None) -> list[Fill]:
        left = _floor8(_to_dec(volume))  # fills keep Upbit's 8 decimals
        fills: list[Fill] = []
        trend = "up" if prev is None or price >= prev else "down"
        sides = ((st.bids, lambda o: price <= o.price_f), (st.asks, lambda o: price >= o.price_f))
        for book, crosses in sides:
            while book and left > 0 and crosses(book[0]):
                order = book[0]
                v = min(order.remaining_volume, left)
                left -= v
                fills.append(self._fill(order, order.price, v, ts_ms, trend, is_maker=True))
                if order.remaining_volume == 0:
                    book.pop(0)
                    self._finalize(order, "done", ts_ms)
        st.refresh_band()
        return fills

    # ------------------------------------------------------------------ fills
    def _fill(self, order: Order, price: Decimal, volume: Decimal, ts_ms: int, trend: str,
              *, is_maker: bool) -> Fill:
        funds = price * volume
        fee = funds * self.fee_rate
        coin = order.market.split("-", 1)[1]
        trade = Trade(self._uuid_factory(), price, volume, funds, fee, ts_ms, trend, is_maker)
        order.trades.append(trade)
        order.executed_volume += volume
        order.executed_funds += funds
        order.paid_fee += fee
        if order.side == "bid":
            order.locked -= funds + fee
            self.accounts_book.on_buy_fill(coin, price, volume, funds + fee)
        else:
            order.locked -= volume
            self.accounts_book.on_sell_fill(coin, volume, funds - fee)
        self._order_event(order, ts_ms, "trade", trade)
        self._asset_event(["KRW", coin], ts_ms)
        return Fill(trade_uuid=trade.uuid, order_uuid=order.uuid, market=order.market,
                    side=Side(order.side), price=price, volume=volume, funds=funds, fee=fee, ts_ms=ts_ms,
                    identifier=order.identifier)

    def _finalize(self, order: Order, state: str, ts_ms: int) -> None:
        """Close an order: refund what is still locked for it, emit the final event."""
        order.state = state
        order.done_ms = ts_ms
        coin = order.market.split("-", 1)[1]
        if order.side == "bid":
            if order.locked:
                self.accounts_book.unlock("KRW", order.locked)
        else:
            rem = order.locked
            if rem:
                self.accounts_book.unlock(coin, rem)
            order.locked = D0 if state == "done" else rem
        self._order_event(order, ts_ms)
        self._asset_event(["KRW", coin], ts_ms)

    # ------------------------------------------------------------------ orders
    def create_order(
        self,
        market: str,
        side: str,
        ord_type: str,
        *,
        price: Decimal | None = None,
        volume: Decimal | None = None,
        identifier: str | None = None,
        time_in_force: str | None = None,
        ts_ms: int | None = None,
        smp_type: str | None = None,
        test: bool = False,
    ) -> dict:
        """Validate like Upbit, lock funds, take liquidity if marketable; returns the Order JSON."""
        with self._lock:
            try:
                order = self._new_order(market, side, ord_type, price, volume, identifier, time_in_force,
                                        ts_ms, smp_type, test)
                if test:
                    return order.to_json()
                # Upbit answers with the order as accepted (state "wait", nothing executed yet) even
                # when it fills in the same instant; clients read the outcome with GET /v1/order
                accepted = order.to_json()
                self._execute(order)
                return accepted
            finally:
                self._flush()

    def _new_order(self, market: str, side: str, ord_type: str, price: Decimal | None, volume: Decimal | None,
                   identifier: str | None, tif: str | None, ts_ms: int | None, smp_type: str | None,
                   test: bool) -> Order:
        self._market(market)  # notfoundmarket first, as Upbit
        if side not in ("bid", "ask"):
            raise _bad("invalid_parameter", "side 값이 올바르지 않습니다.")
        sfx = side
        if ord_type not in ("limit", "price", "market", "best"):
            raise _bad("invalid_parameter", "ord_type 값이 올바르지 않습니다.")
        combo_err = _bad(f"create_{sfx}_error", "주문 파라미터 조합이 올바르지 않습니다.")
        if ord_type == "limit" and (price is None or volume is None):
            raise combo_err
        if ord_type == "price" and (side != "bid" or price is None or volume is not None):
            raise combo_err
        if ord_type == "market" and (side != "ask" or volume is None or price is not None):
            raise combo_err
        if ord_type == "best" and ((side == "bid" and (price is None or volume is not None))
                                   or (side == "ask" and (volume is None or price is not None))):
            raise combo_err
        if tif is not None:
            tif = tif.lower()
        if ord_type == "best" and tif not in ("ioc", "fok"):
            raise _bad("invalid_time_in_force", MSG["invalid_time_in_force"])
        if ord_type == "limit" and tif not in (None, "ioc", "fok", "post_only"):
            raise _bad("invalid_time_in_force", MSG["invalid_time_in_force"])
        if ord_type in ("price", "market") and tif is not None:
            raise _bad("invalid_time_in_force", MSG["invalid_time_in_force"])
        if smp_type is not None:
            smp_type = smp_type.lower()
            if smp_type not in SMP_TYPES:
                raise _bad("invalid_parameter", MSG["invalid_smp_type"])
            # Upbit: SMP works with every ord_type and ioc/fok, but not with post_only (except none)
            if tif == "post_only" and smp_type != "none":
                raise _bad("invalid_post_only", MSG["invalid_post_only"])
        elif tif == "post_only":
            smp_type = "none" if self.smp_default is not None else None  # the default skips post_only
        else:
            smp_type = self.smp_default
        if identifier is not None:
            if not identifier or len(identifier) > 64:
                raise _bad("invalid_parameter", "identifier는 64자 이하로 입력해주세요.")
            if identifier in self._by_identifier:
                raise _bad("duplicated_identifier", MSG["duplicated_identifier"])
        try:
            if volume is not None:
                volume = Decimal(volume)
                if not volume.is_finite() or volume <= 0 or volume != volume.quantize(Q8):
                    raise _bad(f"invalid_volume_{sfx}", MSG["invalid_volume"])
            if price is not None:
                price = Decimal(price)
                if not price.is_finite() or price <= 0:
                    raise _bad(f"invalid_price_{sfx}", MSG["invalid_price"])
        except InvalidOperation as exc:
            raise _bad("invalid_parameter", "숫자 형식이 올바르지 않습니다.") from exc
        if ord_type == "limit" and not is_on_tick(price):
            raise _bad(f"invalid_price_{sfx}", MSG["invalid_price"])

        rate = self.fee_rate
        coin = market.split("-", 1)[1]
        book = self.book(market)
        if ord_type == "limit":
            notional = price * volume
        elif side == "bid":
            notional = price
        else:
            best = book.best_bid()
            notional = volume * best if best is not None else D0
        if notional < MIN_ORDER_KRW:
            raise _bad(f"under_min_total_{sfx}", MSG["under_min_total"])
        if side == "bid" and notional > MAX_ORDER_KRW:
            raise _bad("over_krw_funds_bid", MSG["over_krw_funds_bid"])
        if side == "bid":
            reserved_fee = notional * rate
            lock = notional + reserved_fee
            if lock > self.accounts_book.get("KRW").balance:
                raise _bad("insufficient_funds_bid", MSG["insufficient_funds_bid"])
        else:
            reserved_fee = notional * rate if ord_type == "limit" else D0
            lock = volume
            row = self.accounts_book.peek(coin)
            if row is None or lock > row.balance:
                raise _bad("insufficient_funds_ask", MSG["insufficient_funds_ask"].format(coin=coin))
        # 2025-05 policy: market orders must fit in the 30 visible levels
        if ord_type == "price" and sum(p * s for p, s in book.asks if s > 0) < price:
            raise _bad("create_bid_error", MSG["book_depth"])
        if ord_type == "market" and sum(s for _, s in book.bids if s > 0) < volume:
            raise _bad("create_ask_error", MSG["book_depth"])

        now = self._now(ts_ms)
        order = Order(uuid=self._uuid_factory(), market=market, side=side, ord_type=ord_type, price=price,
                      volume=volume, created_ms=now, seq=self._seq, reserved_fee=reserved_fee, locked=lock,
                      identifier=identifier, time_in_force=tif, smp_type=smp_type)
        if test:
            return order
        self._seq += 1
        self._orders[order.uuid] = order
        if identifier is not None:
            self._by_identifier[identifier] = order.uuid
        self.accounts_book.lock("KRW" if side == "bid" else coin, lock)
        self._order_event(order, now)
        self._asset_event(["KRW" if side == "bid" else coin], now)
        return order

    def _execute(self, order: Order) -> None:
        """Take liquidity for a marketable order, then rest it or close it.

        The taker walks the synthetic book (other participants) merged with the account's own
        resting orders on the other side, best price first; at an equal price the book's depth
        comes first. Meeting an own order is a self-match, resolved by the taker's `smp_type`
        (Upbit: the maker's own setting does not apply): `none` trades with itself (both orders
        fill, both pay the fee), `cancel_maker` cancels the resting order and walks on,
        `cancel_taker` cancels the rest of the incoming order, `reduce` withdraws the overlap
        from both. Withdrawn quantities show as `prevented_volume`/`prevented_locked`.
        """
        st = self._markets[order.market]
        now = order.created_ms
        is_bid = order.side == "bid"
        levels = st.book.asks if is_bid else st.book.bids
        own = st.asks if is_bid else st.bids
        limit = order.price if order.ord_type == "limit" else None
        tif = order.time_in_force
        trend = "up" if is_bid else "down"

        def crosses(level_price: Decimal) -> bool:
            if limit is None:
                return True
            return level_price <= limit if is_bid else level_price >= limit

        if order.ord_type == "limit" and tif == "post_only":
            marketable = (any(s > 0 and crosses(p) for p, s in levels)
                          or any(crosses(o.price) for o in own))
            if marketable:
                self._finalize(order, "cancel", now)
                return

        actions = self._plan(order, levels, own, crosses)
        filled = sum((a[2] for a in actions if a[0] in ("book", "self")), D0)
        if tif == "fok":
            if order.ord_type == "price" or (order.ord_type == "best" and is_bid):
                # a best/price FOK bid must be served whole by the first level it meets
                fills = [a for a in actions if a[0] in ("book", "self")]
                ok = bool(fills) and fills[0][2] == _floor8(order.price / fills[0][3])
            else:
                ok = filled == order.volume
            if not ok:
                actions = []
        taker_cancelled = self._apply(order, st, own, actions, now, trend)

        if order.ord_type == "limit":
            rem = order.remaining_volume
            if rem == 0:
                self._finalize(order, "done" if order.prevented_volume == 0 else "cancel", now)
            elif taker_cancelled or tif in ("ioc", "fok"):
                self._finalize(order, "cancel", now)
            else:
                self._rest(st, order)
            return
        if is_bid:
            spent = order.executed_funds
            self._finalize(order, "done" if spent == order.price and not order.prevented_volume else "cancel",
                           now)
            return
        self._finalize(order, "done" if order.remaining_volume == 0 and not order.prevented_volume
                       else "cancel", now)

    def _plan(self, order: Order, levels: list[list[Decimal]], own: list[Order],
              crosses: Callable[[Decimal], bool]) -> list[tuple]:
        """What the taker would do, level by level, without changing anything (FOK decides on it).

        Actions: ("book", level, volume, price), ("self", maker, volume, price),
        ("cancel_maker", maker, 0, price), ("reduce", maker, volume, price), ("cancel_taker", None, 0, price).
        """
        is_bid = order.side == "bid"
        mode = order.smp_type or "none"
        single = order.ord_type == "best"
        by_budget = is_bid and order.ord_type in ("price", "best")
        entries: list[tuple[Decimal, int, int]] = [(lvl[0], 0, i) for i, lvl in enumerate(levels)]
        entries += [(o.price, 1, j) for j, o in enumerate(own)]
        if own:
            entries.sort(key=lambda e: (e[0] if is_bid else -e[0], e[1], e[2]))
        budget = order.price if by_budget else D0
        rem = D0 if by_budget else order.remaining_volume
        actions: list[tuple] = []
        for price, kind, idx in entries:
            if not by_budget and (rem is None or rem <= 0):
                break
            if not crosses(price):
                break
            if kind == 0:
                size = levels[idx][1]
                if size <= 0:
                    continue
                v = min(size, _floor8(budget / price)) if by_budget else min(size, rem)
                if v <= 0:
                    break
                actions.append(("book", levels[idx], v, price))
            else:
                maker = own[idx]
                cap = _floor8(budget / price) if by_budget else rem
                if cap <= 0:
                    break
                v = min(maker.remaining_volume or D0, cap)
                if mode == "cancel_maker":
                    actions.append(("cancel_maker", maker, D0, price))
                    continue
                if mode == "cancel_taker":
                    actions.append(("cancel_taker", None, v, price))
                    break
                actions.append(("reduce" if mode == "reduce" else "self", maker, v, price))
            if by_budget:
                budget -= price * v
            else:
                rem -= v
            if single and actions[-1][0] in ("book", "self"):
                break
        return actions

    def _apply(self, order: Order, st: _MarketState, own: list[Order], actions: list[tuple], now: int,
               trend: str) -> bool:
        """Carry out a plan; True when the taker was cancelled by `cancel_taker`."""
        rate = self.fee_rate
        for kind, target, v, price in actions:
            if kind == "book":
                target[1] -= v
                self._fill(order, price, v, now, trend, is_maker=False)
            elif kind == "self":
                self._fill(order, price, v, now, trend, is_maker=False)
                self._fill(target, price, v, now, trend, is_maker=True)
                if target.remaining_volume == 0:
                    own.remove(target)
                    st.refresh_band()
                    self._finalize(target, "done", now)
            elif kind == "cancel_maker":
                self._prevent_all(target, target.remaining_volume or D0)
                own.remove(target)
                st.refresh_band()
                self._finalize(target, "cancel", now)
            elif kind == "reduce":
                for o in (order, target):
                    unit = o.price if o.ord_type == "limit" else price
                    self._prevent_part(o, v, v * unit * (1 + rate) if o.side == "bid" else v)
                if target.remaining_volume == 0:
                    own.remove(target)
                    st.refresh_band()
                    self._finalize(target, "cancel", now)
                else:
                    self._order_event(target, now, "prevented")
                if order.remaining_volume != 0:  # still something left: tell about the cut
                    self._order_event(order, now, "prevented")
            else:  # cancel_taker
                rem = order.remaining_volume
                self._prevent_all(order, rem if rem is not None else v)
                return True
        return False

    def _prevent_all(self, order: Order, volume: Decimal) -> None:
        """Self-match prevention withdraws the rest of an order (it is then cancelled)."""
        order.prevented_volume += volume
        order.prevented_locked += order.locked

    def _prevent_part(self, order: Order, volume: Decimal, release: Decimal) -> None:
        """`reduce`: withdraw `volume` from an order that stays open, releasing its funds at once."""
        release = min(release, order.locked)
        order.prevented_volume += volume
        order.prevented_locked += release
        order.locked -= release
        coin = order.market.split("-", 1)[1]
        self.accounts_book.unlock("KRW" if order.side == "bid" else coin, release)
        self._asset_event(["KRW" if order.side == "bid" else coin])

    def _rest(self, st: _MarketState, order: Order) -> None:
        if order.side == "bid":
            st.bids.append(order)
            st.bids.sort(key=lambda o: (-o.price, o.seq))
        else:
            st.asks.append(order)
            st.asks.sort(key=lambda o: (o.price, o.seq))
        st.refresh_band()

    def _find(self, uuid: str | None, identifier: str | None) -> Order:
        if uuid is None and identifier is None:
            raise _bad("invalid_parameter", "uuid 또는 identifier 중 하나는 필수입니다.")
        key = uuid if uuid is not None else self._by_identifier.get(identifier or "")
        order = self._orders.get(key or "")
        if order is None:
            raise SimError(404, "order_not_found", MSG["order_not_found"])
        return order

    def cancel_order(self, *, uuid: str | None = None, identifier: str | None = None,
                     ts_ms: int | None = None) -> dict:
        """Cancel an open order; returns the order as it was when the cancel was accepted."""
        with self._lock:
            try:
                order = self._find(uuid, identifier)
                if not order.is_open:
                    raise SimError(404, "order_not_found", MSG["order_not_found"])
                accepted = order.to_json()
                st = self._markets[order.market]
                side_list = st.bids if order.side == "bid" else st.asks
                if order in side_list:
                    side_list.remove(order)
                    st.refresh_band()
                self._finalize(order, "cancel", self._now(ts_ms))
                return accepted
            finally:
                self._flush()

    def get_order(self, *, uuid: str | None = None, identifier: str | None = None) -> dict:
        with self._lock:
            return self._find(uuid, identifier).to_json(with_trades=True)

    def order_fills(self, uuid: str) -> list[Fill]:
        """The fills of one order as domain Fills (additive helper for the backtest)."""
        with self._lock:
            o = self._find(uuid, None)
            return [Fill(trade_uuid=t.uuid, order_uuid=o.uuid, market=o.market, side=Side(o.side),
                         price=t.price, volume=t.volume, funds=t.funds, fee=t.fee, ts_ms=t.ts_ms,
                         identifier=o.identifier)
                    for t in o.trades]

    def orders(self, *, market: str | None = None, states: Iterable[str] | None = None,
               uuids: Iterable[str] | None = None, identifiers: Iterable[str] | None = None) -> list[Order]:
        """Orders filtered by market/state/uuid/identifier, oldest first."""
        with self._lock:
            wanted_states = set(states) if states else None
            ids = set(uuids or ())
            for ident in identifiers or ():
                if ident in self._by_identifier:
                    ids.add(self._by_identifier[ident])
            by_id = bool(uuids) or bool(identifiers)
            out = []
            for o in self._orders.values():
                if market and o.market != market:
                    continue
                if wanted_states is not None and o.state not in wanted_states:
                    continue
                if by_id and o.uuid not in ids:
                    continue
                out.append(o)
            return out

    def open_orders(self, market: str | None = None) -> list[dict]:
        return [o.to_json() for o in self.orders(market=market, states=("wait", "watch"))]

    # ------------------------------------------------------------------ accounts
    def accounts(self) -> list[dict]:
        with self._lock:
            return self.accounts_book.to_json()

    def balance(self, currency: str) -> tuple[Decimal, Decimal, Decimal]:
        with self._lock:
            row = self.accounts_book.peek(currency.upper())
            if row is None:
                return (D0, D0, D0)
            return (row.balance, row.locked, row.avg_buy_price)

    def account_row(self, currency: str) -> dict:
        """A /v1/accounts-shaped row even when the currency holds nothing (for orders/chance)."""
        with self._lock:
            row = self.accounts_book.peek(currency.upper())
            if row is None:
                from trader.sim.accounts import Account
                row = Account(currency.upper())
            return row.to_json()
