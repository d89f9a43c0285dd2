"""trader.metrics on small hand-computed cases: ratios, round trips, drawdown, exposure, boundaries.

Every expected number is worked out by hand in the comments (not re-derived with the module).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal as D

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.metrics import (
    day_boundaries,
    drawdown,
    exposure_pct,
    return_pct,
    risk_ratios,
    round_trips,
    step_at,
    trade_stats,
)

H = 3_600_000
DAY = 24 * H


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


@dataclass
class F:
    ts_ms: int
    side: str
    volume: D
    funds: D
    fee: D
    reason: str
    market: str = "KRW-BTC"


def _fills() -> list[F]:
    # trip 1: buy 1000+1, sell 1100−1           → P&L 1099 − 1001 = +98, held 1 h
    # trip 2: buy 1000+1, sells 500−0.5, 450−0.5 → P&L 949 − 1001 = −52, held 1 h (2 h → 3 h)
    # trip 3: bought at 5 h, still open
    return [
        F(0, "bid", D(1), D(1000), D(1), "entry"),
        F(H, "ask", D(1), D(1100), D(1), "take_profit_1"),
        F(2 * H, "bid", D(1), D(1000), D(1), "entry"),
        F(2 * H + 30 * 60_000, "ask", D("0.5"), D(500), D("0.5"), "take_profit_1"),
        F(3 * H, "ask", D("0.5"), D(450), D("0.5"), "stop_loss"),
        F(5 * H, "bid", D(1), D(900), D(1), "entry"),
    ]


def test_round_trips_cost_proceeds_pnl_and_exits() -> None:
    trips = round_trips(_fills())
    assert [(t.no, t.entry_ts, t.exit_ts) for t in trips] == [(1, 0, H), (2, 2 * H, 3 * H), (3, 5 * H, None)]
    assert [t.pnl for t in trips[:2]] == [D(98), D(-52)]
    assert (trips[1].cost, trips[1].proceeds, trips[1].fees, trips[1].fills) == (D(1001), D(949), D(2), 3)
    assert trips[1].exits == ["take_profit_1", "stop_loss"] and trips[1].exit_reason == "stop_loss"
    assert trips[0].return_pct == pytest.approx(98 / 1001 * 100) and trips[2].return_pct is None


def test_trade_stats_profit_factor_expectancy_holding_time() -> None:
    s = trade_stats(round_trips(_fills()))
    assert (s.trades, s.wins, s.losses, s.win_rate) == (2, 1, 1, 0.5)
    assert s.profit_factor == pytest.approx(98 / 52)  # 1.8846…
    assert s.expectancy == D(23)  # (98 − 52) / 2
    assert s.avg_hold_s == 3600.0  # (1 h + 1 h) / 2
    assert (s.best, s.worst, s.avg_win, s.avg_loss) == (D(98), D(-52), D(98), D(-52))


def test_trade_stats_undefined_is_none() -> None:
    none = trade_stats([])
    assert (none.win_rate, none.profit_factor, none.expectancy, none.avg_hold_s) == (None, None, None, None)
    only_win = trade_stats(round_trips(_fills()[:2]))
    assert only_win.profit_factor is None and only_win.win_rate == 1.0  # no loss: no ratio, not inf


def test_opening_holdings_open_a_trip_at_their_cost() -> None:
    # 2 coins held before the data at cost 2,002; one sell of both for 2,100 − 1 → +97
    sell = F(H, "ask", D(2), D(2100), D(1), "stop_loss")
    trips = round_trips([sell], opening={"KRW-BTC": (0, D(2), D(2002))})
    assert [(t.entry_ts, t.exit_ts, t.pnl) for t in trips] == [(0, H, D(97))]


def test_markets_are_separate_and_a_sell_without_position_is_ignored() -> None:
    fills = [F(0, "bid", D(1), D(10), D(0), "entry", "KRW-A"), F(1, "ask", D(1), D(5), D(0), "x", "KRW-B"),
             F(2, "bid", D(1), D(10), D(0), "entry", "KRW-B"), F(3, "ask", D(1), D(12), D(0), "tp", "KRW-A")]
    trips = round_trips(fills)
    assert [(t.market, t.exit_ts, t.pnl) for t in trips] == [("KRW-A", 3, D(2)), ("KRW-B", None, D(-10))]


def test_sharpe_sortino_hand_computed() -> None:
    # r = +10 %, −10 %, +10 %: mean 1/30; sample variance ((2/30)²·2 + (4/30)²)/2 = 1/75
    # sharpe = (1/30)·√75·√365 = √27375/30 = 5.51513…; downside dev = √(0.01/3) = √(1/300)
    # sortino = (1/30)·√300·√365 = √109500/30 = 11.03026…
    r = risk_ratios([100, 110, 99, 108.9], -10.0)
    assert r.days == 3
    assert r.sharpe == pytest.approx(5.515131, rel=1e-6)
    assert r.sortino == pytest.approx(11.030261, rel=1e-6)


def test_calmar_hand_computed() -> None:
    # 100 → 121 over 730 daily returns: CAGR = 1.21^(365/730) − 1 = 1.1 − 1 = 10 %; |max dd| 5 %
    e = np.linspace(100, 121, 731)
    e[300] = e[299] * 0.95  # a dip (the drawdown given is the period's own figure)
    r = risk_ratios(e, -5.0)
    assert r.cagr_pct == pytest.approx(10.0)
    assert r.calmar == pytest.approx(2.0)


def test_ratios_undefined_are_none_never_inf_or_nan() -> None:
    one_day = risk_ratios([100, 101], -1.0)  # a single daily return
    assert (one_day.sharpe, one_day.sortino, one_day.calmar) == (None, None, None)
    steady = risk_ratios([100, 101, 102.01, 103.0301], 0.0)  # +1 % every day: std 0, no loss, no dd
    assert (steady.sharpe, steady.sortino, steady.calmar) == (None, None, None)
    assert steady.cagr_pct == pytest.approx((1.01**365 - 1) * 100)
    broke = risk_ratios([100, 0, 50], -100.0)  # a boundary equity ≤ 0
    assert (broke.sharpe, broke.sortino, broke.calmar) == (None, None, None)
    assert risk_ratios([], 0.0).days == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1e-3, max_value=1e12, allow_nan=False), min_size=0, max_size=40),
       st.floats(min_value=-100, max_value=0))
def test_ratios_are_finite_or_none(equity: list[float], dd: float) -> None:
    r = risk_ratios(equity, dd)
    for x in (r.sharpe, r.sortino, r.calmar, r.cagr_pct):
        assert x is None or math.isfinite(x)
    json.dumps([r.sharpe, r.sortino, r.calmar], allow_nan=False)


def test_drawdown_is_negative_percent_and_krw() -> None:
    # peak 120, trough 90: −25 %, 30 KRW; the later 130 is a new peak, not a recovery of the fall
    assert drawdown(np.array([100.0, 120.0, 90.0, 130.0])) == (pytest.approx(-25.0), 30.0)
    assert drawdown(np.array([100.0, 101.0])) == (0.0, 0.0)
    assert drawdown(np.array([])) == (0.0, 0.0)


def test_exposure_merges_overlaps_and_clips_to_the_window() -> None:
    # covered: 0–20 (two overlapping trips) and 30–40 (still open) of 0–40 → 30 / 40
    assert exposure_pct([(0, 10), (5, 20), (30, None)], 0, 40) == 75.0
    assert exposure_pct([(-10, 5)], 0, 10) == 50.0
    assert exposure_pct([], 0, 10) == 0.0 and exposure_pct([(0, None)], 5, 5) == 0.0


def test_day_boundaries_are_0900_kst() -> None:
    start = _ms(2024, 1, 1, 0)  # 2024-01-01 09:00 KST
    assert day_boundaries(start, start + 2 * DAY).tolist() == [start, start + DAY, start + 2 * DAY]
    assert day_boundaries(start + 1, start + 2 * DAY - 1).tolist() == [start + DAY]
    assert day_boundaries(start + 1, start + 2).tolist() == []
    assert day_boundaries(start, start + DAY, day_start_hour=0).tolist() == [_ms(2024, 1, 1, 15)]


def test_step_at_and_return() -> None:
    got = step_at(np.array([10, 20]), np.array([1.0, 2.0]), np.array([5, 10, 15, 25]), 0.5)
    assert got.tolist() == [0.5, 1.0, 1.0, 2.0]
    assert step_at(np.array([], dtype=np.int64), np.array([]), np.array([1, 2]), 3.0).tolist() == [3.0, 3.0]
    assert return_pct(D(1000), D(1050)) == 5.0 and return_pct(0, 10) == 0.0
