"""Candle → trade synthesizer: a deterministic, seeded stream of trades inside each candle.

The simulator's feed and the backtest both call `synthesize_trades`, so a backtest and a paper
run over the same candles see the same trades. Each candle becomes `ticks_per_candle` trades
whose path visits open → (low, high) → close for a rising candle and open → (high, low) → close
for a falling one, with seeded positions of the extremes and seeded wiggles in between, always
inside [low, high] and on Upbit's tick grid. The volume of the candle is split among its trades
(exactly, in 1e-8 units).

A candle's trades depend only on the seed and that candle (start, OHLCV, ticks per candle,
interval): the random numbers are splitmix64 hashes of (seed, candle start, draw number) rather
than the output of one generator run along the series, so a replay or backtest that starts in
the middle of a file meets exactly the trades a run over the whole file meets there.
Everything is vectorised with numpy: a year of 1-minute candles takes under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader.marketdata.candles import infer_interval_ms
from trader.upbit.rules import KRW_TICKS_F

_TICK_LOWERS_ASC = np.array([lo for lo, _ in reversed(KRW_TICKS_F)])
_TICK_SIZES_ASC = np.array([t for _, t in reversed(KRW_TICKS_F)])


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


_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment (2**64 / golden ratio, odd)
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_TWO_M32 = 2.0 ** -32
_TWO_M53 = 2.0 ** -53


def _mix64_int(x: int) -> int:
    """splitmix64's finaliser on a Python int (for the scalar seed)."""
    x &= _MASK64
    x = ((x ^ (x >> 30)) * _MIX1) & _MASK64
    x = ((x ^ (x >> 27)) * _MIX2) & _MASK64
    return x ^ (x >> 31)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised, in place on a uint64 array (wrapping arithmetic).

    A bijection of 2**64 with full avalanche: hashing (key + counter × golden) gives the
    splitmix64 stream of `key`, i.e. independent-looking draws addressed by a counter.
    """
    x ^= x >> np.uint64(30)
    x *= np.uint64(_MIX1)
    x ^= x >> np.uint64(27)
    x *= np.uint64(_MIX2)
    x ^= x >> np.uint64(31)
    return x


def _candle_keys(seed: int, start_ts_ms: np.ndarray) -> np.ndarray:
    """One 64-bit random key per candle, a function of (seed, the candle's start) only.

    ts × golden is a bijection of uint64 and so is the finaliser: two candles of one series
    (distinct starts) never share a key.
    """
    seed_key = np.uint64(_mix64_int(int(seed) + _GOLDEN))
    keys = start_ts_ms.astype(np.int64).view(np.uint64) * np.uint64(_GOLDEN)
    keys ^= seed_key
    return _mix64(keys)


def _draws(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """uint64 draw number `counter` of each key's stream (broadcasting keys against counters)."""
    return _mix64(keys + counters * np.uint64(_GOLDEN))


def synthesize_trades(
    candles: pd.DataFrame,
    *,
    ticks_per_candle: int = 4,
    seed: int = 0,
    interval_ms: int | None = None,
) -> TradeArrays:
    """Turn normalised candles (see `candles.normalise_candles`) into trades.

    Each candle's trades are a pure function of (seed, its start, its OHLCV, ticks_per_candle,
    the interval): the random numbers come from a counter-based hash (splitmix64) keyed by the
    seed and the candle's start, not from a generator shared along the series, so synthesizing
    `candles[k:]` gives exactly the trades of the whole series from candle k on (a replay or a
    backtest started mid-file sees the same market as a run over the whole file). The first
    trade of a candle is its open, the last its close, its high and low are each visited once,
    and its trades' volumes (8 decimals, at least 1e-8 each) add up to the candle's volume
    rounded to 8 decimals.

    The interval is part of a candle's input: a caller that synthesizes a slice of a file passes
    the whole file's (`infer_interval_ms` of the file), since a slice of one candle, or two across
    a gap in the data, cannot tell it.
    """
    n_per = int(ticks_per_candle)
    if n_per < 4:
        raise ValueError("ticks_per_candle must be at least 4 (open, high, low, close)")
    n = len(candles)
    if n == 0:
        empty = np.empty(0)
        return TradeArrays(empty.astype(np.int64), empty, empty, empty.astype(bool))
    interval = int(interval_ms or infer_interval_ms(candles))
    o = candles["open"].to_numpy(np.float64)
    h = candles["high"].to_numpy(np.float64)
    lo = candles["low"].to_numpy(np.float64)
    c = candles["close"].to_numpy(np.float64)
    vol = candles["volume"].to_numpy(np.float64)
    start = candles["ts_ms"].to_numpy(np.int64)
    keys = _candle_keys(seed, start)[:, None]  # (n, 1)

    rising = c >= o
    first_ext = np.where(rising, lo, h)
    second_ext = np.where(rising, h, lo)

    # Draw layout of a candle's stream: counter 0 = the candle's own draw (extreme positions),
    # counter 1 + 2j = slot j's timing/wiggle draw, 2 + 2j = slot j's volume/side draw.
    # positions of the two extremes inside the candle: 1 <= a < b <= n_per - 2
    if n_per == 4:
        pos_a = np.ones(n, dtype=np.int64)
        pos_b = np.full(n, 2, dtype=np.int64)
    else:
        d0 = _draws(keys[:, 0], np.uint64(0))
        u_a = (d0 >> np.uint64(32)).astype(np.float64) * _TWO_M32
        u_b = (d0 & np.uint64(0xFFFFFFFF)).astype(np.float64) * _TWO_M32
        del d0
        pos_a = 1 + (u_a * (n_per - 3)).astype(np.int64)
        pos_b = pos_a + 1 + (u_b * (n_per - 2 - pos_a)).astype(np.int64)
    cols = np.arange(n_per)[None, :]  # (1, n_per)
    slot_counter = np.arange(n_per, dtype=np.uint64)[None, :] * np.uint64(2)
    # 32 high bits: time jitter, 32 low bits: price wiggle (plenty for both: the jitter scales
    # an interval of at most days in ms, the wiggle is snapped to a tick)
    d1 = _draws(keys, slot_counter + np.uint64(1))
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
        u_wiggle = (d1 & np.uint64(0xFFFFFFFF)).astype(np.float64) * _TWO_M32
        wiggle = (u_wiggle - 0.5) * 0.25 * (h - lo)[:, None]
        del u_wiggle
        is_anchor = (cols == 0) | (cols == pa) | (cols == pb) | (cols == n_per - 1)
        path = np.where(is_anchor, path, path + wiggle)
        del wiggle, is_anchor
    path = np.clip(path, lo[:, None], h[:, None])
    prices = snap_to_tick(path.ravel())
    del path
    # snapping must not leave the candle's range
    prices = np.clip(prices.reshape(n, n_per), lo[:, None], h[:, None])

    # timestamps: evenly spread slots with seeded jitter in [0, 1), strictly inside the candle
    jitter = (d1 >> np.uint64(32)).astype(np.float64) * _TWO_M32
    del d1
    offsets = ((cols + jitter) / n_per * interval).astype(np.int64)
    del jitter
    ts = (start[:, None] + offsets).ravel()
    del offsets

    # volume split: exponential weights (−log(1 − u), u from the 53 high bits) normalised per
    # candle, then shared out in whole 1e-8 units so that each candle's units add up exactly:
    # every trade gets at least one unit, the rest goes by weight (floors), and the few units
    # the floors leave over go to the candle's heaviest slot.
    d2 = _draws(keys, slot_counter + np.uint64(2))
    del slot_counter
    coin = (d2 & np.uint64(1)).astype(bool)
    weights = -np.log1p(-((d2 >> np.uint64(11)).astype(np.float64) * _TWO_M53)) + 1e-3
    del d2
    weights /= weights.sum(axis=1, keepdims=True)
    total_units = np.maximum(np.round(vol * 1e8).astype(np.int64), n_per)
    spare = (total_units - n_per)[:, None]
    units = (weights * spare).astype(np.int64)
    np.minimum(units, spare, out=units)  # float rounding must never hand out more than there is
    left = total_units - n_per - units.sum(axis=1)
    units[np.arange(n), np.argmax(weights, axis=1)] += left
    del weights
    units += 1
    volumes = units.ravel() / 1e8
    del units

    # aggressor side: tick rule inside the candle (up-tick = BID, down-tick = ASK); the candle's
    # first trade and unchanged prices toss the seeded coin (comparing the open with the
    # previous candle's close would make a candle's trades depend on the candle before it)
    diffs = np.diff(prices, axis=1, prepend=prices[:, :1]).ravel()
    prices = prices.ravel()
    is_bid = np.where(diffs > 0, True, np.where(diffs < 0, False, coin.ravel()))
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
