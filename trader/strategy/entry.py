"""Entry rules (all configured rules must agree): volatility breakout, immediate, dip, trend.

`EntryRules.ready(ts, p)` answers "would the rules buy at this trade?" and `band(p)` gives a
price band (lo, hi) plus a market time `until` inside which at least one rule provably stays
false whatever the trades do — the backtest skips such trades in bulk.
"""

from __future__ import annotations

import math

import numpy as np

from trader.strategy.config import EntryConfig
from trader.strategy.indicators import CandleMAs, DailyCandle, WindowMax

INF = math.inf
Band = tuple[float, float, float]  # lo, hi, until_ms


class EntryRules:
    """Indicators the entry rules need, and their verdict."""

    __slots__ = ("daily", "dip_mult", "dip_win", "immediate", "k", "trend", "trend_n")

    def __init__(self, cfg: EntryConfig) -> None:
        self.immediate = cfg.immediate
        vb = cfg.volatility_breakout
        self.k = vb.k if vb else None
        self.daily = DailyCandle() if vb else None
        self.dip_win = WindowMax(int(cfg.dip.lookback_s * 1000)) if cfg.dip else None
        self.dip_mult = 1.0 - cfg.dip.drop if cfg.dip else 0.0
        tf = cfg.trend_filter
        self.trend = CandleMAs(tf.interval_ms, (tf.ma,)) if tf else None
        self.trend_n = tf.ma if tf else 0

    # -- market data -------------------------------------------------------------------------
    def observers(self) -> list:
        """Bound per-trade update methods of the indicators in use (the engine calls them)."""
        return [ind.update for ind in (self.daily, self.dip_win, self.trend) if ind is not None]

    def advance(self, ts: np.ndarray, prices: np.ndarray) -> None:
        for ind in (self.daily, self.dip_win, self.trend):
            if ind is not None:
                ind.advance(ts, prices)

    # -- rules -------------------------------------------------------------------------------
    def target(self) -> float | None:
        """Volatility-breakout price of today, None before a full previous day was seen."""
        d = self.daily
        if d is None or d.prev_high is None:
            return None
        return d.open + self.k * (d.prev_high - d.prev_low)

    def ready(self, p: float) -> bool:
        d = self.daily
        if d is not None:  # the volatility-breakout target, inlined: this runs on every flat trade
            prev_high = d.prev_high
            if prev_high is None or p < d.open + self.k * (prev_high - d.prev_low):
                return False
        if self.dip_win is not None and p > self.dip_win.px[0] * self.dip_mult:
            return False
        if self.trend is not None:
            ma = self.trend.ma(0)
            if ma is None or p <= ma:
                return False
        return True

    def band(self, p: float) -> Band | None:
        """A band where the entry provably stays false, or None when none is known."""
        options: list[Band] = []
        if self.daily is not None:
            target = self.target()
            until = float(self.daily.next_day_ms())
            options.append((-INF, INF if target is None else target, until))
        if self.trend is not None:
            ma = self.trend.ma(0)
            options.append((-INF, INF if ma is None else ma, float(self.trend.next_boundary_ms())))
        if self.dip_win is not None and self.dip_win.px:
            # any window high H' ≤ H keeps p > H'·(1−drop) false for dip once p > H·(1−drop)
            high = max(self.dip_win.px[0], p / (1.0 - (1.0 - self.dip_mult) / 2))
            options.append((high * self.dip_mult, high, INF))
        best: Band | None = None
        best_room = -INF
        for lo, hi, until in options:
            if not lo < p < hi:
                continue
            room = min(p - lo, hi - p)
            if room > best_room:
                best, best_room = (lo, hi, until), room
        return best

    def to_state(self) -> dict:
        return {name: getattr(self, name).to_state() for name in ("daily", "dip_win", "trend")
                if getattr(self, name) is not None}

    def load(self, d: dict) -> None:
        for name, sub in d.items():
            getattr(self, name).load(sub)
