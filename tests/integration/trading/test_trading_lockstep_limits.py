"""Lockstep paper trading agrees with the backtest for LIMIT orders too.

The backtest (trader/backtest/runner.py) handles each trade in a fixed order: the trade first
fills the resting orders it crosses (a finished order's result reaches the strategy at once), a
limit order past its `timeout_s` is cancelled and its fallback sent, and only then does the
strategy see the trade; a limit order that fills when it is placed is reported before the next
trade. In paper the fill of a resting order reaches the loop on the private WebSocket, apart from
the public trade that caused it, so before the lockstep fix the strategy could see later trades
before learning of a fill and its decisions drifted from the backtest's. `demo.yaml` uses limit
orders for entries and take-profits (with a market fallback on timeout) and exits of every kind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.trading.test_trading_lockstep import _backtest_fills, _paper_fills, _slice
from trader.strategy.config import load_strategy

DEMO = Path(__file__).resolve().parents[3] / "trader" / "strategy" / "examples" / "demo.yaml"


@pytest.mark.timeout(300)
async def test_lockstep_paper_limit_fills_equal_backtest(tmp_path: Path) -> None:
    data = _slice(tmp_path, "2024-01-01", "2024-01-05")
    config = load_strategy(DEMO)
    assert {"entry", "take_profit"} <= set(config.limit_orders.use_for)
    expected = _backtest_fills(config, data)
    reasons = {r for _, r, _, _ in expected}
    assert len(expected) >= 10 and {"entry", "take_profit_1"} <= reasons, expected
    got, total = await _paper_fills(config, data, tmp_path / "paper.db")
    print(f"lockstep agreement (limit orders): {len(got)} paper fills vs {len(expected)} backtest "
          f"fills, {total} trades")
    assert got == expected
