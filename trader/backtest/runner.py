"""The backtest loop: replayed trades → the live StrategyEngine → the in-process exchange →
the ledger, in market time, with no sockets.

Candles become trades through `synthesize_trades` (the simulator's feed uses the same); orders go
through `trader.backtest.execution` — the execution policy the live order manager runs
(`trader.execution.policy`: sizing, market-time timeouts, `on_timeout` fallbacks, superseding) —
to the simulator's own matching in process (`trader.sim.inprocess.InProcessClient` over
`trader.sim.matching.Exchange`), and fills to `trader.portfolio.Portfolio`.

The replay itself is the portfolio loop's (trader/backtest/portfolio.py) with one market: the
engine runs per trade exactly as live, and runs of trades that provably cannot trigger a rule
nor fill a resting order are skipped in bulk (`StrategyEngine.quiet` ∩ `Exchange.resting_band`,
found with numpy, replayed into the engine and the exchange exactly). `skip=False` runs every
trade through `on_tick`; both give bit-identical fills (a test compares sha256 fingerprints).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal

from trader.backtest.records import MIN_SKIP, TICKS_PER_CANDLE, FillRecord, ProgressFn, book_fill
from trader.marketdata.synth import TradeArrays
from trader.strategy.config import StrategyConfig

_ZERO = Decimal(0)


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


class Backtest:
    """One run over one market: the portfolio loop (trader/backtest/portfolio.py) with one market
    and no risk gate — one implementation of the replay, the skip and the order handling."""

    def __init__(self, config: StrategyConfig, trades: TradeArrays, *, krw: Decimal = Decimal(10_000_000),
                 seed: int = 0, skip: bool = True,
                 progress: ProgressFn | None = None) -> None:
        from trader.backtest.portfolio import PortfolioBacktest

        self.config = config
        self.market = config.market
        self.loop = PortfolioBacktest({config.market: config}, {config.market: trades}, krw=krw, seed=seed,
                                      skip=skip, progress=progress)

    def run(self) -> RunOutput:
        out = self.loop.run()
        m = self.market
        return RunOutput(market=m, krw_start=out.krw_start, fills=out.fills, ticks=out.ticks,
                         processed=out.processed, rejected=out.rejected, final_krw=out.final_krw,
                         final_volume=out.final_volumes[m], engine_state=self.loop.engines[m].state_dict(),
                         execution_stats=dict(self.loop.execution.stats), wall_s=out.wall_s)


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


__all__ = ["MIN_SKIP", "TICKS_PER_CANDLE", "Backtest", "FillRecord", "ProgressFn", "RunOutput", "book_fill",
           "progress_bar"]
