"""In-memory fakes for execution unit tests: an ExchangeClient with scripted faults and a repo.

FakeExchange follows Upbit's rules closely enough for the order manager: market orders fill at
`self.price` at once (a market buy ends `cancel` with its dust), limit orders rest until the test
calls `fill_limit`, a duplicate identifier is refused with `duplicated_identifier`, a cancel
returns the order as it was (`wait`), and `script` injects errors before or after an order is
created (the latter is the ambiguous case: the order exists but the caller was not told).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from trader.domain import Fill, OrderSnapshot, OrderState, OrdType, Side
from trader.upbit.client import Balance
from trader.upbit.errors import (
    DuplicateIdentifierError,
    InsufficientFundsError,
    OrderNotFoundError,
    UpbitError,
)
from trader.upbit.rules import FEE_RATE, quantize_volume

_ids = itertools.count(1)


@dataclass
class _Order:
    snap: OrderSnapshot
    fills: list[Fill] = field(default_factory=list)


class FakeExchange:
    def __init__(self, krw: Decimal = Decimal("1000000"), price: Decimal = Decimal("5000000")) -> None:
        self.price = price
        self.krw = krw
        self.krw_locked = Decimal(0)
        self.coin: dict[str, Decimal] = {}
        self.coin_locked: dict[str, Decimal] = {}
        self.orders: dict[str, _Order] = {}
        self.by_ident: dict[str, str] = {}
        # create_order script: list of ("before"|"after", exception); consumed one per call
        self.script: list[tuple[str, UpbitError]] = []
        self.get_script: list[UpbitError] = []
        self.calls: list[str] = []

    # -- helpers for tests ----------------------------------------------------------------
    def _snap(self, o: _Order, **kw: Any) -> OrderSnapshot:
        return replace(o.snap, trades=tuple(o.fills), **kw)

    def fill_limit(self, uuid: str, volume: Decimal) -> None:
        o = self.orders[uuid]
        s = o.snap
        assert s.state is OrderState.WAIT
        volume = min(volume, s.remaining_volume or Decimal(0))
        price = s.price or Decimal(0)
        funds = price * volume
        fee = funds * FEE_RATE
        cur = s.market.split("-")[1]
        if s.side is Side.BID:
            self.krw_locked -= funds + fee
            self.coin[cur] = self.coin.get(cur, Decimal(0)) + volume
        else:
            self.coin_locked[cur] -= volume
            self.krw += funds - fee
        o.fills.append(self._fill(s, price, volume, funds, fee))
        remaining = (s.remaining_volume or Decimal(0)) - volume
        o.snap = replace(
            s,
            remaining_volume=remaining,
            executed_volume=s.executed_volume + volume,
            paid_fee=s.paid_fee + fee,
            state=OrderState.DONE if remaining == 0 else OrderState.WAIT,
            trades_count=len(o.fills),
        )

    def _fill(self, s: OrderSnapshot, price: Decimal, volume: Decimal, funds: Decimal, fee: Decimal) -> Fill:
        return Fill(f"t{next(_ids)}", s.uuid, s.market, s.side, price, volume, funds, fee, 0)

    # -- ExchangeClient ---------------------------------------------------------------------
    async def accounts(self) -> dict[str, Balance]:
        self.calls.append("accounts")
        out = {"KRW": Balance("KRW", self.krw, self.krw_locked, Decimal(0))}
        for cur, bal in self.coin.items():
            locked = self.coin_locked.get(cur, Decimal(0))
            if bal or locked:
                out[cur] = Balance(cur, bal, locked, self.price)
        return out

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
        self.calls.append(f"create {identifier}")
        when, exc = self.script.pop(0) if self.script else ("", None)
        if exc is not None and when == "before":
            raise exc
        if identifier in self.by_ident:
            raise DuplicateIdentifierError(400, "duplicated_identifier")
        cur = market.split("-")[1]
        uuid = f"u{next(_ids)}"
        snap = OrderSnapshot(
            uuid=uuid,
            market=market,
            side=side,
            ord_type=ord_type,
            state=OrderState.WAIT,
            price=price,
            volume=volume,
            remaining_volume=volume,
            executed_volume=Decimal(0),
            paid_fee=Decimal(0),
            locked=Decimal(0),
            created_at="2026-01-01T00:00:00+09:00",
            identifier=identifier,
        )
        o = _Order(snap)
        if ord_type is OrdType.PRICE:
            assert price is not None
            if self.krw < price * (1 + FEE_RATE):
                raise InsufficientFundsError(400, "insufficient_funds_bid")
            vol = quantize_volume(price / self.price)
            funds = vol * self.price
            fee = funds * FEE_RATE
            self.krw -= funds + fee
            self.coin[cur] = self.coin.get(cur, Decimal(0)) + vol
            o.fills.append(self._fill(snap, self.price, vol, funds, fee))
            o.snap = replace(snap, state=OrderState.CANCEL, executed_volume=vol, paid_fee=fee, trades_count=1)
        elif ord_type is OrdType.MARKET:
            assert volume is not None
            if self.coin.get(cur, Decimal(0)) < volume:
                raise InsufficientFundsError(400, "insufficient_funds_ask")
            funds = volume * self.price
            fee = funds * FEE_RATE
            self.coin[cur] -= volume
            self.krw += funds - fee
            o.fills.append(self._fill(snap, self.price, volume, funds, fee))
            o.snap = replace(
                snap, state=OrderState.DONE, executed_volume=volume, remaining_volume=Decimal(0), paid_fee=fee
            )
        else:
            assert price is not None and volume is not None
            if side is Side.BID:
                need = price * volume * (1 + FEE_RATE)
                if self.krw < need:
                    raise InsufficientFundsError(400, "insufficient_funds_bid")
                self.krw -= need
                self.krw_locked += need
            else:
                if self.coin.get(cur, Decimal(0)) < volume:
                    raise InsufficientFundsError(400, "insufficient_funds_ask")
                self.coin[cur] -= volume
                self.coin_locked[cur] = self.coin_locked.get(cur, Decimal(0)) + volume
        self.orders[uuid] = o
        self.by_ident[identifier] = uuid
        if exc is not None and when == "after":
            raise exc
        # the create response carries no trades (as Upbit's)
        return replace(o.snap, state=OrderState.WAIT, trades=()) if ord_type is not OrdType.LIMIT else o.snap

    async def get_order(self, *, uuid: str | None = None, identifier: str | None = None) -> OrderSnapshot:
        self.calls.append("get")
        if self.get_script:
            raise self.get_script.pop(0)
        if uuid is None and identifier is not None:
            uuid = self.by_ident.get(identifier)
        if uuid is None or uuid not in self.orders:
            raise OrderNotFoundError(404, "order_not_found")
        return self._snap(self.orders[uuid])

    async def cancel_order(self, *, uuid: str | None = None, identifier: str | None = None) -> OrderSnapshot:
        self.calls.append("cancel")
        if uuid is None and identifier is not None:
            uuid = self.by_ident.get(identifier)
        if uuid is None or uuid not in self.orders:
            raise OrderNotFoundError(404, "order_not_found")
        o = self.orders[uuid]
        before = self._snap(o)
        s = o.snap
        if s.state is OrderState.WAIT:
            cur = s.market.split("-")[1]
            rem = s.remaining_volume or Decimal(0)
            if s.side is Side.BID:
                back = (s.price or Decimal(0)) * rem * (1 + FEE_RATE)
                self.krw_locked -= back
                self.krw += back
            else:
                self.coin_locked[cur] -= rem
                self.coin[cur] += rem
            o.snap = replace(s, state=OrderState.CANCEL)
        return before

    async def open_orders(self, market: str | None = None) -> list[OrderSnapshot]:
        return [
            self._snap(o)
            for o in self.orders.values()
            if o.snap.state is OrderState.WAIT and (market is None or o.snap.market == market)
        ]

    async def closed_orders(self, market: str | None = None, *, limit: int = 100) -> list[OrderSnapshot]:
        return [self._snap(o) for o in self.orders.values() if o.snap.state is not OrderState.WAIT][:limit]

    async def close(self) -> None:
        return None


class FakeRepo:
    """Records what the order manager stores, in call order (`log`) to check the write order."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: dict[str, Fill] = {}
        self.log: list[tuple[str, str]] = []

    def record_order(self, identifier: str, intent_id: str, market: str, side: str, ord_type: str,
                     price: Any, volume: Any, krw_amount: Any, reason: str, ts_ms: int,
                     trigger_price: Any = None) -> bool:  # fmt: skip
        if identifier in self.orders:
            return False
        self.orders[identifier] = dict(
            intent_id=intent_id, market=market, side=side, ord_type=ord_type, price=price,
            volume=volume, krw_amount=krw_amount, reason=reason, state="recorded",
            trigger_price=trigger_price,
        )  # fmt: skip
        self.log.append(("order", identifier))
        return True

    def mark_order(self, identifier: str, **fields: Any) -> None:
        self.orders[identifier].update({k: v for k, v in fields.items() if v is not None})
        self.log.append(("mark", f"{identifier}:{fields.get('state')}"))

    def record_fill(self, fill: Fill, realized_pnl: Decimal | None = None) -> bool:
        if fill.trade_uuid in self.fills:
            return False
        self.fills[fill.trade_uuid] = fill
        self.log.append(("fill", fill.trade_uuid))
        return True

    def set_fill_pnl(self, trade_uuid: str, realized_pnl: Decimal | None) -> None:
        self.log.append(("pnl", trade_uuid))

    def order_journal(self) -> None:
        return None  # no loop-thread journal: the order manager records through record_order

    def unresolved_orders(self) -> list[Any]:
        return [
            {"identifier": k, **v}
            for k, v in self.orders.items()
            if v["state"] not in ("done", "cancel", "rejected")
        ]
