"""Portfolio backtest: several markets, one KRW balance, one risk gate, the one execution policy.

Every market's candles become trades with the single-market backtest's synthesizer; the trades of
all markets are merged in time order (ties in the order the markets are listed) and replayed
through ONE in-process exchange holding every market and ONE ledger, so two markets never spend
the same won: a resting buy's KRW is reserved (`BacktestExecution.reserved_krw`) and the other
markets' strategies see only what is free. Each market runs its own `StrategyEngine`; its entries
pass the risk gate (a refusal is recorded with its reason and reported to the strategy as an
entry that filled nothing); exits are never blocked. Orders go through
`trader.backtest.execution` — the execution policy the live order manager runs.

Every trade goes through its strategy (no skipping across markets yet: the single-market skip
needs one quiet band per market over a merged stream).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Protocol

import numpy as np

from trader.backtest.execution import BacktestExecution
from trader.backtest.runner import FillRecord, ProgressFn, book_fill
from trader.domain import Fill, Intent, IntentKind, PositionView
from trader.marketdata.synth import TradeArrays
from trader.portfolio import Portfolio
from trader.sim.inprocess import InProcessClient
from trader.sim.matching import Exchange
from trader.strategy import sizing
from trader.strategy.config import StrategyConfig
from trader.strategy.engine import StrategyEngine
from trader.upbit.rules import MIN_ORDER_KRW

_ZERO = Decimal(0)
_MIN_F = float(MIN_ORDER_KRW)  # a position worth less is dust: the market counts as flat


class Gate(Protocol):
    """What the portfolio backtest needs of a risk gate (trader.risk.RiskGate)."""

    def check(self, intent: Intent, view: object) -> object: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """An entry the risk gate refused: when, where, why, and how many times in a row."""

    ts_ms: int
    market: str
    reason: str
    repeats: int = 1


@dataclass
class PortfolioRunOutput:
    markets: list[str]
    krw_start: Decimal
    fills: list[FillRecord]
    ticks: int
    refusals: list[Refusal] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    final_krw: Decimal = _ZERO
    final_volumes: dict[str, Decimal] = field(default_factory=dict)
    last_prices: dict[str, float] = field(default_factory=dict)
    max_open_seen: int = 0
    wall_s: float = 0.0


def merge_trades(trades: dict[str, TradeArrays]) -> tuple[np.ndarray, ...]:
    """(ts, price, volume, is_bid, market index) of every market's trades in time order."""
    names = list(trades)
    ts = np.concatenate([trades[m].ts_ms for m in names])
    order = np.argsort(ts, kind="stable")  # stable: equal times keep the markets' listed order
    cat = [np.concatenate([getattr(trades[m], c) for m in names])[order]
           for c in ("ts_ms", "price", "volume", "is_bid")]
    idx = np.concatenate([np.full(len(trades[m]), i, dtype=np.int32) for i, m in enumerate(names)])[order]
    return (*cat, idx)


class PortfolioBacktest:
    """One run over several markets with one balance. Call `run()` once.

    `risk_view(bt, ts)` builds what the gate sees (trader.risk.RiskView) from this run's ledger;
    `gate` may be None (no risk rules beyond the balance)."""

    def __init__(self, configs: dict[str, StrategyConfig], trades: dict[str, TradeArrays], *,
                 krw: Decimal = Decimal(10_000_000), seed: int = 0, gate: Gate | None = None,
                 risk_view: Callable[[PortfolioBacktest, int], object] | None = None,
                 progress: ProgressFn | None = None) -> None:
        self.markets = list(configs)
        self.trades = trades
        self.krw = Decimal(krw)
        self.exchange = Exchange(krw=self.krw, markets=self.markets, seed=seed)
        self.portfolio = Portfolio(self.krw)
        self.engines = {m: StrategyEngine(configs[m]) for m in self.markets}
        self.execution = BacktestExecution(
            InProcessClient(self.exchange, clock=lambda: self.exchange.clock_ms), self.portfolio,
            on_result=self._on_result, on_fill=self._on_fill,
        )
        self.gate = gate
        self.risk_view = risk_view
        self.progress = progress
        self.fills: list[FillRecord] = []
        self.refusals: list[Refusal] = []
        self.last_prices: dict[str, float] = {}
        self._views: dict[str, PositionView] = {}
        self.max_open_seen = 0

    # ---- ledger plumbing ---------------------------------------------------------------------------
    def view(self, market: str) -> PositionView:
        v = self._views.get(market)
        if v is None:
            ex = self.execution
            v = self._views[market] = self.portfolio.view(
                market, pending=ex.blocking(market), krw_reserved=ex.reserved_krw())
        return v

    def open_positions(self) -> int:
        """Markets holding a position worth the minimum order, or with a buy in flight."""
        n = 0
        for m in self.markets:
            vol = self.portfolio.position(m).volume
            px = self.last_prices.get(m)
            if (px is not None and float(vol) * px >= _MIN_F) or self.execution.blocking(m):
                n += 1
        return n

    def equity(self) -> Decimal:
        prices = {m: sizing.to_decimal(p) for m, p in self.last_prices.items()}
        return self.portfolio.equity(prices)

    def _on_fill(self, f: Fill, intent: Intent) -> None:
        book_fill(self.portfolio, f, intent, self.fills)
        self._views.clear()  # one balance: every market's free KRW moved

    def _on_result(self, intent: Intent, filled: Decimal, funds: Decimal, ts: int) -> None:
        self._views.clear()
        avg = funds / filled if filled else None
        self.engines[intent.market].on_order_result(intent, filled, avg, ts)
        on_result = getattr(self.gate, "on_result", None)
        if on_result is not None:
            on_result(intent, filled, ts)
        self.max_open_seen = max(self.max_open_seen, self.open_positions())

    # ---- the risk gate -------------------------------------------------------------------------------
    def _admit(self, intent: Intent, ts: int) -> Intent | None:
        """The gate's verdict on an entry (exits always pass): the intent to send, or None."""
        if self.gate is None or intent.kind is not IntentKind.BUY:
            return intent
        view = self.risk_view(self, ts) if self.risk_view is not None else None
        verdict = self.gate.check(intent, view)
        if not getattr(verdict, "allowed", False):
            self._refused(ts, intent.market, str(getattr(verdict, "reason", "refused")))
            self.engines[intent.market].on_order_result(intent, _ZERO, None, ts)
            return None
        krw = getattr(verdict, "krw", None)
        if krw is None or krw == intent.krw:
            return intent
        volume = sizing.bid_volume(krw, intent.limit_price) if intent.limit_price is not None else None
        return replace(intent, krw=krw, volume=volume)

    def _refused(self, ts: int, market: str, reason: str) -> None:
        last = self.refusals[-1] if self.refusals else None
        if last is not None and last.market == market and last.reason == reason:
            self.refusals[-1] = replace(last, repeats=last.repeats + 1)  # one row per run of refusals
        else:
            self.refusals.append(Refusal(ts, market, reason))

    # ---- the loop ------------------------------------------------------------------------------------
    def run(self) -> PortfolioRunOutput:
        started = time.perf_counter()
        ts_a, px_a, vol_a, bid_a, mk_a = merge_trades(self.trades)
        n = len(ts_a)
        ts_l, px_l, vol_l = ts_a.tolist(), px_a.tolist(), vol_a.tolist()
        bid_l, mk_l = bid_a.tolist(), mk_a.tolist()
        names = self.markets
        engines = [self.engines[m] for m in names]
        ex, execution, views = self.exchange, self.execution, self._views
        on_trade = ex.on_trade
        last = self.last_prices
        progress, next_progress = self.progress, 0
        for i in range(n):
            if progress is not None and i >= next_progress:
                progress(i, n)
                next_progress = i + 200_000
            k = mk_l[i]
            market = names[k]
            t, p = ts_l[i], px_l[i]
            last[market] = p
            fills = on_trade(market, t, p, vol_l[i], bid_l[i])
            if fills:
                execution.on_trade_fills(fills, t)
            if execution.resting:
                execution.on_market_time(t, market, p)
            view = views.get(market) or self.view(market)
            intents = engines[k].on_price(t, p, view)
            for intent in intents:
                if execution.in_flight(intent.intent_id):
                    continue  # re-emitted while its limit order rests: already in hand
                admitted = self._admit(intent, t)
                if admitted is not None:
                    execution.submit(admitted, t, p)
        if progress is not None:
            progress(n, n)
        pf = self.portfolio
        return PortfolioRunOutput(
            markets=list(names), krw_start=self.krw, fills=self.fills, ticks=n, refusals=self.refusals,
            rejected=execution.rejected, final_krw=pf.krw,
            final_volumes={m: pf.position(m).volume for m in names}, last_prices=dict(last),
            max_open_seen=self.max_open_seen, wall_s=time.perf_counter() - started,
        )
