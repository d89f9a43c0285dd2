"""The backtest's driver of the execution policy: intents → orders on the in-process exchange.

Every decision about an order over time — placement and sizing, the market-time timeout, the
`on_timeout` fallback with its re-price cap, superseding, dust — is `trader.execution.policy`'s,
the same code the live/paper order manager runs. This module only does the backtest's I/O:
synchronous calls to `trader.sim.inprocess.InProcessClient` (the simulator's own matching, no
sockets) at the market time of the trade being replayed, and booking fills into the ledger.

An intent's result reaches the strategy (`on_result`) when its last order is final — for an order
that fills or is refused when placed, before the next trade, as in a lockstep paper run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from trader.domain import Fill, Intent, IntentKind, OrderSnapshot, OrdType
from trader.execution import policy
from trader.execution.balances import currencies_of
from trader.portfolio import Portfolio
from trader.sim.inprocess import InProcessClient
from trader.strategy.sizing import to_decimal
from trader.upbit.errors import UpbitError

_ZERO = Decimal(0)
DEFAULT_LIMIT_TIMEOUT_S = 30.0  # as the order manager's, for a limit intent without timeout_s

ResultFn = Callable[[Intent, Decimal, Decimal, int], None]  # intent, filled volume, funds, ts
FillFn = Callable[[Fill, Intent], None]


@dataclass
class _Resting:
    """A limit intent whose current order rests on the book, and what its orders did so far."""

    intent: Intent
    uuid: str
    volume: Decimal | None  # the resting order's volume
    deadline_ms: int
    reprices: int = 0
    attempt: int = 0
    filled: Decimal = _ZERO  # over the intent's earlier (final) orders
    funds: Decimal = _ZERO
    seen: set[str] = field(default_factory=set)


class BacktestExecution:
    """Places and follows the backtest's orders through the execution policy."""

    def __init__(self, client: InProcessClient, portfolio: Portfolio, *, namespace: str = "",
                 on_result: ResultFn, on_fill: FillFn) -> None:
        self.client = client
        self.portfolio = portfolio
        self.namespace = namespace
        self.on_result = on_result
        self.on_fill = on_fill
        self.resting: dict[str, _Resting] = {}  # intent id -> its resting order
        self._by_uuid: dict[str, _Resting] = {}
        self.rejected: list[str] = []
        self.next_deadline_ms: float = float("inf")
        # what the policy did, for summaries and tests: limit orders that timed out, fallback
        # orders sent (market or re-priced), limit orders that filled over several trades
        self.stats = {"timeouts": 0, "fallbacks": 0, "split_fills": 0}

    # ---- what the replay loop asks ---------------------------------------------------------------
    def blocking(self, market: str) -> bool:
        """An order that keeps the market's strategy from deciding is in flight: a resting buy (a
        resting sell does not — a stop may still fire while a take-profit rests, and supersedes it)."""
        return any(r.intent.kind is IntentKind.BUY and r.intent.market == market
                   for r in self.resting.values())

    def reserved_krw(self) -> Decimal:
        """KRW locked by our resting buys (one balance: no other market may spend it) — what the
        exchange holds locked for them, fee included, as the order manager counts it."""
        if any(r.intent.kind is IntentKind.BUY for r in self.resting.values()):
            return self.client.exchange.balance("KRW")[1]
        return _ZERO

    def in_flight(self, intent_id: str) -> bool:
        return intent_id in self.resting

    # ---- decisions -------------------------------------------------------------------------------
    def submit(self, intent: Intent, ts: int, price: float) -> None:
        """A new decision at market time `ts`: supersede what it supersedes, then place it."""
        for other in list(self.resting.values()):
            if policy.supersedes(intent, other.intent):
                self._end(other, ts, cancel=True)
        self._place(intent, ts, price, attempt=0, reprices=0, filled=_ZERO, funds=_ZERO)

    def on_trade_fills(self, fills: list[Fill], ts: int) -> None:
        """A replayed trade filled resting orders: book them (as the exchange reports them to a
        client: the order's `trades`), finish the intents whose order is done."""
        touched: list[_Resting] = []
        for f in fills:
            r = self._by_uuid.get(f.order_uuid)
            if r is not None and r not in touched:
                touched.append(r)
        for r in touched:
            snap = self.client.get_order_now(uuid=r.uuid)
            for f in snap.trades:
                self._book(f, r.intent, r.seen)
            if snap.is_final:
                self._finished_order(r, snap, ts, None)

    def on_market_time(self, ts: int, market: str, price: float) -> None:
        """Time out every resting order of `market` whose deadline its trade at `ts` reaches (market
        time is the last trade of the order's own market, as in the live loop)."""
        if ts < self.next_deadline_ms:
            return
        due = [r for r in self.resting.values()
               if r.intent.market == market and policy.timed_out(ts, r.deadline_ms)]
        for r in due:
            self.stats["timeouts"] += 1
            with contextlib.suppress(UpbitError):  # it may have filled in the meantime
                self.client.cancel_order_now(uuid=r.uuid)
            self._finished_order(r, self.client.get_order_now(uuid=r.uuid), ts, price)

    # ---- the policy's steps ----------------------------------------------------------------------
    def _place(self, intent: Intent, ts: int, price: float, *, attempt: int, reprices: int,
               filled: Decimal, funds: Decimal, step: policy.NextStep | None = None) -> None:
        plan = self._plan(intent, price, step)
        if not plan.ok:
            self._report(intent, filled, funds, ts)
            return
        ident = policy.attempt_identifier(intent, self.namespace, attempt)
        if attempt:
            self.stats["fallbacks"] += 1
        try:
            snap = self.client.create_order_now(intent.market, plan.side, plan.ord_type, identifier=ident,
                                                price=plan.price, volume=plan.volume)
        except UpbitError as exc:
            self.rejected.append(f"{ts} {intent.intent_id}: {exc.name}")
            self._report(intent, filled, funds, ts)
            return
        r = _Resting(intent, snap.uuid, plan.volume, 0, reprices, attempt, filled, funds)
        snap = self.client.get_order_now(uuid=snap.uuid)
        for f in snap.trades:
            self._book(f, intent, r.seen)
        if snap.is_final:
            self._finished_order(r, snap, ts, price)
            return
        r.deadline_ms = policy.limit_deadline_ms(ts, intent.timeout_s, DEFAULT_LIMIT_TIMEOUT_S)
        self.resting[intent.intent_id] = r
        self._by_uuid[r.uuid] = r
        self._refresh_deadline()

    def _finished_order(self, r: _Resting, snap: OrderSnapshot, ts: int, price: float | None,
                        superseded: bool = False) -> None:
        """The intent's current order is final: book its last fills, then the policy's next step."""
        for f in snap.trades:
            self._book(f, r.intent, r.seen)
        if snap.ord_type is OrdType.LIMIT and len(snap.trades) > 1:
            self.stats["split_fills"] += 1
        self._forget(r)
        vol = sum((f.volume for f in snap.trades), _ZERO)
        funds = sum((f.funds for f in snap.trades), _ZERO)
        filled, spent = r.filled + vol, r.funds + funds
        last = price if price is not None else self.client.exchange.last_price(r.intent.market)
        step = None
        if snap.ord_type is OrdType.LIMIT:
            step = policy.next_step(r.intent, ended=snap.state.value, superseded=superseded, filled=filled,
                                    funds=spent, last_volume=snap.volume, reprices=r.reprices,
                                    last_price=last, offset_ticks=r.intent.offset_ticks)
        if step is None:
            self._report(r.intent, filled, spent, ts)
            return
        assert last is not None
        reprices = r.reprices + (1 if step.ord_type is OrdType.LIMIT else 0)
        self._place(r.intent, ts, last, attempt=r.attempt + 1, reprices=reprices, filled=filled,
                    funds=spent, step=step)

    def _end(self, r: _Resting, ts: int, *, cancel: bool) -> None:
        """Supersede: cancel the resting order; the intent reports what it filled, no fallback."""
        if cancel:
            with contextlib.suppress(UpbitError):
                self.client.cancel_order_now(uuid=r.uuid)
        self._finished_order(r, self.client.get_order_now(uuid=r.uuid), ts, None, superseded=True)

    # ---- plumbing --------------------------------------------------------------------------------
    def _plan(self, intent: Intent, price: float, step: policy.NextStep | None) -> policy.PlannedOrder:
        # the exchange's free coin, as `accounts` reports it (read directly: a backtest order
        # otherwise paid for rendering and parsing every account's JSON)
        coin_free = self.client.exchange.balance(currencies_of(intent.market)[1])[0]
        krw_free = self.portfolio.krw - self.reserved_krw()  # as the order manager's `_krw_free`
        return policy.plan_order(
            intent, krw_free=krw_free, coin_free=coin_free,
            price_ref=to_decimal(price),
            remaining=step.remaining if step else None, ord_type=step.ord_type if step else None,
            limit_price=step.limit_price if step else None,
        )

    def _book(self, fill: Fill, intent: Intent, seen: set[str]) -> None:
        if fill.trade_uuid in seen:
            return
        seen.add(fill.trade_uuid)
        self.on_fill(fill, intent)

    def _report(self, intent: Intent, filled: Decimal, funds: Decimal, ts: int) -> None:
        self.on_result(intent, filled, funds, ts)

    def _forget(self, r: _Resting) -> None:
        if self.resting.get(r.intent.intent_id) is r:
            del self.resting[r.intent.intent_id]
        self._by_uuid.pop(r.uuid, None)
        self._refresh_deadline()

    def _refresh_deadline(self) -> None:
        self.next_deadline_ms = min((r.deadline_ms for r in self.resting.values()), default=float("inf"))
