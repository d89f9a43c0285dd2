"""Trade statistics of closed round trips and the risk-adjusted ratios of daily equity.

Definitions (and when each is None) are in the package docstring, `trader.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from trader.metrics.trips import RoundTrip

ZERO = Decimal(0)
DAYS_PER_YEAR = 365  # crypto trades every day of the year
_ZERO_STD = 1e-12  # a float std below this is rounding noise of equal returns, not volatility


@dataclass(frozen=True, slots=True)
class TradeStats:
    trades: int  # closed round trips
    wins: int
    losses: int
    win_rate: float | None  # 0..1
    gross_win: Decimal
    gross_loss: Decimal  # ≥ 0
    avg_win: Decimal | None
    avg_loss: Decimal | None  # ≤ 0
    profit_factor: float | None
    expectancy: Decimal | None  # mean P&L per closed round trip, KRW
    best: Decimal | None
    worst: Decimal | None
    avg_hold_s: float | None


def trade_stats(trips: Sequence[RoundTrip]) -> TradeStats:
    """Statistics of the closed round trips in `trips` (open ones are ignored)."""
    closed = [t for t in trips if t.exit_ts is not None]
    pnls = [t.pnl for t in closed]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    gross_win, gross_loss = sum(wins, ZERO), -sum(losses, ZERO)
    n = len(closed)
    holds = [t.hold_ms for t in closed if t.hold_ms is not None]
    return TradeStats(
        trades=n,
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / n if n else None,
        gross_win=gross_win,
        gross_loss=gross_loss,
        avg_win=gross_win / len(wins) if wins else None,
        avg_loss=-gross_loss / len(losses) if losses else None,
        profit_factor=float(gross_win / gross_loss) if gross_loss else None,
        expectancy=sum(pnls, ZERO) / n if n else None,
        best=max(pnls, default=None),
        worst=min(pnls, default=None),
        avg_hold_s=sum(holds) / len(holds) / 1000 if holds else None,
    )


@dataclass(frozen=True, slots=True)
class RiskRatios:
    days: int  # daily returns used
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    cagr_pct: float | None



def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def risk_ratios(day_equity: Sequence[float] | np.ndarray, max_drawdown_pct: float) -> RiskRatios:
    """Sharpe, Sortino, Calmar (and the CAGR) of the equity at consecutive day boundaries;
    `max_drawdown_pct` is the period's drawdown (≤ 0), the Calmar denominator."""
    e = np.asarray(day_equity, dtype=np.float64)
    n = len(e) - 1
    if n < 2 or not np.all(e > 0):
        return RiskRatios(max(n, 0), None, None, None, None)
    r = e[1:] / e[:-1] - 1.0
    mean = float(r.mean())
    std = float(r.std(ddof=1))
    ann = math.sqrt(DAYS_PER_YEAR)
    sharpe = _finite(mean / std * ann) if std > _ZERO_STD else None
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    sortino = _finite(mean / downside * ann) if downside > 0 else None
    try:
        cagr: float | None = _finite(float(e[-1] / e[0]) ** (DAYS_PER_YEAR / n) - 1.0)
    except OverflowError:  # a huge gain over few days: no meaningful annual figure
        cagr = None
    dd = abs(max_drawdown_pct) / 100
    calmar = _finite(cagr / dd) if cagr is not None and dd > 0 else None
    return RiskRatios(n, sharpe, sortino, calmar, None if cagr is None else cagr * 100)
