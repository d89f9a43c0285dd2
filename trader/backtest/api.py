"""`run_backtest`: load market data, synthesize trades, run the loop, summarise — one call."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from trader.backtest.report import equity_curve, round_trips, summarize
from trader.backtest.runner import TICKS_PER_CANDLE, Backtest, ProgressFn, RunOutput
from trader.marketdata.candles import (
    MarketDataError,
    check_data_market,
    infer_interval_ms,
    load_frame,
    slice_time,
)
from trader.marketdata.synth import TradeArrays, synthesize_trades
from trader.metrics import RoundTrip
from trader.strategy.config import StrategyConfig, load_strategy

MARK_MS_FOR_TICKS = 60_000  # equity is marked once a minute when the input is raw ticks


@dataclass
class BacktestResult:
    summary: dict
    output: RunOutput
    trips: list[RoundTrip]
    equity_ts: np.ndarray
    equity: np.ndarray

    @property
    def fingerprint(self) -> str:
        return self.summary["fingerprint"]

    def to_json(self) -> dict:
        from trader.backtest.report import fill_rows, trip_row

        return {"summary": self.summary, "trades": [trip_row(t) for t in self.trips],
                "fills": fill_rows(self.output.fills),
                "equity": {"ts_ms": self.equity_ts.tolist(), "krw": self.equity.tolist()},
                "rejected_orders": self.output.rejected}


def _ticks_marks(ticks: TradeArrays) -> tuple[np.ndarray, np.ndarray]:
    bucket = ticks.ts_ms // MARK_MS_FOR_TICKS
    last = np.r_[np.flatnonzero(bucket[1:] != bucket[:-1]), len(ticks) - 1]
    return (bucket[last] + 1) * MARK_MS_FOR_TICKS, ticks.price[last]


def run_frame(config: StrategyConfig, kind: str, frame: pd.DataFrame, *, krw: Decimal = Decimal(10_000_000),
              seed: int = 0, ticks_per_candle: int = TICKS_PER_CANDLE, skip: bool = True,
              progress: ProgressFn | None = None, interval_ms: int | None = None,
              trades: TradeArrays | None = None) -> BacktestResult:
    """Backtest over an already-loaded frame: kind 'candles' (normalised) or 'ticks'.

    `interval_ms` is the candle interval of the file the frame was cut from (a short slice
    cannot tell it); inferred from the frame when not given. `trades`, when given, are the
    frame's candles already synthesized with (seed, ticks_per_candle, interval) — the optimiser's
    cache — and are used instead of synthesizing again."""
    if len(frame) == 0:
        raise MarketDataError("no market data in the chosen period")
    if kind == "candles":
        interval = interval_ms or infer_interval_ms(frame)
        if trades is None:
            trades = synthesize_trades(frame, ticks_per_candle=ticks_per_candle, seed=seed,
                                       interval_ms=interval)
        mark_ts = frame["ts_ms"].to_numpy(np.int64) + interval
        mark_px = frame["close"].to_numpy(np.float64)
        candles: int | None = len(frame)
        # the period starts at the first candle's open (a 09:00 KST day boundary for daily ratios)
        start_ms = int(frame["ts_ms"].iloc[0])
        end_ms = int(mark_ts[-1])
    else:
        if trades is None:
            trades = TradeArrays.from_frame(frame)
        mark_ts, mark_px = _ticks_marks(trades)
        candles = None
        start_ms = int(trades.ts_ms[0])
        end_ms = int(trades.ts_ms[-1])
    out = Backtest(config, trades, krw=krw, seed=seed, skip=skip, progress=progress).run()
    first, last = float(trades.price[0]), float(trades.price[-1])
    summary = summarize(out, mark_ts, mark_px, first_price=first, last_price=last, candles=candles,
                        start_ms=start_ms, end_ms=end_ms)
    equity, _ = equity_curve(out, mark_ts, mark_px)
    return BacktestResult(summary, out, round_trips(out.fills, out.market), mark_ts, equity)


def run_backtest(strategy: str | Path | StrategyConfig, data: str | Path, *, start: str | None = None,
                 end: str | None = None, krw: Decimal = Decimal(10_000_000), seed: int = 0,
                 ticks_per_candle: int = TICKS_PER_CANDLE, skip: bool = True,
                 progress: ProgressFn | None = None) -> BacktestResult:
    """Backtest a strategy file (or config) over a candle/tick file; dates are KST. A file of
    another market than the strategy's is refused (golden.py replaces the market by the file's)."""
    config = strategy if isinstance(strategy, StrategyConfig) else load_strategy(strategy)
    check_data_market(config.market, data)
    kind, frame = load_frame(data)
    # the whole file's interval: the simulator's --start replay synthesizes with it too
    interval = infer_interval_ms(frame) if kind == "candles" else None
    frame = slice_time(frame, start, end)
    return run_frame(config, kind, frame, krw=krw, seed=seed, ticks_per_candle=ticks_per_candle,
                     skip=skip, progress=progress, interval_ms=interval)
