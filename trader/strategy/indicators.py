"""Streaming indicators with O(1) amortised cost per tick and an exact bulk `advance`.

Each indicator has `update(ts_ms, price)` for the per-tick path and `advance(ts, prices)` that
takes numpy arrays of skipped ticks and leaves the indicator in exactly the state the same ticks
fed one by one would have left it in (this is what makes skipping safe: the backtest proves it
with a fingerprint). Moving averages are candle based (closed candles only) and summed with
`math.fsum`, which is exact and therefore independent of the order values arrived in.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

DAY_MS = 86_400_000  # Upbit's day starts 09:00 KST = 00:00 UTC


class WindowMax:
    """Highest price of the trades in (now − window, now]: a monotonic deque.

    The deque holds exactly the trades of the window that are strictly higher than every later
    trade, so its front is the window maximum; each trade is pushed and popped at most once.
    """

    __slots__ = ("px", "ts", "window_ms")

    def __init__(self, window_ms: int) -> None:
        self.window_ms = int(window_ms)
        self.ts: deque[int] = deque()
        self.px: deque[float] = deque()

    def update(self, ts_ms: int, price: float) -> float:
        px, ts = self.px, self.ts
        while px and px[-1] <= price:
            px.pop()
            ts.pop()
        px.append(price)
        ts.append(ts_ms)
        if ts[0] <= ts_ms - self.window_ms:
            cutoff = ts_ms - self.window_ms
            while ts[0] <= cutoff:  # never empties: the newest trade is inside the window
                ts.popleft()
                px.popleft()
        return px[0]

    @property
    def max(self) -> float | None:
        return self.px[0] if self.px else None

    def advance(self, ts: np.ndarray, prices: np.ndarray) -> None:
        if ts.shape[0] == 0:
            return
        cutoff = int(ts[-1]) - self.window_ms
        new_max = float(prices.max())
        px_d, ts_d = self.px, self.ts
        while px_d and px_d[-1] <= new_max:
            px_d.pop()
            ts_d.pop()
        while ts_d and ts_d[0] <= cutoff:
            ts_d.popleft()
            px_d.popleft()
        # keep new trades strictly above every later trade and inside the window
        start = int(np.searchsorted(ts, cutoff, side="right"))
        tail_ts, tail_px = ts[start:], prices[start:]
        later_max = np.empty_like(tail_px)
        later_max[-1] = -np.inf
        if tail_px.shape[0] > 1:
            later_max[:-1] = np.maximum.accumulate(tail_px[::-1])[::-1][1:]
        keep = tail_px > later_max
        ts_d.extend(tail_ts[keep].tolist())
        px_d.extend(tail_px[keep].tolist())

    def to_state(self) -> dict:
        return {"ts": list(self.ts), "px": list(self.px)}

    def load(self, d: dict) -> None:
        self.ts = deque(int(v) for v in d["ts"])
        self.px = deque(float(v) for v in d["px"])


class CandleMAs:
    """Moving averages of the last N closes of `interval_ms` candles (closed candles only).

    A candle closes when the first trade of a later candle arrives (candles exist only where
    trades do, like Upbit's). `ma(i)` is the average of the last `lengths[i]` closes, or None
    until that many candles have closed. A close is an O(1) append; an average is computed on
    demand with the exact `math.fsum` (O(N), at most once per candle thanks to the cache), so it
    does not depend on how the closes arrived — one by one or in bulk.
    """

    __slots__ = ("_cache", "bucket", "closes", "interval_ms", "last", "lengths")

    def __init__(self, interval_ms: int, lengths: tuple[int, ...]) -> None:
        self.interval_ms = int(interval_ms)
        self.lengths = tuple(lengths)
        self.closes: deque[float] = deque(maxlen=max(self.lengths))
        self.bucket: int | None = None
        self.last = 0.0
        self._cache: list[float | None] | None = None

    def mas(self) -> list[float | None]:
        cache = self._cache
        if cache is None:
            window = list(self.closes)
            n = len(window)
            cache = [math.fsum(window[n - length:]) / length if n >= length else None
                     for length in self.lengths]
            self._cache = cache
        return cache

    def ma(self, k: int = 0) -> float | None:
        return self.mas()[k]

    def update(self, ts_ms: int, price: float) -> None:
        b = ts_ms // self.interval_ms
        if b != self.bucket:
            if self.bucket is not None:
                self.closes.append(self.last)
                self._cache = None
            self.bucket = b
        self.last = price

    def next_boundary_ms(self) -> int:
        return ((self.bucket if self.bucket is not None else -1) + 1) * self.interval_ms

    def advance(self, ts: np.ndarray, prices: np.ndarray) -> None:
        if ts.shape[0] == 0:
            return
        buckets = ts // self.interval_ms
        if self.bucket is not None and int(buckets[0]) != self.bucket:
            self.closes.append(self.last)
            self._cache = None
        change = np.flatnonzero(buckets[1:] != buckets[:-1])
        if change.shape[0]:
            self.closes.extend(prices[change[-self.closes.maxlen:]].tolist())
            self._cache = None
        self.bucket = int(buckets[-1])
        self.last = float(prices[-1])

    def to_state(self) -> dict:
        return {"bucket": self.bucket, "last": self.last, "closes": list(self.closes)}

    def load(self, d: dict) -> None:
        self.bucket = None if d["bucket"] is None else int(d["bucket"])
        self.last = float(d["last"])
        self.closes = deque((float(v) for v in d["closes"]), maxlen=max(self.lengths))
        self._cache = None


class DailyCandle:
    """Today's open/high/low and the previous trading day's high/low (days start 00:00 UTC)."""

    __slots__ = ("day", "high", "low", "open", "prev_high", "prev_low")

    def __init__(self) -> None:
        self.day: int | None = None
        self.open = self.high = self.low = 0.0
        self.prev_high: float | None = None
        self.prev_low: float | None = None

    def update(self, ts_ms: int, price: float) -> None:
        d = ts_ms // DAY_MS
        if d != self.day:
            if self.day is not None:
                self.prev_high, self.prev_low = self.high, self.low
            self.day = d
            self.open = self.high = self.low = price
        elif price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price

    def next_day_ms(self) -> int:
        return ((self.day if self.day is not None else -1) + 1) * DAY_MS

    def advance(self, ts: np.ndarray, prices: np.ndarray) -> None:
        if ts.shape[0] == 0:
            return
        days = ts // DAY_MS
        last_day = int(days[-1])
        s = int(np.searchsorted(days, last_day, side="left"))
        if s == 0 and last_day == self.day:  # all within the current day
            self.high = max(self.high, float(prices.max()))
            self.low = min(self.low, float(prices.min()))
            return
        if s == 0:  # the first skipped trade opens a new day
            if self.day is not None:
                self.prev_high, self.prev_low = self.high, self.low
        else:
            prev_day = int(days[s - 1])
            s2 = int(np.searchsorted(days, prev_day, side="left"))
            seg = prices[s2:s]
            hi, lo = float(seg.max()), float(seg.min())
            if s2 == 0 and prev_day == self.day:
                hi, lo = max(self.high, hi), min(self.low, lo)
            self.prev_high, self.prev_low = hi, lo
        today = prices[s:]
        self.day = last_day
        self.open = float(today[0])
        self.high = float(today.max())
        self.low = float(today.min())

    def to_state(self) -> dict:
        return {"day": self.day, "open": self.open, "high": self.high, "low": self.low,
                "prev_high": self.prev_high, "prev_low": self.prev_low}

    def load(self, d: dict) -> None:
        self.day = d["day"]
        self.open, self.high, self.low = float(d["open"]), float(d["high"]), float(d["low"])
        self.prev_high, self.prev_low = d["prev_high"], d["prev_low"]
