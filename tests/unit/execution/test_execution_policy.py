"""The execution policy's decisions (pure): placement and sizing, market-time timeouts, fallbacks
with the re-price cap, superseding. Values are computed by hand from Upbit's rules."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader.domain import Intent, IntentKind, OrdType, Side
from trader.execution import policy

D = Decimal


def buy(**kw) -> Intent:
    base = dict(market="KRW-ETH", kind=IntentKind.BUY, reason="entry", ts_ms=0, intent_id="e1",
                krw=D(1_000_000))
    base.update(kw)
    return Intent(**base)


def sell(kind: IntentKind = IntentKind.SELL, **kw) -> Intent:
    base = dict(market="KRW-ETH", kind=kind, reason="stop_loss", ts_ms=0, intent_id="s1",
                volume=D("0.3"))
    base.update(kw)
    return Intent(**base)


def test_market_buy_spends_the_intent_krw_capped_by_free_krw_with_the_fee():
    plan = policy.plan_order(buy(), krw_free=D(10_000_000), coin_free=D(0), price_ref=None)
    assert (plan.side, plan.ord_type, plan.price) == (Side.BID, OrdType.PRICE, D(1_000_000))
    assert plan.volume is None
    # 500,000 free: 500000 / 1.0005 = 499,750.12… → 499,750 whole won
    plan = policy.plan_order(buy(), krw_free=D(500_000), coin_free=D(0), price_ref=None)
    assert plan.price == D(499_750)


def test_limit_buy_is_on_the_tick_grid_and_volume_floored_to_8_decimals():
    plan = policy.plan_order(buy(limit_price=D(3_051_234)), krw_free=D(10_000_000), coin_free=D(0),
                             price_ref=None)
    # ETH at 3,051,234: tick 1,000 (≥ 2,000,000) → 3,051,000; 1,000,000 / 3,051,000 = 0.32776138…
    assert (plan.ord_type, plan.price, plan.volume) == (OrdType.LIMIT, D(3_051_000), D("0.32776138"))


def test_a_buy_below_the_minimum_is_refused_as_dust():
    plan = policy.plan_order(buy(krw=D(4_999)), krw_free=D(10_000_000), coin_free=D(0), price_ref=None)
    assert not plan.ok and plan.refused == "dust"


def test_full_exit_sells_the_exchange_free_balance_not_the_ledger_figure():
    plan = policy.plan_order(sell(volume=D("0.30000001")), krw_free=D(0), coin_free=D("0.29999999"),
                             price_ref=D(3_000_000))
    assert (plan.ord_type, plan.volume) == (OrdType.MARKET, D("0.29999999"))


def test_partial_sell_that_strands_a_remainder_below_the_minimum_sells_everything():
    # 0.1 of 0.1015 at 3,000,000: the 0.0015 left is worth 4,500 KRW < 5,000
    plan = policy.plan_order(sell(IntentKind.SELL_PARTIAL, volume=D("0.1")), krw_free=D(0),
                             coin_free=D("0.1015"), price_ref=D(3_000_000))
    assert plan.volume == D("0.1015")


def test_limit_sell_rounds_up_to_the_tick_grid():
    plan = policy.plan_order(sell(IntentKind.SELL_PARTIAL, limit_price=D(3_050_001)), krw_free=D(0),
                             coin_free=D(1), price_ref=D(3_000_000))
    assert (plan.ord_type, plan.price, plan.volume) == (OrdType.LIMIT, D(3_051_000), D("0.3"))


def test_deadline_counts_market_time_and_the_trade_at_the_deadline_times_out():
    deadline = policy.limit_deadline_ms(1_000, 2.5, default_s=30)
    assert deadline == 3_500
    assert not policy.timed_out(3_499, deadline)
    assert policy.timed_out(3_500, deadline)
    assert policy.limit_deadline_ms(1_000, None, default_s=30) == 31_000
    assert not policy.timed_out(None, deadline)


def _step(intent: Intent, **kw):
    args = dict(ended="cancel", superseded=False, filled=D(0), funds=D(0), last_volume=intent.volume,
                reprices=0, last_price=3_000_000.0, offset_ticks=intent.offset_ticks)
    args.update(kw)
    return policy.next_step(intent, **args)


def test_market_fallback_sends_the_unfilled_rest():
    step = _step(buy(on_timeout="market", limit_price=D(2_990_000)), funds=D(300_000))
    assert step == policy.NextStep(OrdType.MARKET, D(700_000))
    step = _step(sell(IntentKind.SELL_PARTIAL, on_timeout="market", limit_price=D(3_100_000)),
                 filled=D("0.1"))
    assert step == policy.NextStep(OrdType.MARKET, D("0.2"))


def test_reprice_posts_offset_ticks_from_the_last_price_then_caps():
    intent = sell(IntentKind.SELL_PARTIAL, on_timeout="reprice", offset_ticks=3, limit_price=D(3_100_000))
    step = _step(intent, last_price=3_000_000.0)
    assert step == policy.NextStep(OrdType.LIMIT, D("0.3"), D(3_003_000))  # 3 ticks of 1,000 above
    # after MAX_REPRICES re-posts a sell goes at market, a buy gives up
    assert _step(intent, reprices=policy.MAX_REPRICES) == policy.NextStep(OrdType.MARKET, D("0.3"))
    b = buy(on_timeout="reprice", offset_ticks=2, limit_price=D(2_990_000))
    assert _step(b, last_price=3_000_000.0) == policy.NextStep(OrdType.LIMIT, D(1_000_000), D(2_998_000))
    assert _step(b, reprices=policy.MAX_REPRICES) is None


def test_nothing_follows_cancel_policy_a_filled_order_a_superseded_one_or_nothing_left():
    assert _step(buy(on_timeout="cancel", limit_price=D(1))) is None
    assert _step(buy(on_timeout="market", limit_price=D(1)), ended="done") is None
    assert _step(sell(on_timeout="market", limit_price=D(1)), superseded=True) is None
    assert _step(sell(on_timeout="market", limit_price=D(1)), filled=D("0.3")) is None


def test_a_sell_supersedes_other_resting_sells_of_its_market_only():
    tp = sell(IntentKind.SELL_PARTIAL, reason="take_profit_1", intent_id="tp", limit_price=D(3_100_000))
    stop = sell(intent_id="stop")
    assert policy.supersedes(stop, tp)
    assert not policy.supersedes(tp, tp)  # its own re-emission
    assert not policy.supersedes(sell(market="KRW-BTC", intent_id="x"), tp)
    assert not policy.supersedes(buy(), tp)


def test_attempt_identifiers_are_distinct_and_attempt_zero_is_the_intent_identifier():
    intent = buy()
    ids = {policy.attempt_identifier(intent, "ns", n) for n in range(5)}
    assert len(ids) == 5 and policy.attempt_identifier(intent, "ns", 0) == intent.identifier("ns")


@given(funds=st.integers(min_value=0, max_value=2_000_000), reprices=st.integers(0, 5),
       mode=st.sampled_from(["market", "reprice", "cancel"]))
def test_a_buy_fallback_never_spends_more_than_the_intent(funds: int, reprices: int, mode: str) -> None:
    intent = buy(on_timeout=mode, limit_price=D(2_990_000))
    step = _step(intent, funds=D(funds), reprices=reprices)
    if step is not None:
        assert D(0) < step.remaining == D(1_000_000) - D(funds)
        assert mode != "cancel"
        assert not (mode == "reprice" and reprices >= policy.MAX_REPRICES)


@pytest.mark.parametrize("mode", ["market", "reprice"])
def test_a_fallback_plan_is_sized_like_a_first_order(mode: str) -> None:
    intent = buy(on_timeout=mode, limit_price=D(2_990_000), offset_ticks=1)
    step = _step(intent, funds=D(400_000))
    assert step is not None
    plan = policy.plan_order(intent, krw_free=D(9_000_000), coin_free=D(0), price_ref=None,
                             remaining=step.remaining, ord_type=step.ord_type, limit_price=step.limit_price)
    if mode == "market":
        assert (plan.ord_type, plan.price) == (OrdType.PRICE, D(600_000))
    else:  # 1 tick under 3,000,000 → 2,999,000; 600,000 / 2,999,000 = 0.20006668…
        assert (plan.ord_type, plan.price, plan.volume) == (OrdType.LIMIT, D(2_999_000), D("0.20006668"))
