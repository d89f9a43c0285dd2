"""Properties of the risk gate over random portfolios (Hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.risk.helpers import T0, buy, sell, view
from trader.risk import AllocationSpec, RiskGate, RiskSpec, TradingState
from trader.upbit.rules import FEE_RATE, MIN_ORDER_KRW

MARKETS = [f"KRW-M{k}" for k in range(5)]
won = st.integers(0, 3_000_000)
fractions = st.none() | st.decimals("0.01", "1", places=2)
allocations = st.none() | st.sampled_from([AllocationSpec(mode="equal"),
                                           AllocationSpec(mode="fixed_krw", krw=Decimal(150_000)),
                                           AllocationSpec(mode="fraction", fraction=Decimal("0.3"))])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(MARKETS), won, max_size=5), won, st.integers(1, 5),
       fractions, fractions, allocations, st.sampled_from(MARKETS), st.integers(1, 2_000_000))
def test_an_allowed_entry_never_breaks_a_cap_or_spends_krw_it_lacks(
        positions, free, max_open, per_market, total, alloc, market, asked):
    rules = RiskSpec(max_open_positions=max_open, max_exposure_per_market=per_market,
                     max_exposure_total=total)
    equity = free + sum(positions.values())
    v = view(equity=equity, free=free, positions=positions)
    verdict = RiskGate(rules, alloc).check(buy(market, krw=asked), v)
    if not verdict.allowed:
        assert verdict.krw is None and verdict.rule
        return
    krw = verdict.krw
    assert krw == krw.to_integral_value() and krw >= MIN_ORDER_KRW
    assert krw * (1 + FEE_RATE) <= v.krw_free
    if alloc is None:
        assert krw <= asked
    if total is not None:
        assert sum(v.positions.values()) + krw <= v.equity * total
    if per_market is not None:
        assert v.positions.get(market, 0) + krw <= v.equity * per_market
    held = v.positions.get(market, 0) >= MIN_ORDER_KRW
    assert held or v.open_positions < max_open


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(TradingState)), st.dictionaries(st.sampled_from(MARKETS), won, max_size=5),
       won, st.booleans(), st.text(min_size=1, max_size=12))
def test_exits_are_always_allowed(state, positions, free, partial, reason):
    g = RiskGate(RiskSpec(max_open_positions=1, max_exposure_total=Decimal("0.01"),
                          daily_loss_limit=Decimal("0.01")), AllocationSpec(mode="equal"), state)
    g.on_equity(T0, Decimal(10**9))
    v = g.check(sell(partial=partial, reason=reason), view(ts=T0 + 1, free=free, positions=positions,
                                                           equity=1))
    assert v.allowed and g.refusals == []
