"""The backtest loop: replayed trades → the live StrategyEngine → the in-process exchange →
the ledger, in market time, with no sockets.

Candles become trades through `synthesize_trades` (the simulator's feed uses the same); orders go
through `trader.backtest.execution` — the execution policy the live order manager runs
(`trader.execution.policy`: sizing, market-time timeouts, `on_timeout` fallbacks, superseding) —
to the simulator's own matching in process (`trader.sim.inprocess.InProcessClient` over
`trader.sim.matching.Exchange`), and fills to `trader.portfolio.Portfolio`.

Speed: the engine runs per trade exactly as live, but runs of trades that provably cannot
trigger a rule nor fill a resting order are skipped in bulk: the band is the intersection of
`StrategyEngine.quiet` and `Exchange.resting_band`, the next trade outside it is found with
numpy, and the skipped trades are replayed into the engine (`advance`) and the exchange (its
last price, clock and volume average) exactly. `skip=False` runs every trade through
`on_tick`; both give bit-identical fills (a test compares sha256 fingerprints).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from trader.backtest.execution import BacktestExecution
from trader.domain import Fill, Intent, PositionView
from trader.marketdata.synth import TradeArrays
from trader.portfolio import Portfolio
from trader.sim.inprocess import InProcessClient
from trader.sim.matching import Exchange
from trader.strategy.config import StrategyConfig
from trader.strategy.engine import StrategyEngine

TICKS_PER_CANDLE = 8  # the simulator's default; the backtest must see the same trades
MIN_SKIP = 24  # shorter quiet runs are cheaper to feed tick by tick than in bulk
_ZERO = Decimal(0)
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One fill as the backtest reports it (money in Decimal)."""

    ts_ms: int
    side: str
    price: Decimal
    volume: Decimal
    funds: Decimal
    fee: Decimal
    reason: str
    intent_id: str
    krw_after: Decimal
    volume_after: Decimal  # of this fill's market
    market: str = ""


def book_fill(pf: Portfolio, f: Fill, intent: Intent, records: list[FillRecord]) -> None:
    """Apply a fill to the ledger and record it with the ledger's figures after it (a fill seen
    before is neither applied nor recorded again)."""
    if pf.apply_fill(f) is not None:
        records.append(FillRecord(f.ts_ms, f.side.value, f.price, f.volume, f.funds, f.fee, intent.reason,
                                  intent.intent_id, pf.krw, pf.position(f.market).volume, f.market))


@dataclass
class RunOutput:
    """Raw outcome of a run; `trader.backtest.report` turns it into the summary."""

    market: str
    krw_start: Decimal
    fills: list[FillRecord]
    ticks: int
    processed: int
    rejected: list[str] = field(default_factory=list)
    final_krw: Decimal = _ZERO
    final_volume: Decimal = _ZERO
    engine_state: dict = field(default_factory=dict)
    execution_stats: dict = field(default_factory=dict)
    wall_s: float = 0.0


def _replay_exchange(ex: Exchange, market: str, last_ts: int, vol: list[float], price: float) -> None:
    """Make the exchange look as if it saw these quiet trades one by one (no order can cross)."""
    ex.replay_quiet_trades(market, last_ts, vol, price)


class Backtest:
    """One run over one market. Call `run()` once."""

    def __init__(self, config: StrategyConfig, trades: TradeArrays, *, krw: Decimal = Decimal(10_000_000),
                 seed: int = 0, skip: bool = True,
                 progress: ProgressFn | None = None) -> None:
        self.config = config
        self.market = config.market
        self.trades = trades
        self.krw = Decimal(krw)
        self.skip = skip
        self.progress = progress
        self.exchange = Exchange(krw=self.krw, markets=[self.market], seed=seed)
        self.portfolio = Portfolio(self.krw)
        self.engine = StrategyEngine(config)
        self.fills: list[FillRecord] = []
        # orders go through the execution policy the live order manager runs (one implementation)
        self.execution = BacktestExecution(
            InProcessClient(self.exchange, clock=lambda: self.exchange.clock_ms), self.portfolio,
            on_result=self._on_result, on_fill=self._on_fill,
        )
        self._view: PositionView | None = None

    @property
    def rejected(self) -> list[str]:
        return self.execution.rejected

    # ------------------------------------------------------------------ ledger plumbing
    def view(self) -> PositionView:
        if self._view is None:
            self._view = self.portfolio.view(self.market, pending=self.execution.blocking(self.market))
        return self._view

    def _on_fill(self, f: Fill, intent: Intent) -> None:
        book_fill(self.portfolio, f, intent, self.fills)
        self._view = None

    def _on_result(self, intent: Intent, filled: Decimal, funds: Decimal, ts: int) -> None:
        self._view = None
        avg = funds / filled if filled else None
        self.engine.on_order_result(intent, filled, avg, ts)

    # ------------------------------------------------------------------ the loop
    def run(self) -> RunOutput:
        started = time.perf_counter()
        market = self.market
        tr = self.trades
        n = len(tr)
        ts_a, px_a, vol_a, bid_a = tr.ts_ms, tr.price, tr.volume, tr.is_bid
        skip = self.skip
        # Python lists make per-trade access cheap, but cost ~130 bytes a trade; when skipping,
        # only a few percent of trades are read one by one, so read those from the arrays
        ts_l: list[int] = [] if skip else ts_a.tolist()
        px_l: list[float] = [] if skip else px_a.tolist()
        vol_l: list[float] = [] if skip else vol_a.tolist()
        bid_l: list[bool] = [] if skip else bid_a.tolist()
        eng, ex, execution = self.engine, self.exchange, self.execution
        on_trade, on_price = ex.on_trade, eng.on_price
        progress = self.progress
        next_progress = 0
        processed = 0
        inf = float("inf")
        i = 0
        # after a failed skip attempt, don't retry until the band can have changed
        no_skip_until = 0
        while i < n:
            if progress is not None and i >= next_progress:
                progress(i, n)
                next_progress = i + 200_000
            if skip and i >= no_skip_until:
                view = self._view or self.view()
                lo, hi, until = eng.quiet(view)
                if execution.resting:
                    rb_lo, rb_hi = ex.resting_band(market)
                    lo = max(lo, rb_lo)
                    hi = min(hi, rb_hi)
                    until = min(until, execution.next_deadline_ms)
                if lo < px_a[i] < hi and ts_a[i] < until:
                    j = self._scan(ts_a, px_a, i, lo, hi, until, inf)
                    if j - i >= MIN_SKIP:
                        eng.advance(ts_a[i:j], px_a[i:j])
                        _replay_exchange(ex, market, int(ts_a[j - 1]), vol_a[i:j].tolist(),
                                         float(px_a[j - 1]))
                        i = j
                        continue
                    no_skip_until = j  # those trades are processed one by one below
            if skip:
                t, p, v, b = int(ts_a[i]), float(px_a[i]), float(vol_a[i]), bool(bid_a[i])
            else:
                t, p, v, b = ts_l[i], px_l[i], vol_l[i], bid_l[i]
            processed += 1
            # the order of the lockstep paper loop: (1) the trade fills resting orders, (2) orders
            # past their timeout fall back, (3) the strategy sees the trade, (4) its orders go out
            fills = on_trade(market, t, p, v, b)
            if fills:
                execution.on_trade_fills(fills, t)
            if execution.resting:
                execution.on_market_time(t, market, p)
            intents = on_price(t, p, self._view or self.view())
            if intents:
                for intent in intents:
                    if execution.in_flight(intent.intent_id):
                        continue  # re-emitted while its limit order rests: already in hand
                    execution.submit(intent, t, p)
                no_skip_until = 0
            elif fills:
                no_skip_until = 0
            i += 1
        if progress is not None:
            progress(n, n)
        pos = self.portfolio.position(market)
        return RunOutput(market=market, krw_start=self.krw, fills=self.fills, ticks=n, processed=processed,
                         rejected=self.rejected, final_krw=self.portfolio.krw, final_volume=pos.volume,
                         engine_state=eng.state_dict(), execution_stats=dict(execution.stats),
                         wall_s=time.perf_counter() - started)

    @staticmethod
    def _scan(ts: np.ndarray, px: np.ndarray, i: int, lo: float, hi: float, until: float, inf: float) -> int:
        """First index ≥ i whose price leaves (lo, hi) or whose time reaches `until`."""
        n = px.shape[0]
        # an int key: a float one would make numpy convert the whole int64 array on every call
        stop = n if until == inf else int(np.searchsorted(ts, math.ceil(until), side="left"))
        k, step = i, 512
        while k < stop:
            end = min(stop, k + step)
            seg = px[k:end]
            out = np.flatnonzero((seg <= lo) | (seg >= hi))
            if out.shape[0]:
                return k + int(out[0])
            k = end
            step *= 4
        return stop


def progress_bar(stream=None) -> ProgressFn | None:
    """A one-line progress bar on stderr, only when it is a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        took = time.perf_counter() - start
        stream.write(f"\r[{bar:<30}] {frac:6.1%} {done:,}/{total:,} trades {took:5.1f}s")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show
