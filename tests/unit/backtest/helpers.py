"""One-line backtests over hand-made trade paths (tick frames) for the backtest tests."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from trader.backtest.api import BacktestResult, run_frame
from trader.strategy.config import parse_strategy

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def ticks(prices: list[float], *, step_ms: int = 1000, volume: float = 1.0) -> pd.DataFrame:
    px = np.asarray(prices, dtype=np.float64)
    return pd.DataFrame({"ts_ms": T0 + np.arange(len(px), dtype=np.int64) * step_ms, "price": px,
                         "volume": np.full(len(px), volume),
                         "is_bid": np.r_[True, np.diff(px) >= 0]})


def backtest(prices: list[float], *, entry: dict | None = None, exits: dict | None = None,
             limit_orders: dict | None = None, cooldown: dict | None = None, krw: int = 10_000_000,
             order_krw: int = 1_000_000, step_ms: int = 1000, skip: bool = True,
             market: str = "KRW-BTC") -> BacktestResult:
    data: dict = {"market": market, "order_krw": order_krw, "entry": entry or {"immediate": True},
                  "exits": exits or {}}
    if limit_orders:
        data["limit_orders"] = limit_orders
    if cooldown:
        data["cooldown"] = cooldown
    return run_frame(parse_strategy(data), "ticks", ticks(prices, step_ms=step_ms), krw=Decimal(krw),
                     skip=skip)


def reasons(result: BacktestResult) -> list[tuple[str, str]]:
    return [(f.side, f.reason) for f in result.output.fills]
