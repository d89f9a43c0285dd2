"""`figures`: every headline figure of one period in one call (what both reports print)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from trader.metrics.curve import drawdown, exposure_pct, return_pct
from trader.metrics.ratios import RiskRatios, TradeStats, risk_ratios, trade_stats
from trader.metrics.trips import RoundTrip

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Figures:
    return_pct: float
    max_drawdown_pct: float  # ≤ 0: −0.62 is a 0.62 % fall
    max_drawdown_krw: float  # ≥ 0
    exposure_pct: float
    fees: Decimal
    trades: TradeStats  # of the round trips closed in the period
    risk: RiskRatios


def figures(
    *,
    closed: Sequence[RoundTrip],
    trips: Iterable[RoundTrip],
    fills: Iterable[Any],
    start_ms: int,
    end_ms: int,
    start_equity: Decimal | float,
    end_equity: Decimal | float,
    curve: np.ndarray,
    day_equity: np.ndarray | Sequence[float],
) -> Figures:
    """`closed`: the round trips that count in the period (closed in it); `trips`: every trip
    (for exposure); `fills`: the period's fills (fees); `curve`: equity in time order from the
    period start to its end (framed by the start and end equity); `day_equity`: the equity at
    each 09:00 KST boundary inside the period."""
    dd_pct, dd_krw = drawdown(curve)
    return Figures(
        return_pct=return_pct(start_equity, end_equity),
        max_drawdown_pct=dd_pct,
        max_drawdown_krw=dd_krw,
        exposure_pct=exposure_pct(((t.entry_ts, t.exit_ts) for t in trips), start_ms, end_ms),
        fees=sum((f.fee for f in fills), ZERO),
        trades=trade_stats(closed),
        risk=risk_ratios(day_equity, dd_pct),
    )
