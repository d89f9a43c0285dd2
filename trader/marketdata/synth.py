"""Candle → trade synthesizer: a deterministic, seeded stream of trades inside each candle.

The simulator's feed and the backtest both call `synthesize_trades`, so a backtest and a paper
run over the same candles see the same trades. Each candle becomes `ticks_per_candle` trades
whose path visits open → (low, high) → close for a rising candle and open → (high, low) → close
for a falling one, with seeded positions of the extremes and seeded wiggles in between, always
inside [low, high] and on Upbit's tick grid. The volume of the candle is split among its trades.
Everything is vectorised with numpy: a year of 1-minute candles takes well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader.marketdata.candles import infer_interval_ms
from trader.upbit.rules import _KRW_TICKS_F

_TICK_LOWERS_ASC = np.array([lo for lo, _ in reversed(_KRW_TICKS_F)])
_TICK_SIZES_ASC = np.array([t for _, t in reversed(_KRW_TICKS_F)])


@dataclass(frozen=True, slots=True)
class TradeArrays:
    """Columnar trades: parallel numpy arrays, oldest first."""

    ts_ms: np.ndarray  # int64, UTC epoch ms
    price: np.ndarray  # float64, on the tick grid
    volume: np.ndarray  # float64, coin units (8 decimals)
    is_bid: np.ndarray  # bool, aggressor side (True = BID / buyer took the ask)

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def slice(self, start: int, stop: int) -> TradeArrays:
        return TradeArrays(self.ts_ms[start:stop], self.price[start:stop],
                           self.volume[start:stop], self.is_bid[start:stop])

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"ts_ms": self.ts_ms, "price": self.price,
                             "volume": self.volume, "is_bid": self.is_bid})

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> TradeArrays:
        return cls(frame["ts_ms"].to_numpy(np.int64), frame["price"].to_numpy(np.float64),
                   frame["volume"].to_numpy(np.float64), frame["is_bid"].to_numpy(bool))


def tick_sizes(prices: np.ndarray) -> np.ndarray:
    """Vectorised tick size for an array of KRW prices (2025-07-31 table)."""
    idx = np.searchsorted(_TICK_LOWERS_ASC, prices, side="right") - 1
    return _TICK_SIZES_ASC[np.maximum(idx, 0)]


def snap_to_tick(prices: np.ndarray) -> np.ndarray:
    """Round prices to the nearest tick of their band (float-safe)."""
    ticks = tick_sizes(prices)
    return np.round(np.round(prices / ticks) * ticks, 8)


def synthesize_trades(
    candles: pd.DataFrame,
    *,
    ticks_per_candle: int = 4,
    seed: int = 0,
    interval_ms: int | None = None,
) -> TradeArrays:
    """Turn normalised candles (see `candles.normalise_candles`) into trades.

    Deterministic for a given (candles, ticks_per_candle, seed). The first trade of a candle is
    its open, the last its close, and its high and low are each visited once.
    """
    n_per = int(ticks_per_candle)
    if n_per < 4:
        raise ValueError("ticks_per_candle must be at least 4 (open, high, low, close)")
    n = len(candles)
    if n == 0:
        empty = np.empty(0)
        return TradeArrays(empty.astype(np.int64), empty, empty, empty.astype(bool))
    rng = np.random.default_rng(seed)
    interval = int(interval_ms or infer_interval_ms(candles))
    o = candles["open"].to_numpy(np.float64)
    h = candles["high"].to_numpy(np.float64)
    lo = candles["low"].to_numpy(np.float64)
    c = candles["close"].to_numpy(np.float64)
    vol = candles["volume"].to_numpy(np.float64)
    start = candles["ts_ms"].to_numpy(np.int64)

    rising = c >= o
    first_ext = np.where(rising, lo, h)
    second_ext = np.where(rising, h, lo)

    # positions of the two extremes inside the candle: 1 <= a < b <= n_per - 2
    if n_per == 4:
        pos_a = np.ones(n, dtype=np.int64)
        pos_b = np.full(n, 2, dtype=np.int64)
    else:
        pos_a = rng.integers(1, n_per - 2, size=n)
        pos_b = pos_a + 1 + (rng.random(n) * (n_per - 2 - pos_a)).astype(np.int64)
    cols = np.arange(n_per)[None, :]  # (1, n_per)
    # the path runs through the anchors (0, open), (pos_a, first extreme), (pos_b, second
    # extreme), (n_per − 1, close); slot j lies on segment 0, 1 or 2 (after pos_a, after pos_b).
    # Selecting with masks is much faster than fancy indexing and gives the same numbers.
    pa, pb = pos_a[:, None], pos_b[:, None]
    after_a, after_b = cols >= pa, cols >= pb  # pos_a < pos_b, so after_b implies after_a
    o_, f_, s_, c_ = o[:, None], first_ext[:, None], second_ext[:, None], c[:, None]
    p0 = np.where(after_b, s_, np.where(after_a, f_, o_))
    p1 = np.where(after_b, c_, np.where(after_a, s_, f_))
    x0 = np.where(after_b, pb, np.where(after_a, pa, 0))
    x1 = np.where(after_b, n_per - 1, np.where(after_a, pb, pa))
    frac = (cols - x0) / np.maximum(x1 - x0, 1)
    del x0, x1, after_a, after_b  # (n, n_per) temporaries: free them early, a year is 4 M trades
    path = p0 + (p1 - p0) * frac
    del p0, p1, frac
    if n_per > 4:
        wiggle = (rng.random((n, n_per)) - 0.5) * 0.25 * (h - lo)[:, None]
        is_anchor = (cols == 0) | (cols == pos_a[:, None]) | (cols == pos_b[:, None]) | (cols == n_per - 1)
        path = np.where(is_anchor, path, path + wiggle)
        del wiggle, is_anchor
    path = np.clip(path, lo[:, None], h[:, None])
    prices = snap_to_tick(path.ravel())
    del path
    # snapping must not leave the candle's range
    prices = np.clip(prices.reshape(n, n_per), lo[:, None], h[:, None]).ravel()

    # timestamps: evenly spread slots with seeded jitter, strictly inside the candle
    jitter = rng.random((n, n_per))
    offsets = ((cols + jitter) / n_per * interval).astype(np.int64)
    del jitter
    ts = (start[:, None] + offsets).ravel()
    del offsets

    # volume split: exponential weights normalised per candle, 8 decimals
    weights = rng.exponential(1.0, size=(n, n_per)) + 1e-3
    weights /= weights.sum(axis=1, keepdims=True)
    volumes = np.round((weights * np.maximum(vol, 1e-8)[:, None]).ravel(), 8)
    volumes = np.maximum(volumes, 1e-8)
    del weights

    diffs = np.diff(prices, prepend=prices[0])
    coin = rng.random(prices.shape[0]) < 0.5
    is_bid = np.where(diffs > 0, True, np.where(diffs < 0, False, coin))
    return TradeArrays(ts.astype(np.int64), prices, volumes, is_bid)


def random_walk_candles(
    n: int,
    *,
    start_price: float = 100_000_000.0,
    interval_ms: int = 60_000,
    start_ts_ms: int = 1_704_067_200_000,  # 2024-01-01T00:00:00Z
    volatility: float = 0.0015,
    seed: int = 0,
) -> pd.DataFrame:
    """Reproducible synthetic candles (a seeded geometric random walk), on the tick grid."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, volatility, size=n)
    closes = start_price * np.exp(np.cumsum(steps))
    opens = np.r_[start_price, closes[:-1]]
    spread = np.abs(rng.normal(0.0, volatility, size=n)) * closes
    highs = np.maximum(opens, closes) + spread * rng.random(n)
    lows = np.minimum(opens, closes) - spread * rng.random(n)
    opens, closes = snap_to_tick(opens), snap_to_tick(closes)
    highs = np.maximum(snap_to_tick(highs), np.maximum(opens, closes))
    lows = np.minimum(snap_to_tick(lows), np.minimum(opens, closes))
    volumes = np.round(rng.gamma(2.0, 0.5, size=n), 8) + 1e-8
    return pd.DataFrame({
        "ts_ms": start_ts_ms + np.arange(n, dtype=np.int64) * interval_ms,
        "open": opens, "high": highs, "low": lows, "close": closes,
        "volume": volumes, "value": volumes * closes,
    })
