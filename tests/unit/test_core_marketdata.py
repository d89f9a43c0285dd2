"""Candle loading in every accepted layout, and the deterministic candle → trade synthesizer."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.marketdata.candles import MarketDataError, infer_interval_ms, load_frame, slice_time
from trader.marketdata.synth import random_walk_candles, synthesize_trades, tick_sizes
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
    assert np.allclose(a.volume.reshape(len(candles), 8).sum(axis=1), candles["volume"], rtol=1e-6)
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
