"""Intent ids from market time: `<market>:<ts_ms>:<reason>[:n]`, re-emitted while outstanding,
never repeated (also after a state reset); every intent carries its trigger price."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.unit.strategy.helpers import MARKET, T0, make_config, run
from trader.domain import PositionView, Tick
from trader.strategy.engine import STATE_VERSION, StrategyEngine

M = 1_000_000.0
FLAT = PositionView(MARKET, Decimal(0), Decimal(0), Decimal(10**6))


def test_ids_name_the_deciding_trade_and_rule_and_carry_its_price():
    eng = StrategyEngine(make_config(exits={"take_profit": [{"gain": 0.03, "sell": 0.5}], "stop_loss": 0.02}))
    _book, intents = run(eng, [100 * M, 103.5 * M, 97.5 * M])
    assert [(i.intent_id, i.trigger_price) for i in intents] == [
        (f"{MARKET}:{T0}:entry", Decimal("100000000.0")),
        (f"{MARKET}:{T0 + 1000}:take_profit_1", Decimal("103500000.0")),
        (f"{MARKET}:{T0 + 2000}:stop_loss", Decimal("97500000.0")),
    ]


def test_a_rejected_entry_retried_in_the_same_millisecond_gets_a_new_id():
    eng = StrategyEngine(make_config())
    [a] = eng.on_tick(Tick(MARKET, T0, 100 * M, 1.0), FLAT)
    eng.on_order_result(a, Decimal(0), None, T0)  # rejected, nothing filled
    [b] = eng.on_tick(Tick(MARKET, T0, 100 * M, 1.0), FLAT)  # the next trade of the same ms
    eng.on_order_result(b, Decimal(0), None, T0)
    [c] = eng.on_tick(Tick(MARKET, T0, 100 * M, 1.0), FLAT)
    assert [a.intent_id, b.intent_id, c.intent_id] == [
        f"{MARKET}:{T0}:entry", f"{MARKET}:{T0}:entry:1", f"{MARKET}:{T0}:entry:2"]
    eng.on_order_result(c, Decimal(0), None, T0)
    [d] = eng.on_tick(Tick(MARKET, T0 + 1, 100 * M, 1.0), FLAT)
    assert d.intent_id == f"{MARKET}:{T0 + 1}:entry"


def test_a_feed_stepping_back_in_time_still_gets_new_ids():
    eng = StrategyEngine(make_config())
    [a] = eng.on_tick(Tick(MARKET, T0 + 5, 100 * M, 1.0), FLAT)
    eng.on_order_result(a, Decimal(0), None, T0 + 5)
    [b] = eng.on_tick(Tick(MARKET, T0, 100 * M, 1.0), FLAT)
    assert b.intent_id == f"{MARKET}:{T0 + 5}:entry:1"


def test_a_resting_take_profit_is_re_emitted_under_its_id_until_its_result_comes():
    eng = StrategyEngine(make_config(exits={"take_profit": [{"gain": 0.03, "sell": 0.5}]},
                                     limit_orders={"use_for": ["take_profit"], "offset_ticks": 1}))
    book, _ = run(eng, [100 * M])
    seen = []
    for k, p in enumerate([103.5, 104, 103.2]):
        [tp] = eng.on_tick(Tick(MARKET, T0 + 1000 * (k + 1), p * M, 1.0), book.view())
        seen.append(tp.intent_id)
    assert seen == [f"{MARKET}:{T0 + 1000}:take_profit_1"] * 3
    eng.on_order_result(tp, Decimal(0), None, T0 + 4000)  # timed out, cancelled
    [again] = eng.on_tick(Tick(MARKET, T0 + 5000, 104 * M, 1.0), book.view())
    assert again.intent_id == f"{MARKET}:{T0 + 5000}:take_profit_1"


def test_a_crash_between_sending_and_the_result_re_emits_the_same_id():
    cfg = make_config(exits={"stop_loss": 0.02})
    eng = StrategyEngine(cfg)
    book, _ = run(eng, [100 * M])
    [sl] = eng.on_tick(Tick(MARKET, T0 + 1000, 97 * M, 1.0), book.view())
    saved = json.loads(json.dumps(eng.state_dict()))  # saved once the order is out; then a crash
    eng2 = StrategyEngine.from_state(cfg, saved)
    [again] = eng2.on_tick(Tick(MARKET, T0 + 2000, 96 * M, 1.0), book.view())
    assert again.intent_id == sl.intent_id
    # the recovered outcome (nothing sold) releases it: the next decision is a new one
    eng2.on_order_result(sl, Decimal(0), None, T0 + 2500)
    [new] = eng2.on_tick(Tick(MARKET, T0 + 3000, 96 * M, 1.0), book.view())
    assert new.intent_id == f"{MARKET}:{T0 + 3000}:stop_loss"


def test_a_stale_result_does_not_release_the_id_of_an_intent_still_in_flight():
    eng = StrategyEngine(make_config())
    [a] = eng.on_tick(Tick(MARKET, T0, 100 * M, 1.0), FLAT)
    eng.on_order_result(a, Decimal(0), None, T0)
    [b] = eng.on_tick(Tick(MARKET, T0 + 1000, 100 * M, 1.0), FLAT)
    eng.on_order_result(a, Decimal(0), None, T0 + 1500)  # `a`'s result, reported twice
    [b2] = eng.on_tick(Tick(MARKET, T0 + 2000, 100 * M, 1.0), FLAT)
    assert b2.intent_id == b.intent_id != a.intent_id


@pytest.mark.parametrize("cut", range(1, 9))
def test_a_state_reset_anywhere_never_repeats_an_id(cut):
    cfg = make_config(exits={"take_profit": [{"gain": 0.03, "sell": 0.5}], "stop_loss": 0.02})
    prices = [p * M for p in (100, 103.5, 97, 100, 103.5, 97, 100, 97, 100, 103.5)]
    book, first = run(StrategyEngine(cfg), prices[:cut])
    book, second = run(StrategyEngine(cfg), prices[cut:], book=book, t0=T0 + cut * 1000)
    ids = [i.intent_id for i in first + second]
    assert len(ids) >= 5 and len(set(ids)) == len(ids)


def test_version_1_states_load_with_nothing_outstanding_and_others_are_refused():
    cfg = make_config(exits={"stop_loss": 0.02})
    eng = StrategyEngine(cfg)
    book, _ = run(eng, [100 * M])
    v1 = eng.state_dict()
    for key in ("outstanding", "id_ts", "id_n"):
        del v1[key]
    v1.update(version=1, attempts={"stop_loss": 2})
    old = StrategyEngine.from_state(cfg, v1)
    assert (old.in_position, old.outstanding) == (True, {})
    [sl] = old.on_tick(Tick(MARKET, T0 + 1000, 97 * M, 1.0), book.view())
    assert sl.intent_id == f"{MARKET}:{T0 + 1000}:stop_loss"
    with pytest.raises(ValueError, match=f"v{STATE_VERSION + 1}"):
        StrategyEngine.from_state(cfg, {**eng.state_dict(), "version": STATE_VERSION + 1})

