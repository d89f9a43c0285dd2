"""Cooldown clocks: no re-entry for a while after a sell, longer after a stop; entries per day.

Days are Upbit's (00:00 UTC = 09:00 KST). Times are market time (tick timestamps), never the
wall clock, so a replay gives the same decisions.
"""

from __future__ import annotations

from trader.strategy.config import Cooldown
from trader.strategy.indicators import DAY_MS

# exits after which the longer `after_stop_loss_s` applies
STOP_REASONS = frozenset({"stop_loss", "sharp_drop"})


class CooldownClock:
    """When the next entry may happen, and how many entries today's day has seen."""

    __slots__ = ("after_sell_ms", "after_stop_ms", "day", "entries_today", "max_per_day", "until_ms")

    def __init__(self, cfg: Cooldown) -> None:
        self.after_sell_ms = int(cfg.after_sell_s * 1000)
        self.after_stop_ms = int(cfg.after_stop_loss_s * 1000)
        self.max_per_day = cfg.max_entries_per_day
        self.until_ms = 0
        self.day = -1
        self.entries_today = 0

    def on_sell(self, reason: str, ts_ms: int) -> None:
        wait = self.after_stop_ms if reason in STOP_REASONS else self.after_sell_ms
        self.until_ms = max(self.until_ms, ts_ms + wait)

    def on_entry(self, ts_ms: int) -> None:
        day = ts_ms // DAY_MS
        if day != self.day:
            self.day, self.entries_today = day, 0
        self.entries_today += 1

    def blocked_until(self, ts_ms: int) -> int | None:
        """None when an entry is allowed at `ts_ms`, else the market time when that may change."""
        if ts_ms < self.until_ms:
            return self.until_ms
        if self.max_per_day is not None and ts_ms // DAY_MS == self.day \
                and self.entries_today >= self.max_per_day:
            return (self.day + 1) * DAY_MS
        return None

    def to_state(self) -> dict:
        return {"until_ms": self.until_ms, "day": self.day, "entries_today": self.entries_today}

    def load(self, d: dict) -> None:
        self.until_ms = int(d["until_ms"])
        self.day = int(d["day"])
        self.entries_today = int(d["entries_today"])
