"""`python -m trader sim --start X` and `backtest --from X` meet exactly the trades a run over the
whole file meets there — for every shipped data file, also when the slice is one candle or spans
a gap in the data (a slice cannot tell the candle interval: the whole file's is used)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trader.backtest.api as api
from trader.marketdata.candles import infer_interval_ms, load_frame
from trader.marketdata.synth import TradeArrays, synthesize_trades
from trader.sim.app import SimConfig, load_trades
from trader.strategy.config import parse_strategy

ROOT = Path(__file__).resolve().parents[3]
DATA_FILES = sorted((ROOT / "data").glob("*.parquet"))
TICKS = 8  # the default of both the simulator and the backtest (seed 0 too)


def _kst(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").tz_convert("Asia/Seoul").isoformat()


def _same(x: TradeArrays, y: TradeArrays) -> None:
    assert len(x) == len(y)
    for col in ("ts_ms", "price", "volume", "is_bid"):
        assert np.array_equal(getattr(x, col), getattr(y, col)), col


def _backtest_trades(path: Path, start: str, end: str | None, monkeypatch) -> TradeArrays:
    seen: list[TradeArrays] = []

    class Capturing(api.Backtest):
        def __init__(self, config, trades, **kw) -> None:
            seen.append(trades)
            super().__init__(config, trades, **kw)

    monkeypatch.setattr(api, "Backtest", Capturing)
    market = path.name.split("_")[0]
    config = parse_strategy({"market": market, "entry": {"immediate": True}, "exits": {},
                             "order_krw": 100_000})
    api.run_backtest(config, path, start=start, end=end)
    [trades] = seen
    return trades


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.name)
def test_sim_start_and_backtest_from_see_the_whole_files_trades(path: Path, monkeypatch) -> None:
    _kind, frame = load_frame(path)
    starts = frame["ts_ms"].to_numpy()
    whole = synthesize_trades(frame, ticks_per_candle=TICKS, seed=0)
    after_gap = int(np.flatnonzero(np.diff(starts) != infer_interval_ms(frame))[0]) + 1
    n = len(frame)
    for k in (0, 1, after_gap, n - 2, n - 1):
        # the simulator's replay from X: one candle when X is the last one
        _market, sim = load_trades(SimConfig(data=path, start=_kst(int(starts[k]))))
        assert sim is not None
        _same(sim, whole.slice(k * TICKS, len(whole)))
        # the backtest from X to the next candle (one candle), and across a gap (two candles)
        for stop in (k + 1, k + 2):
            if stop > n:
                continue
            end = _kst(int(starts[stop])) if stop < n else None
            bt = _backtest_trades(path, _kst(int(starts[k])), end, monkeypatch)
            _same(bt, whole.slice(k * TICKS, stop * TICKS))
