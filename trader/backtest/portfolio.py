"""Portfolio backtest: several markets, one KRW balance, one risk gate, the one execution policy.

Every market's candles become trades with the single-market backtest's synthesizer; the trades of
all markets are merged in time order (ties in the order the markets are listed) and replayed
through ONE in-process exchange holding every market and ONE ledger, so two markets never spend
the same won: a resting buy's KRW is reserved (`BacktestExecution.reserved_krw`) and the other
markets' strategies see only what is free. Each market runs its own `StrategyEngine`; its entries
pass the risk gate (a refusal is recorded with its reason and reported to the strategy as an
entry that filled nothing); exits are never blocked. Orders go through
`trader.backtest.execution` — the execution policy the live order manager runs.

Speed: as the single-market backtest, runs of trades that provably cannot trigger a rule nor fill
a resting order are skipped in bulk — each market has its own quiet band (its strategy's `quiet`
∩ the exchange's resting band, capped by the next limit deadline), the merged stream is scanned
with numpy for the first trade outside its market's band, and the skipped trades are replayed
into each market's engine and the exchange exactly (`skip=False` gives identical fills).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Protocol

import numpy as np

from trader.backtest.execution import BacktestExecution
from trader.backtest.records import MIN_SKIP, FillRecord, ProgressFn, book_fill
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
_NEVER = 1 << 62
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
    processed: int = 0  # trades handled one by one (the rest were provably quiet)
    wall_s: float = 0.0


def merge_trades(trades: dict[str, TradeArrays]) -> tuple[np.ndarray, ...]:
    """(ts, price, volume, is_bid, market index) of every market's trades in time order."""
    names = list(trades)
    if len(names) == 1:  # one market: its arrays as they are (a copy of a 1-minute year is ~200 MiB)
        t = trades[names[0]]
        return t.ts_ms, t.price, t.volume, t.is_bid, np.zeros(len(t), dtype=np.int8)
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
                 progress: ProgressFn | None = None, skip: bool = True) -> None:
        self.markets = list(configs)
        self.skip = skip
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
        self._gated: dict[str, int] = {}  # market -> market time its refused entry may ask again
        # a market's quiet band stays valid for all its following trades inside it (the `quiet`
        # promise), so it is recomputed only when one of its trades is handled one by one, or when
        # the ledger, the orders or the gate changed
        self._band_cache: dict[str, tuple[float, float, float]] = {}
        self.max_open_seen = 0

    # ---- ledger plumbing ---------------------------------------------------------------------------
    def view(self, market: str) -> PositionView:
        v = self._views.get(market)
        if v is None:
            ex = self.execution
            v = self.portfolio.view(market, pending=ex.blocking(market), krw_reserved=ex.reserved_krw())
            if market in self._gated:
                # its entry was refused: until the portfolio changes or the gate's retry time it has
                # no KRW to spend, so its strategy neither asks again nor stops the skipping
                v = replace(v, krw_free=_ZERO)
            self._views[market] = v
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
        self._gated.clear()  # the portfolio changed: refused entries may ask again
        self._band_cache.clear()

    def _on_result(self, intent: Intent, filled: Decimal, funds: Decimal, ts: int) -> None:
        self._views.clear()
        self._gated.clear()
        self._band_cache.clear()
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
            retry_at = getattr(self.gate, "retry_at", None)
            if retry_at is not None:
                self._gated[intent.market] = retry_at(verdict, intent.market, ts)
                self._views.pop(intent.market, None)
                self._band_cache.pop(intent.market, None)
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
    def _bands(self) -> tuple[list[float], list[float], float]:
        """Per market (in listed order) the quiet band (lo, hi) — the strategy's `quiet` promise
        intersected with the exchange's resting band — and one `until` for all: the earliest of the
        markets' `until`s and the next limit deadline (the single-market backtest's skip rule)."""
        ex, execution, cache = self.exchange, self.execution, self._band_cache
        los, his, until = [], [], math.inf
        for m in self.markets:
            band = cache.get(m)
            if band is None:
                lo, hi, u = self.engines[m].quiet(self._views.get(m) or self.view(m))
                if m in self._gated:
                    u = min(u, self._gated[m])
                if execution.resting:
                    rb_lo, rb_hi = ex.resting_band(m)
                    lo, hi = max(lo, rb_lo), min(hi, rb_hi)
                    u = min(u, execution.next_deadline_ms)
                band = cache[m] = (lo, hi, u)
            los.append(band[0])
            his.append(band[1])
            until = min(until, band[2])
        return los, his, until

    @staticmethod
    def _scan(ts: np.ndarray, px: np.ndarray, mk: np.ndarray, i: int,
              bands: tuple[list[float], list[float], float]) -> int:
        """First index ≥ i whose trade leaves its market's band, or whose time reaches `until`."""
        lo, hi, until = bands
        n = px.shape[0]
        # an int key: a float one would make numpy convert the whole int64 array on every call
        stop = n if until == math.inf else int(np.searchsorted(ts, math.ceil(until), side="left"))
        single = len(lo) == 1
        lo0, hi0 = lo[0], hi[0]
        if not (single or i >= stop):
            lo_a, hi_a = np.array(lo), np.array(hi)
        elif single and i < stop and not lo0 < px[i] < hi0:
            return i  # the common case of a failed attempt: no array work at all
        k, step = i, 512
        while k < stop:
            end = min(stop, k + step)
            seg = px[k:end]
            if single:
                out = np.flatnonzero((seg <= lo0) | (seg >= hi0))
            else:
                m = mk[k:end]
                out = np.flatnonzero((seg <= lo_a[m]) | (seg >= hi_a[m]))
            if out.shape[0]:
                return k + int(out[0])
            k = end
            step *= 4
        return stop

    def _skip(self, ts: np.ndarray, px: np.ndarray, vol: np.ndarray, mk: np.ndarray, i: int, j: int) -> None:
        """Replay the quiet trades [i, j) into every market's engine and the exchange exactly."""
        run = mk[i:j]
        for k, market in enumerate(self.markets):
            idx = np.flatnonzero(run == k)
            if idx.shape[0] == 0:
                continue
            idx += i
            self.engines[market].advance(ts[idx], px[idx])
            last = int(idx[-1])
            self.exchange.replay_quiet_trades(market, int(ts[last]), vol[idx].tolist(), float(px[last]))
            self.last_prices[market] = float(px[last])

    def run(self) -> PortfolioRunOutput:
        started = time.perf_counter()
        ts_a, px_a, vol_a, bid_a, mk_a = merge_trades(self.trades)
        n = len(ts_a)
        names = self.markets
        engines = [self.engines[m] for m in names]
        ex, execution, views, bands = self.exchange, self.execution, self._views, self._band_cache
        on_trade = ex.on_trade
        last = self.last_prices
        progress, next_progress = self.progress, 0
        i = no_skip_until = processed = 0
        while i < n:
            if progress is not None and i >= next_progress:
                progress(i, n)
                next_progress = i + 200_000
            if self.skip and i >= no_skip_until and len(last) == len(names):
                j = self._scan(ts_a, px_a, mk_a, i, self._bands())
                if j - i >= MIN_SKIP:
                    self._skip(ts_a, px_a, vol_a, mk_a, i, j)
                    i = j
                    continue
                no_skip_until = j  # those trades are handled one by one below
            k = int(mk_a[i])
            market = names[k]
            t, p = int(ts_a[i]), float(px_a[i])
            if self._gated and t >= self._gated.get(market, _NEVER):
                del self._gated[market]  # the gate's retry time: its entry may ask again
                views.pop(market, None)
            bands.pop(market, None)  # handled one by one: its band is recomputed
            last[market] = p
            processed += 1
            # the lockstep loop's order: fills, timeouts, then the strategy, then its orders
            fills = on_trade(market, t, p, float(vol_a[i]), bool(bid_a[i]))
            if fills:
                execution.on_trade_fills(fills, t)
            if execution.resting:
                execution.on_market_time(t, market, p)
            intents = engines[k].on_price(t, p, views.get(market) or self.view(market))
            for intent in intents:
                if execution.in_flight(intent.intent_id):
                    continue  # re-emitted while its limit order rests: already in hand
                admitted = self._admit(intent, t)
                if admitted is not None:
                    execution.submit(admitted, t, p)
                    bands.clear()  # orders rest or deadlines moved: every band may change
            if intents or fills:
                no_skip_until = 0
            i += 1
        if progress is not None:
            progress(n, n)
        pf = self.portfolio
        return PortfolioRunOutput(
            markets=list(names), krw_start=self.krw, fills=self.fills, ticks=n, refusals=self.refusals,
            rejected=execution.rejected, final_krw=pf.krw,
            final_volumes={m: pf.position(m).volume for m in names}, last_prices=dict(last),
            max_open_seen=self.max_open_seen, processed=processed, wall_s=time.perf_counter() - started,
        )
