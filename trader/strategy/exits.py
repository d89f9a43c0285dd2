"""Exit rules, checked on every trade while a position is open, in priority order:
stop-loss, sharp drop, trailing stop, max hold, reversal, then the take-profit ladder.

`ExitRules.check` returns the reason of the first full exit that fires (or None); the ladder is
sized by the engine. `band` gives the price band and time inside which no exit can fire and the
only state change is the running peak (which `advance` replays).
"""

from __future__ import annotations

import math

import numpy as np

from trader.strategy.config import ExitsConfig
from trader.strategy.indicators import CandleMAs, WindowMax

INF = math.inf


class ExitRules:
    """Thresholds as float multipliers of the average buy price, plus exit indicators."""

    __slots__ = ("act_mult", "hold_ms", "rev_mult", "reversal", "sharp_mult", "sharp_win", "sl_mult",
                 "tp_mults", "tp_sells", "trail_mult")

    def __init__(self, cfg: ExitsConfig) -> None:
        self.sl_mult = 1.0 - cfg.stop_loss if cfg.stop_loss is not None else None
        sd = cfg.sharp_drop
        self.sharp_win = WindowMax(int(sd.within_s * 1000)) if sd else None
        self.sharp_mult = 1.0 - sd.drop if sd else 0.0
        ts_ = cfg.trailing_stop
        self.act_mult = 1.0 + ts_.activate_at if ts_ else None
        self.trail_mult = 1.0 - ts_.trail if ts_ else 0.0
        self.hold_ms = int(cfg.max_hold_s * 1000) if cfg.max_hold_s is not None else None
        rv = cfg.reversal
        self.reversal = CandleMAs(rv.interval_ms, (rv.fast_ma, rv.slow_ma)) if rv else None
        self.rev_mult = 1.0 + rv.min_gain if rv else 0.0
        self.tp_mults = [1.0 + s.gain for s in cfg.take_profit]
        self.tp_sells = [s.sell for s in cfg.take_profit]

    def observers(self) -> list:
        """Bound per-trade update methods of the indicators in use (the engine calls them)."""
        return [ind.update for ind in (self.sharp_win, self.reversal) if ind is not None]

    def advance(self, ts: np.ndarray, prices: np.ndarray) -> None:
        if self.sharp_win is not None:
            self.sharp_win.advance(ts, prices)
        if self.reversal is not None:
            self.reversal.advance(ts, prices)

    def check(self, ts: int, p: float, avg: float, peak: float, entry_ts: int) -> str | None:
        """Reason of the full exit that fires at this trade, or None."""
        if self.sl_mult is not None and p <= avg * self.sl_mult:
            return "stop_loss"
        if self.sharp_win is not None and p <= self.sharp_win.px[0] * self.sharp_mult:
            return "sharp_drop"
        if self.act_mult is not None and peak >= avg * self.act_mult and p <= peak * self.trail_mult:
            return "trailing_stop"
        if self.hold_ms is not None and ts - entry_ts >= self.hold_ms:
            return "max_hold"
        if self.reversal is not None and p >= avg * self.rev_mult:
            fast, slow = self.reversal.mas()
            if fast is not None and slow is not None and fast < slow:
                return "reversal"
        return None

    def band(self, p: float, avg: float, peak: float, entry_ts: int,
             tp_done: int) -> tuple[float, float, float]:
        """(lo, hi, until): for trades lo < price < hi before `until`, no exit fires."""
        lo, hi, until = -INF, INF, INF
        if self.sl_mult is not None:
            lo = max(lo, avg * self.sl_mult)
        if self.sharp_win is not None:
            # any window high H' ≤ H keeps price > H'·(1−drop) once price > H·(1−drop)
            high = max(self.sharp_win.px[0], p / (1.0 - (1.0 - self.sharp_mult) / 2))
            lo = max(lo, high * self.sharp_mult)
            hi = min(hi, high)
        if self.act_mult is not None:
            if peak >= avg * self.act_mult:
                top = max(peak, p / (1.0 - (1.0 - self.trail_mult) / 2))
                lo = max(lo, top * self.trail_mult)
                hi = min(hi, top)
            else:
                hi = min(hi, avg * self.act_mult)
        if self.hold_ms is not None:
            until = entry_ts + self.hold_ms
        if self.reversal is not None:
            hi = min(hi, avg * self.rev_mult)
        if tp_done < len(self.tp_mults):
            hi = min(hi, avg * self.tp_mults[tp_done])
        return lo, hi, until

    def to_state(self) -> dict:
        out = {}
        if self.sharp_win is not None:
            out["sharp_win"] = self.sharp_win.to_state()
        if self.reversal is not None:
            out["reversal"] = self.reversal.to_state()
        return out

    def load(self, d: dict) -> None:
        for name, sub in d.items():
            getattr(self, name).load(sub)
