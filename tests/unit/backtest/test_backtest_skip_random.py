"""Skipping is exact on random walks too, with resting limit orders of every timeout mode
(the resting band and the deadline bound the skip)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.backtest.api import run_frame
from trader.marketdata.synth import random_walk_candles
from trader.strategy.config import parse_strategy


def _config(on_timeout: str, offset: int):
    return parse_strategy({
        "market": "KRW-BTC", "order_krw": 500_000,
        "entry": {"dip": {"drop": 0.004, "lookback_s": 1800}},
        "exits": {"take_profit": [{"gain": 0.004, "sell": 0.4}, {"gain": 0.008, "sell": 0.4}],
                  "stop_loss": 0.006, "trailing_stop": {"activate_at": 0.003, "trail": 0.002},
                  "sharp_drop": {"drop": 0.004, "within_s": 120},
                  "reversal": {"min_gain": 0.001, "fast_ma": 3, "slow_ma": 7, "interval": "5m"},
                  "max_hold_s": 7200},
        "limit_orders": {"use_for": ["entry", "take_profit", "reversal", "max_hold"], "offset_ticks": offset,
                         "timeout_s": 240, "on_timeout": on_timeout},
        "cooldown": {"after_sell_s": 300, "after_stop_loss_s": 900},
    })


@pytest.mark.parametrize("on_timeout", ["market", "reprice", "cancel"])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), offset=st.integers(0, 3))
def test_skip_identity_on_random_walks(on_timeout, seed, offset):
    candles = random_walk_candles(3000, seed=seed, volatility=0.002)
    cfg = _config(on_timeout, offset)
    fast = run_frame(cfg, "candles", candles, seed=seed, skip=True)
    slow = run_frame(cfg, "candles", candles, seed=seed, skip=False)
    assert len(slow.output.fills) > 5
    assert fast.fingerprint == slow.fingerprint
    assert fast.output.engine_state == slow.output.engine_state
