"""A backtest `--from` a date, and a simulator `--start`ed at one, meet the same market as a run
over the whole file: the synthesized trades of a candle do not depend on the candles before it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trader.backtest.api import run_backtest, run_frame
from trader.marketdata.candles import load_candles
from trader.marketdata.synth import synthesize_trades
from trader.sim.app import SimConfig, load_trades
from trader.strategy.config import load_strategy

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"
FROM, TO = "2024-03-04", "2024-03-18"  # KST
FROM_MS = int(pd.Timestamp("2024-03-04T00:00:00+09:00").value // 10**6)
TO_MS = int(pd.Timestamp("2024-03-18T00:00:00+09:00").value // 10**6)


def _whole_file_trades() -> pd.DataFrame:
    # the default seed and ticks per candle of both the backtest and the simulator
    return synthesize_trades(load_candles(DATA), ticks_per_candle=8, seed=0).to_frame()


def test_backtest_from_a_date_trades_the_whole_files_trades_of_that_period() -> None:
    whole = _whole_file_trades()
    period = whole[(whole["ts_ms"] >= FROM_MS) & (whole["ts_ms"] < TO_MS)].reset_index(drop=True)
    config = load_strategy(DEMO)
    sliced = run_backtest(config, DATA, start=FROM, end=TO)
    # the same trades fed as recorded ticks: the engine and the matching see identical input
    replayed = run_frame(config, "ticks", period)
    assert sliced.summary["ticks"] == len(period) and len(sliced.output.fills) > 5
    assert sliced.output.fills == replayed.output.fills
    assert sliced.fingerprint == replayed.fingerprint


def test_simulator_started_at_a_date_replays_the_whole_files_trades_from_there() -> None:
    whole = _whole_file_trades()
    _market, trades = load_trades(SimConfig(data=DATA, start=FROM))
    assert trades is not None
    tail = whole[whole["ts_ms"] >= FROM_MS].reset_index(drop=True)
    assert len(trades) == len(tail)
    for col in ("ts_ms", "price", "volume", "is_bid"):
        assert np.array_equal(trades.to_frame()[col].to_numpy(), tail[col].to_numpy()), col
