"""Performance figures, defined once: the backtest summary and the e-mailed report both call this.

Inputs are plain fills (anything with ts_ms, side, volume, funds, fee, reason and, for several
markets, market) and equity values; money is Decimal, ratios are floats. Definitions:

- round trip: from a market's first buy out of flat to the sell that makes it flat again (the
  volume is tracked from the fills, exactly). cost = Σ buys (funds + fee), plus the cost basis
  of coins held before the first fill; proceeds = Σ sells (funds − fee); P&L = proceeds − cost
  (net of every fee). A trip still open at the end has no P&L. Holding time = exit − entry.
- return % = (end equity − start equity) / start equity × 100 (0 when the start is 0).
- max drawdown: the deepest fall of the equity curve below its running peak, as a NEGATIVE
  percent (−0.62 means a 0.62 % fall; 0 when it never fell), and the same fall in KRW (≥ 0).
- exposure % = the share of the period's time with at least one round trip open.
- fees = Σ fee of the period's fills.
- win rate = winning / closed round trips (0..1; a trip with P&L 0 is neither a win nor a loss);
  profit factor = Σ winning P&L / |Σ losing P&L|; expectancy = mean P&L per closed round trip
  (KRW); average holding time = mean (exit − entry) of the closed round trips, in seconds.
- daily returns: the equity at each trading-day boundary (09:00 KST, Upbit's daily candle)
  inside the period, r_i = e_i / e_(i−1) − 1. The market trades 24/7, so a year is 365 days:
  sharpe = mean(r) / std(r, ddof=1) × √365;
  sortino = mean(r) / downside_dev × √365 with downside_dev = √(mean(min(r, 0)²));
  CAGR = (e_last / e_first)^(365 / n) − 1 over the n daily returns;
  calmar = CAGR / |max drawdown| (as fractions, the period's max drawdown above).
- undefined figures are None (JSON null), never inf or NaN: every ratio when there are fewer
  than 2 daily returns or a boundary equity ≤ 0; sharpe when std(r) is 0 (below 1e-12); sortino
  when no day lost; calmar when the drawdown is 0; profit factor when no trip lost; win rate,
  expectancy and holding time when no trip closed.
"""

from __future__ import annotations

from trader.metrics.curve import (
    day_boundaries,
    drawdown,
    exposure_pct,
    return_pct,
    step_at,
)
from trader.metrics.figures import Figures, figures
from trader.metrics.ratios import RiskRatios, TradeStats, risk_ratios, trade_stats
from trader.metrics.trips import RoundTrip, round_trips

__all__ = [
    "Figures",
    "RiskRatios",
    "RoundTrip",
    "TradeStats",
    "day_boundaries",
    "drawdown",
    "exposure_pct",
    "figures",
    "return_pct",
    "risk_ratios",
    "round_trips",
    "step_at",
    "trade_stats",
]
