"""Skipping quiet trades is an optimisation only: on the real KRW-ETH 2024 data, the trade list
(sha256 fingerprint, Jesse's way), the ledger and the engine state are identical with and
without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from trader.backtest.api import run_frame
from trader.marketdata.candles import load_candles
from trader.strategy.config import load_strategy, parse_strategy

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "trader" / "strategy" / "examples"


@pytest.fixture(scope="module")
def eth_15m():
    return load_candles(ROOT / "data" / "KRW-ETH_15m_2024.parquet")


def _configs():
    default = load_strategy(EXAMPLES / "default.yaml").model_copy(update={"market": "KRW-ETH"})
    demo = load_strategy(EXAMPLES / "demo.yaml")
    dip = parse_strategy({
        "market": "KRW-ETH", "order_fraction": 0.5,
        "entry": {"dip": {"drop": 0.02, "lookback_s": 14400}, "trend_filter": {"ma": 12, "interval": "60m"}},
        "exits": {"take_profit": [{"gain": 0.01, "sell": 0.25}, {"gain": 0.02, "sell": 0.25},
                                  {"gain": 0.03, "sell": 0.25}],
                  "stop_loss": 0.025, "sharp_drop": {"drop": 0.02, "within_s": 3600},
                  "trailing_stop": {"activate_at": 0.01, "trail": 0.01}, "max_hold_s": 172800},
        "limit_orders": {"use_for": ["entry", "take_profit", "max_hold"], "offset_ticks": 1,
                         "timeout_s": 900, "on_timeout": "reprice"},
        "cooldown": {"after_sell_s": 3600, "after_stop_loss_s": 21600, "max_entries_per_day": 2},
    })
    return {"default": default, "demo": demo, "dip-trend-reprice": dip}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "demo", "dip-trend-reprice"])
def test_skipping_gives_identical_trades_on_real_data(eth_15m, name):
    cfg = _configs()[name]
    fast = run_frame(cfg, "candles", eth_15m, skip=True)
    slow = run_frame(cfg, "candles", eth_15m, skip=False)
    assert len(slow.output.fills) > 50  # the strategy really trades on this year
    assert fast.fingerprint == slow.fingerprint
    assert fast.output.fills == slow.output.fills
    assert fast.output.final_krw == slow.output.final_krw
    assert fast.output.engine_state == slow.output.engine_state
    assert slow.output.processed == slow.output.ticks
    assert fast.output.processed < slow.output.processed / 5  # and the skipping really skips
