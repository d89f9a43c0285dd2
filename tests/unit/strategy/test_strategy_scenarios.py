"""Scenario tests: small price paths with the trades each rule (and their interplay) must make."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.unit.strategy.helpers import MARKET, T0, Book, make_config, reasons, run
from trader.domain import IntentKind, PositionView, Tick
from trader.strategy.engine import StrategyEngine

M = 1_000_000.0  # prices in millions of KRW (BTC-like, 1,000-won ticks)
LADDER = [{"gain": 0.03, "sell": 0.3}, {"gain": 0.06, "sell": 0.3}]


def engine(**kw) -> StrategyEngine:
    return StrategyEngine(make_config(**kw))


def px(*values: float) -> list[float]:
    return [v * M for v in values]


def test_ladder_then_trailing_sells_steps_of_entry_volume_then_the_rest():
    eng = engine(exits={"take_profit": LADDER, "trailing_stop": {"activate_at": 0.02, "trail": 0.015}})
    book, _ = run(eng, px(100, 101, 103, 104, 106, 107, 105.3))
    assert reasons(book) == ["entry", "take_profit_1", "take_profit_2", "trailing_stop"]
    entry_vol = book.trades[0][3]
    assert book.trades[1][3] == book.trades[2][3] == Decimal("0.3") * entry_vol
    assert book.trades[3][3] == entry_vol - 2 * book.trades[1][3]  # 0.4 left for the trailing stop
    assert book.trades[3][2] == "sell" and book.volume == 0


def test_trailing_waits_for_activation_and_follows_the_peak():
    eng = engine(exits={"trailing_stop": {"activate_at": 0.02, "trail": 0.015}})
    # 101.5 never activates; 98 is below entry but no stop-loss configured
    book, _ = run(eng, px(100, 101.5, 98, 101, 102, 105, 104, 103.5, 103.4))
    assert reasons(book) == ["entry", "trailing_stop"]
    assert book.trades[-1][4] == Decimal("103400000.0")  # 105 × 0.985 = 103.425


def test_stop_loss_before_any_take_profit():
    eng = engine(exits={"take_profit": LADDER, "stop_loss": 0.03})
    book, intents = run(eng, px(100, 102, 99, 97.1, 97))
    assert reasons(book) == ["entry", "stop_loss"]
    assert intents[-1].kind is IntentKind.SELL and intents[-1].limit_price is None


def test_stop_loss_is_market_even_when_limits_are_configured():
    eng = engine(exits={"take_profit": LADDER, "stop_loss": 0.03},
                 limit_orders={"use_for": ["entry", "take_profit"], "timeout_s": 10})
    _, intents = run(eng, px(100, 103, 96))
    assert [i.reason for i in intents] == ["entry", "take_profit_1", "stop_loss"]
    assert intents[0].limit_price is not None and intents[1].limit_price is not None
    assert intents[2].limit_price is None


def test_sharp_drop_inside_the_window_only():
    exits = {"sharp_drop": {"drop": 0.03, "within_s": 60}}
    book, _ = run(engine(exits=exits), px(100, 101, 102, 99, 98.9))
    assert reasons(book) == ["entry", "sharp_drop"]  # 102 × 0.97 = 98.94
    slow, _ = run(engine(exits=exits), px(100, 101, 102, 99, 98.9), step_ms=61_000)
    assert reasons(slow) == ["entry"]  # same fall spread over minutes is no crash


def test_reversal_needs_gain_and_fast_ma_below_slow_ma():
    eng = engine(exits={"reversal": {"min_gain": 0.01, "fast_ma": 2, "slow_ma": 3, "interval": "1m"}})
    # one trade per minute = one candle each; closes rise then turn down
    book, _ = run(eng, px(100, 101, 102, 103, 104, 103, 102.5, 102), step_ms=60_000)
    assert reasons(book) == ["entry", "reversal"]
    # closes 103,104,103 → fast 103.5 ≥ slow 103.33; closes 104,103,102.5 → fast 102.75 < 103.17
    assert book.trades[-1][4] == Decimal("102000000.0")


def test_reversal_does_not_fire_below_min_gain():
    eng = engine(exits={"reversal": {"min_gain": 0.05, "fast_ma": 2, "slow_ma": 3, "interval": "1m"}})
    book, _ = run(eng, px(100, 101, 102, 103, 104, 103, 102.5, 102), step_ms=60_000)
    assert reasons(book) == ["entry"]


def test_cooldown_after_stop_blocks_reentry_until_it_expires():
    eng = engine(exits={"stop_loss": 0.03}, cooldown={"after_sell_s": 10, "after_stop_loss_s": 3600})
    prices = px(100, 96) + [96 * M] * 3598 + px(96, 96)  # one trade a second
    book, _ = run(eng, prices)
    entries = [t[0] for t in book.trades if t[1] == "entry"]
    assert reasons(book) == ["entry", "stop_loss", "entry"]
    assert entries[1] - book.trades[1][0] == 3_600_000


def test_max_entries_per_day_then_next_day_resets():
    eng = engine(exits={"take_profit": [{"gain": 0.01, "sell": 1.0}]},
                 cooldown={"max_entries_per_day": 2})
    prices = px(100, 101.5, 100, 101.5, 100, 101.5, 100)
    book, _ = run(eng, prices, step_ms=3_600_000)  # hourly: 7 trades on day 1
    assert reasons(book) == ["entry", "take_profit_1", "entry", "take_profit_1"]
    book2, _ = run(eng, px(100), book=book, t0=T0 + 86_400_000)
    assert reasons(book2)[-1] == "entry"


def test_dust_step_is_merged_into_the_next_step():
    # 12,000 KRW entry: step 1 (30 % = 3,708 KRW) is below the minimum → sold with step 2
    eng = engine(order_krw=12_000, exits={"take_profit": LADDER})
    book, _ = run(eng, px(100, 103, 106))
    assert reasons(book) == ["entry", "take_profit_2"]
    assert book.trades[1][3] == Decimal("0.00007200")  # 0.6 × 0.00012
    assert book.trades[1][2] == "sell_partial"


def test_dust_remainder_is_sold_with_the_last_partial():
    # 20,000 KRW entry, 80 % step: the 20 % left (4,120 KRW) would be unsellable dust
    eng = engine(order_krw=20_000, exits={"take_profit": [{"gain": 0.03, "sell": 0.8}]})
    book, intents = run(eng, px(100, 103))
    assert reasons(book) == ["entry", "take_profit_1"]
    assert intents[1].kind is IntentKind.SELL and book.volume == 0


def test_dust_position_counts_as_flat_and_is_bought_on_top_of():
    eng = engine()
    book = Book(volume=Decimal("0.00001"), avg=Decimal(90 * M))  # 1,000 KRW of dust
    book, _ = run(eng, px(100), book=book)
    assert reasons(book) == ["entry"]
    run(eng, px(100), book=book)
    assert eng.entry_volume == book.volume  # the ladder counts the dust in


def test_volatility_breakout_uses_previous_day_range_and_today_open():
    eng = engine(entry={"volatility_breakout": {"k": 0.5}})
    day1 = px(100, 110, 100, 105)  # range 10 M
    book, _ = run(eng, day1, step_ms=3_600_000)
    assert reasons(book) == []
    # day 2 opens at 105: target 105 + 0.5 × 10 = 110
    book, _ = run(eng, px(105, 109.9, 110), book=book, t0=T0 + 86_400_000)
    assert reasons(book) == ["entry"] and book.trades[0][4] == Decimal("110000000.0")


def test_dip_entry_after_drop_from_window_high():
    eng = engine(entry={"dip": {"drop": 0.03, "lookback_s": 3600}})
    book, _ = run(eng, px(100, 99, 97.1, 97))
    assert reasons(book) == ["entry"] and book.trades[0][4] == Decimal("97000000.0")


def test_trend_filter_blocks_until_price_above_ma():
    eng = engine(entry={"immediate": True, "trend_filter": {"ma": 2, "interval": "1m"}})
    book, _ = run(eng, px(100, 99, 98, 97, 99), step_ms=60_000)
    # closes 98, 97 → MA 97.5 < 99
    assert reasons(book) == ["entry"] and book.trades[0][4] == Decimal("99000000.0")


def test_max_hold_sells_after_holding_long_enough():
    eng = engine(exits={"max_hold_s": 5})
    book, _ = run(eng, px(100, 100, 100, 100, 100, 100))
    assert reasons(book) == ["entry", "max_hold"] and book.trades[1][0] - book.trades[0][0] == 5000


def test_no_intent_while_pending():
    eng = engine(exits={"stop_loss": 0.03})
    pending = PositionView(MARKET, Decimal(0), Decimal(0), Decimal(10**6), pending=True)
    assert eng.on_tick(Tick(MARKET, T0, 100 * M, 1.0), pending) == []


def test_limit_entry_carries_price_volume_timeout_and_retries_with_new_id():
    eng = engine(limit_orders={"use_for": ["entry"], "offset_ticks": 2, "timeout_s": 30,
                               "on_timeout": "cancel"})
    view = PositionView(MARKET, Decimal(0), Decimal(0), Decimal(10**6))
    [intent] = eng.on_tick(Tick(MARKET, T0, 100 * M, 1.0), view)
    assert intent.limit_price == Decimal("99998000") and intent.timeout_s == 30
    assert intent.on_timeout == "cancel" and intent.volume == Decimal("0.00100002")
    assert intent.intent_id == f"KRW-BTC:{T0}:entry" and intent.trigger_price == Decimal("100000000.0")
    eng.on_order_result(intent, Decimal(0), None, T0 + 30_000)  # timed out, cancelled, nothing filled
    [again] = eng.on_tick(Tick(MARKET, T0 + 31_000, 100 * M, 1.0), view)
    assert again.intent_id == f"KRW-BTC:{T0 + 31_000}:entry"


def test_partial_exit_fill_resends_the_rest_under_a_new_id():
    eng = engine(exits={"stop_loss": 0.03})
    book, _ = run(eng, px(100))
    [sl] = eng.on_tick(Tick(MARKET, T0 + 1000, 96 * M, 1.0), book.view())
    half = book.volume / 2
    book.volume -= half
    eng.on_order_result(sl, half, Decimal(96 * M), T0 + 1000)
    [again] = eng.on_tick(Tick(MARKET, T0 + 2000, 96 * M, 1.0), book.view())
    assert again.reason == "stop_loss" and again.volume == book.volume
    assert sl.intent_id == f"KRW-BTC:{T0 + 1000}:stop_loss"
    assert again.intent_id == f"KRW-BTC:{T0 + 2000}:stop_loss"


def _restart_run(cut: int, prices: list[float], exits: dict) -> list[tuple]:
    eng = engine(exits=exits)
    book, _ = run(eng, prices[:cut])
    state = json.loads(json.dumps(eng.state_dict()))
    eng2 = StrategyEngine.from_state(eng.config, state)
    book, _ = run(eng2, prices[cut:], book=book, t0=T0 + cut * 1000)
    return book.trades


def test_restart_mid_position_neither_resells_a_step_nor_loses_the_peak():
    exits = {"take_profit": LADDER, "trailing_stop": {"activate_at": 0.02, "trail": 0.015}}
    prices = px(100, 103, 104.9, 104, 103.4, 103.2)
    straight = _restart_run(len(prices), prices, exits)
    assert [t[1] for t in straight] == ["entry", "take_profit_1", "trailing_stop"]
    for cut in range(1, len(prices)):
        assert _restart_run(cut, prices, exits) == straight, cut
