"""One trial: the strategy with a point of the space, backtested on the one engine, scored.

The backtest is `trader.backtest.api.run_frame` — the same loop, execution policy and summary
as `python -m trader backtest` — fed with the cached trades of the data file (no synthesis per
trial). A window is a slice of those trades: a candle becomes exactly `ticks_per_candle` trades
and its trades depend only on that candle, so candles [a, b) are trades [a·tpc, b·tpc), the
very trades a backtest synthesizing that slice meets (the whole file's interval is passed, as
`run_backtest` does). `--from/--to` strings are KST, start ≤ candle start < end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trader.backtest.api import run_frame
from trader.marketdata.candles import MarketDataError, _kst_to_ms
from trader.optimize.cache import cached_trades, market_file
from trader.optimize.objectives import objective
from trader.optimize.space import apply
from trader.strategy.config import StrategyConfigError, parse_strategy

if TYPE_CHECKING:
    from trader.optimize.study import OptimizeSpec

# the summary figures a trial keeps (the whole summary is returned by evaluate)
KEPT_FIGURES = ("return_pct", "max_drawdown_pct", "sharpe", "sortino", "calmar", "trades", "fills",
                "win_rate_pct", "equity_end", "buy_and_hold_pct", "fingerprint", "from", "to")


@dataclass
class Evaluation:
    """A trial's outcome: value None means not scored (invalid, too few trades, undefined)."""

    value: float | None
    trades: int
    summary: dict
    params: dict
    reason: str | None = None  # why value is None
    curve: dict | None = field(default=None, repr=False)  # {"ts_ms": [...], "krw": [...]} on request


def kst_ms(text: str | None) -> int | None:
    """A user's date/time (KST unless it carries an offset) as UTC epoch ms — slice_time's rule."""
    if not text:
        return None
    return int(_kst_to_ms(pd.Series([text]))[0])


def period_ms(spec: OptimizeSpec) -> tuple[int | None, int | None]:
    return kst_ms(spec.start), kst_ms(spec.end)


def _slice(spec: OptimizeSpec, window: tuple[int, int] | None):
    mf = market_file(spec.data)
    trades = cached_trades(spec.data, seed=spec.seed, ticks_per_candle=spec.ticks_per_candle)
    lo, hi = window if window is not None else period_ms(spec)
    if mf.kind == "candles":
        ts = mf.frame["ts_ms"].to_numpy(np.int64)
        tpc = spec.ticks_per_candle
    else:
        ts = trades.ts_ms
        tpc = 1
    a = 0 if lo is None else int(np.searchsorted(ts, lo, side="left"))
    b = len(ts) if hi is None else int(np.searchsorted(ts, hi, side="left"))
    frame = mf.frame.iloc[a:b].reset_index(drop=True)
    return mf, frame, trades.slice(a * tpc, b * tpc)


def evaluate(spec: OptimizeSpec, params: dict, *, window: tuple[int, int] | None = None,
             keep_curve: bool = False) -> Evaluation:
    """Backtest the strategy with `params` over the spec's period (or `window` = (start_ms, end_ms))."""
    score = objective(spec.objective)
    try:
        config = parse_strategy(apply(spec.strategy, params), "the strategy with these parameters")
    except (StrategyConfigError, KeyError) as exc:
        return Evaluation(None, 0, {}, dict(params), reason=f"invalid strategy: {exc}")
    mf, frame, trades = _slice(spec, window)
    try:
        result = run_frame(config, mf.kind, frame, krw=Decimal(spec.krw), seed=spec.seed,
                           ticks_per_candle=spec.ticks_per_candle, interval_ms=mf.interval_ms,
                           trades=trades)
    except MarketDataError as exc:
        return Evaluation(None, 0, {}, dict(params), reason=str(exc))
    summary = result.summary
    n = int(summary["trades"])
    curve = None
    if keep_curve:
        # the period the summary's daily ratios use: first candle open (or trade) to last mark
        if mf.kind == "candles":
            first, last = int(frame["ts_ms"].iloc[0]), int(result.equity_ts[-1])
        else:
            first, last = int(trades.ts_ms[0]), int(trades.ts_ms[-1])
        curve = {"ts_ms": result.equity_ts.tolist(), "krw": result.equity.tolist(),
                 "start_ms": first, "end_ms": last}
    if n < spec.min_trades:
        return Evaluation(None, n, summary, dict(params), curve=curve,
                          reason=f"{n} round trips < min_trades {spec.min_trades}")
    value = score(summary)
    reason = None if value is not None else f"{spec.objective} is undefined for this run"
    return Evaluation(value, n, summary, dict(params), reason=reason, curve=curve)


def kept(summary: dict) -> dict[str, Any]:
    """The summary figures a study stores with each trial."""
    return {k: summary.get(k) for k in KEPT_FIGURES if k in summary}
