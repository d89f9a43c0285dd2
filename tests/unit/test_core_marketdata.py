"""Candle loading in every accepted layout, and the deterministic candle → trade synthesizer."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.marketdata.candles import MarketDataError, infer_interval_ms, load_frame, slice_time
from trader.marketdata.synth import TradeArrays, random_walk_candles, synthesize_trades, tick_sizes
from trader.upbit.rules import tick_size_f

DATA = Path(__file__).resolve().parents[2] / "data"

PYUPBIT_CSV = """,open,high,low,close,volume,value
2024-01-01 09:00:00,3071000.0,3081000.0,3070000.0,3078000.0,139.98,430385205.6
2024-01-01 09:15:00,3077000.0,3090000.0,3076000.0,3080000.0,120.22,370448831.9
"""

REST_CSV = (
    "market,candle_date_time_utc,candle_date_time_kst,opening_price,high_price,low_price,trade_price,"
    "timestamp,candle_acc_trade_price,candle_acc_trade_volume,unit\n"
) + """KRW-ETH,2024-01-01T00:15:00,2024-01-01T09:15:00,3077000,3090000,3076000,3080000,0,370448831.9,120.22,15
KRW-ETH,2024-01-01T00:00:00,2024-01-01T09:00:00,3071000,3081000,3070000,3078000,0,430385205.6,139.98,15
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_pyupbit_and_rest_layouts_load_to_the_same_candles(tmp_path: Path) -> None:
    kind_a, a = load_frame(_write(tmp_path, "a.csv", PYUPBIT_CSV))
    kind_b, b = load_frame(_write(tmp_path, "b.csv", REST_CSV))
    assert kind_a == kind_b == "candles"
    # 09:00 KST is 00:00 UTC
    assert a["ts_ms"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z").value // 10**6
    pd.testing.assert_frame_equal(a[["ts_ms", "open", "high", "low", "close"]],
                                  b[["ts_ms", "open", "high", "low", "close"]])
    assert infer_interval_ms(a) == 15 * 60_000


def test_tick_csv_is_recognised(tmp_path: Path) -> None:
    kind, ticks = load_frame(_write(tmp_path, "t.csv", "timestamp,price,volume\n1000,5,1\n2000,6,2\n"))
    assert kind == "ticks"
    assert ticks["is_bid"].tolist() == [True, True]


def test_bad_files_fail_with_the_file_name(tmp_path: Path) -> None:
    with pytest.raises(MarketDataError, match="not found"):
        load_frame(tmp_path / "missing.csv")
    with pytest.raises(MarketDataError, match="unknown candle layout"):
        load_frame(_write(tmp_path, "x.csv", "a,b\n1,2\n"))
    with pytest.raises(MarketDataError, match="inconsistent candle"):
        bad = ",open,high,low,close,volume,value\n2024-01-01 09:00:00,5,4,3,5,1,1\n"
        load_frame(_write(tmp_path, "y.csv", bad))


def test_shipped_parquet_is_the_real_year() -> None:
    kind, candles = load_frame(DATA / "KRW-ETH_15m_2024.parquet")
    assert kind == "candles" and len(candles) == 34_152
    # one KST day of 15-minute candles: at most 96 (quiet quarters have no candle, as on Upbit)
    day = slice_time(candles, "2024-02-01", "2024-02-02")
    assert 0 < len(day) <= 96
    assert day["ts_ms"].iloc[0] >= pd.Timestamp("2024-01-31T15:00:00Z").value // 10**6


def test_synthesizer_is_deterministic_and_respects_each_candle() -> None:
    candles = load_frame(DATA / "KRW-ETH_15m_2024.parquet")[1].iloc[:500]
    a = synthesize_trades(candles, ticks_per_candle=8, seed=7)
    b = synthesize_trades(candles, ticks_per_candle=8, seed=7)
    c = synthesize_trades(candles, ticks_per_candle=8, seed=8)
    assert np.array_equal(a.price, b.price) and np.array_equal(a.ts_ms, b.ts_ms)
    assert not np.array_equal(a.ts_ms, c.ts_ms)
    prices = a.price.reshape(len(candles), 8)
    assert np.allclose(prices[:, 0], candles["open"]) and np.allclose(prices[:, -1], candles["close"])
    assert np.allclose(prices.max(axis=1), candles["high"])
    assert np.allclose(prices.min(axis=1), candles["low"])
    assert np.all(np.diff(a.ts_ms) >= 0)
    starts = candles["ts_ms"].to_numpy()
    ts = a.ts_ms.reshape(len(candles), 8)
    assert np.all(ts >= starts[:, None]) and np.all(ts < starts[:, None] + 15 * 60_000)
    # the trades' volumes, in whole 1e-8 units, add up exactly to the candle's
    units = np.round(a.volume * 1e8).astype(np.int64).reshape(len(candles), 8)
    assert np.array_equal(units.sum(axis=1), np.round(candles["volume"].to_numpy() * 1e8).astype(np.int64))
    assert units.min() >= 1
    # every price on Upbit's grid
    ticks = np.array([tick_size_f(p) for p in a.price[:200]])
    assert np.allclose(np.round(a.price[:200] / ticks), a.price[:200] / ticks)


def test_random_walk_candles_are_reproducible_and_on_grid() -> None:
    x = random_walk_candles(1000, seed=1)
    y = random_walk_candles(1000, seed=1)
    pd.testing.assert_frame_equal(x, y)
    assert (x["high"] >= x[["open", "close"]].max(axis=1)).all()
    assert (x["low"] <= x[["open", "close"]].min(axis=1)).all()
    t = tick_sizes(x["close"].to_numpy())
    assert np.allclose(np.round(x["close"] / t), x["close"] / t)


def _same_trades(x: TradeArrays, y: TradeArrays) -> bool:
    return all(np.array_equal(getattr(x, f), getattr(y, f)) for f in ("ts_ms", "price", "volume", "is_bid"))


@pytest.mark.parametrize(("ticks", "seed"), [(8, 0), (4, 3), (5, 11), (13, 2**70 + 5)])
def test_a_candles_trades_do_not_depend_on_the_candles_around_it(ticks: int, seed: int) -> None:
    """`sim --start X` / `backtest --from X` synthesize a slice: it must see the same market as
    the whole file, so candle i's trades are a function of candle i (and the seed) alone."""
    candles = load_frame(DATA / "KRW-ETH_15m_2024.parquet")[1].iloc[:3000].reset_index(drop=True)
    interval = infer_interval_ms(candles)
    whole = synthesize_trades(candles, ticks_per_candle=ticks, seed=seed, interval_ms=interval)
    for k in (1, 777, 2999):
        tail = synthesize_trades(candles.iloc[k:], ticks_per_candle=ticks, seed=seed, interval_ms=interval)
        assert _same_trades(tail, whole.slice(k * ticks, len(whole))), k
    head = synthesize_trades(candles.iloc[:1234], ticks_per_candle=ticks, seed=seed, interval_ms=interval)
    assert _same_trades(head, whole.slice(0, 1234 * ticks))
    # even with candles missing in between (every other one dropped)
    odd = synthesize_trades(candles.iloc[1::2], ticks_per_candle=ticks, seed=seed, interval_ms=interval)
    per_candle = whole.slice(0, len(whole)).to_frame().to_numpy().reshape(len(candles), ticks, 4)
    assert np.array_equal(odd.to_frame().to_numpy().reshape(-1, ticks, 4), per_candle[1::2])


def test_the_seed_and_the_candle_start_key_the_random_draws() -> None:
    candles = random_walk_candles(200, seed=4)
    a = synthesize_trades(candles, ticks_per_candle=8, seed=1)
    b = synthesize_trades(candles, ticks_per_candle=8, seed=2)
    assert not np.array_equal(a.ts_ms, b.ts_ms) and not np.array_equal(a.volume, b.volume)
    # the same OHLCV at another start time gets other draws: no repeating pattern along a series
    shifted = candles.assign(ts_ms=candles["ts_ms"] + 60_000 * 200)
    c = synthesize_trades(shifted, ticks_per_candle=8, seed=1)
    assert not np.array_equal(c.ts_ms - 60_000 * 200, a.ts_ms)
    # identical candles at different starts differ too (the key is the start, not the row index)
    same = pd.concat([candles.iloc[[0]]] * 50, ignore_index=True).assign(ts_ms=candles["ts_ms"].iloc[:50])
    d = synthesize_trades(same, ticks_per_candle=8, seed=1, interval_ms=60_000)
    assert len({tuple(row) for row in d.volume.reshape(50, 8)}) == 50


def test_synthesizer_draws_look_uniform() -> None:
    """The hash draws behave like a random generator: jitter, sides and extreme positions spread
    evenly (a bad mix would show as lumps or a biased coin)."""
    candles = random_walk_candles(20_000, seed=9)
    t = synthesize_trades(candles, ticks_per_candle=8, seed=0)
    starts = np.repeat(candles["ts_ms"].to_numpy(), 8)
    slot_ms = 60_000 / 8
    jitter = ((t.ts_ms - starts) % slot_ms) / slot_ms  # position inside its slot, ~U[0, 1)
    counts, _ = np.histogram(jitter, bins=10, range=(0, 1))
    assert counts.min() > 0.9 * len(t) / 10 and counts.max() < 1.1 * len(t) / 10
    flat = t.price.reshape(-1, 8)
    ties = np.diff(flat, axis=1, prepend=flat[:, :1]) == 0  # where the seeded coin decides
    assert 0.47 < t.is_bid.reshape(-1, 8)[ties].mean() < 0.53
    # where the high is reached (candles whose high is neither open nor close): every inner slot
    inner = candles["high"].to_numpy() > candles[["open", "close"]].max(axis=1).to_numpy()
    high_slot = np.argmax(flat[inner] == candles["high"].to_numpy()[inner, None], axis=1)
    slots, counts = np.unique(high_slot, return_counts=True)
    assert slots.tolist() == [1, 2, 3, 4, 5, 6] and counts.min() > 0.03 * inner.sum()
