"""Backtest order handling: market fills through the simulator, limit timeouts in market time,
ledger and exchange agreeing, summary metrics."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.unit.backtest.helpers import backtest, reasons
from trader.upbit.rules import FEE_RATE

M = 1_000_000.0


def test_market_entry_and_stop_loss_go_through_the_exchange_and_ledger():
    res = backtest([100 * M, 99 * M, 96.9 * M, 96.9 * M], exits={"stop_loss": 0.03},
                   cooldown={"after_stop_loss_s": 60})
    assert reasons(res) == [("bid", "entry"), ("ask", "stop_loss")]
    fills = res.output.fills
    assert all(f.fee == f.funds * FEE_RATE for f in fills)
    assert res.output.final_volume == 0
    # ledger KRW = start − buy cost + sell proceeds, exactly
    expected = Decimal(10_000_000) - (fills[0].funds + fills[0].fee) + (fills[1].funds - fills[1].fee)
    assert res.output.final_krw == expected
    assert res.summary["trades"] == 1 and res.summary["wins"] == 0


@pytest.mark.parametrize("skip", [True, False])
def test_limit_entry_timeout_falls_back_to_market(skip):
    # a bid 50 ticks under the price never fills on a flat path; after 30 s it goes at market
    prices = [100 * M] * 40
    res = backtest(prices, limit_orders={"use_for": ["entry"], "offset_ticks": 50, "timeout_s": 30,
                                         "on_timeout": "market"}, skip=skip)
    [fill] = res.output.fills
    assert fill.reason == "entry" and fill.ts_ms - res.output.fills[0].ts_ms == 0
    assert fill.ts_ms == 1_704_067_200_000 + 30_000  # the trade at the deadline, market time
    assert fill.price >= Decimal(100 * M)  # took the ask, not the resting bid


def test_limit_entry_cancel_keeps_nothing_and_retries_later():
    prices = [100 * M] * 35
    res = backtest(prices, limit_orders={"use_for": ["entry"], "offset_ticks": 50, "timeout_s": 30,
                                         "on_timeout": "cancel"})
    assert res.output.fills == []
    # the cancelled try is over; the next one (decided at the timeout's trade) rests under a new id
    assert res.output.engine_state["outstanding"] == {"entry": "KRW-BTC:1704067230000:entry"}


def test_limit_entry_fills_when_the_market_trades_through_it():
    prices = [100 * M, 100 * M, 99.9 * M, 99.8 * M, 99.9 * M]
    res = backtest(prices, limit_orders={"use_for": ["entry"], "offset_ticks": 100, "timeout_s": 60})
    [fill] = res.output.fills
    assert fill.price == Decimal(99_900_000) and fill.ts_ms == 1_704_067_202_000  # maker at its price


def test_limit_reprice_chases_the_price():
    prices = [100 * M] * 5 + [101 * M] * 40
    res = backtest(prices, limit_orders={"use_for": ["entry"], "offset_ticks": 0, "timeout_s": 10,
                                         "on_timeout": "reprice"})
    assert [f.reason for f in res.output.fills] == ["entry"]


def test_ladder_take_profit_as_limit_orders_then_trailing():
    up = [100 * M, 100 * M] + [p * M for p in (101, 102, 103, 103.1, 104, 105, 106, 106.1, 107, 105.3, 105)]
    res = backtest(up, exits={"take_profit": [{"gain": 0.03, "sell": 0.3}, {"gain": 0.06, "sell": 0.3}],
                              "trailing_stop": {"activate_at": 0.02, "trail": 0.015}},
                   limit_orders={"use_for": ["take_profit"], "timeout_s": 5, "on_timeout": "market"},
                   cooldown={"after_sell_s": 60})
    assert [r for _, r in reasons(res)] == ["entry", "take_profit_1", "take_profit_2", "trailing_stop"]
    fills = res.output.fills
    # the 103 M ask rested and filled as maker when 103.1 M printed through it
    assert fills[1].price == Decimal(103_000_000) and fills[1].ts_ms == 1_704_067_205_000
    assert fills[1].volume == fills[2].volume == Decimal("0.003")
    assert fills[3].volume == Decimal("0.004") and res.output.final_volume == 0


def test_buy_and_hold_comparison_and_exposure():
    prices = [100 * M, 101 * M, 102 * M, 110 * M]
    res = backtest(prices, krw=1_000_000, order_krw=990_000)
    s = res.summary
    assert s["exposure_pct"] == 100.0 and s["open_trades"] == 1
    assert s["buy_and_hold_pct"] == pytest.approx((1.1 * (1 - 0.0005) / (1 + 0.0005) - 1) * 100)
    assert 8.0 < s["return_pct"] < s["buy_and_hold_pct"]


def test_exchange_and_ledger_agree_at_the_end():
    import numpy as np

    rng = np.random.default_rng(3)
    prices = list(np.round(100 * M * np.exp(np.cumsum(rng.normal(0, 0.004, 3000))), -3))
    res = backtest(prices, exits={"take_profit": [{"gain": 0.01, "sell": 0.5}], "stop_loss": 0.01,
                                  "trailing_stop": {"activate_at": 0.005, "trail": 0.004}},
                   limit_orders={"use_for": ["entry", "take_profit"], "timeout_s": 20})
    assert len(res.output.fills) > 10
    krw = res.output.fills[-1].krw_after
    assert krw == res.output.final_krw


def test_replaying_quiet_trades_leaves_the_exchange_as_feeding_them_one_by_one():
    from trader.sim.matching import Exchange

    ts = [1_704_067_200_000 + i * 700 for i in range(50)]
    px = [100 * M + (i % 7) * 1000 for i in range(50)]
    vol = [0.01 * (1 + i % 5) for i in range(50)]
    one = Exchange(krw=Decimal(10**7), markets=["KRW-BTC"])
    bulk = Exchange(krw=Decimal(10**7), markets=["KRW-BTC"])
    for t, p, v in zip(ts, px, vol, strict=True):
        one.on_trade("KRW-BTC", t, p, v, True)
    bulk.on_trade("KRW-BTC", ts[0], px[0], vol[0], True)
    bulk.replay_quiet_trades("KRW-BTC", ts[-1], vol[1:], px[-1])
    assert one.last_price("KRW-BTC") == bulk.last_price("KRW-BTC")
    assert one.clock_ms == bulk.clock_ms
    assert one.orderbook_units("KRW-BTC") == bulk.orderbook_units("KRW-BTC")  # sizes scale with volume


@pytest.mark.parametrize("skip", [True, False])
def test_a_stop_fires_while_a_take_profit_limit_rests_and_cancels_it_first(skip):
    # as in the live loop: a resting take-profit does not silence the stop-loss (it used to wait
    # for the take-profit's 300 s timeout and its market fallback, far below the stop)
    fall = [100 * M, 100 * M, 103 * M, 102.5 * M, 101 * M, 99 * M, 96.5 * M] + [90 * M] * 400
    res = backtest(fall, exits={"take_profit": [{"gain": 0.03, "sell": 0.5}], "stop_loss": 0.03},
                   limit_orders={"use_for": ["take_profit"], "timeout_s": 300, "on_timeout": "market"},
                   cooldown={"after_sell_s": 3600, "after_stop_loss_s": 3600}, skip=skip)
    assert reasons(res) == [("bid", "entry"), ("ask", "stop_loss")]
    stop = res.output.fills[1]
    assert stop.price >= Decimal(96_000_000) and stop.ts_ms == 1_704_067_206_000
    assert res.output.final_volume == 0
    assert res.output.rejected == []
