"""Property tests of the ledger over random fill sequences: nothing is created or lost, a fill
applied twice is a no-op, and the state survives to_dict/from_dict at every step."""

from __future__ import annotations

import json
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from trader.domain import Fill, Side
from trader.portfolio import Portfolio
from trader.upbit.rules import FEE_RATE, quantize_volume, round_price

MARKETS = ("KRW-BTC", "KRW-ETH")
K0 = D("100000000")
# The only inexact steps are the average's division and the pro-rata fee share (28 significant
# digits, i.e. ~1e-16 KRW here); 1e-9 KRW is far above that rounding and far below any real
# error (the smallest fee in these sequences is 0.0005 × 1000 × 1e-7 = 5e-8 KRW).
TOL = D("1e-9")

op = st.tuples(
    st.sampled_from(MARKETS),
    st.booleans(),  # True: buy, False: sell a fraction of the holding
    st.integers(min_value=1000, max_value=200_000_000),  # price before snapping to the tick grid
    st.integers(min_value=1, max_value=10**8),  # buy: volume in 1e-8 units / sell: fraction ‱
)


def build_fills(ops: list[tuple[str, bool, int, int]]) -> list[Fill]:
    """Turn random ops into valid fills (never selling more than held)."""
    held = dict.fromkeys(MARKETS, D(0))
    fills = []
    for i, (market, buy, raw_price, amount) in enumerate(ops):
        price = round_price(D(raw_price))
        if buy:
            volume = D(amount) / D(10**8) * 10
        else:
            volume = quantize_volume(held[market] * D(amount % 10_001) / D(10_000))
            if volume <= 0:
                continue
        held[market] += volume if buy else -volume
        funds = price * volume
        side = Side.BID if buy else Side.ASK
        fills.append(Fill(f"t{i}", f"o{i}", market, side, price, volume, funds, funds * FEE_RATE, i))
    return fills


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=40))
def test_conservation_of_krw_and_coin(ops: list[tuple[str, bool, int, int]]) -> None:
    fills = build_fills(ops)
    pf = Portfolio(krw=K0)
    for i, f in enumerate(fills):
        eff = pf.apply_fill(f)
        assert eff is not None and eff.krw_after == pf.krw
        assert (eff.realized_pnl is None) == (f.side is Side.BID)
        seen = fills[: i + 1]
        # cash: exact
        bids = sum((g.funds + g.fee for g in seen if g.side is Side.BID), D(0))
        asks = sum((g.funds - g.fee for g in seen if g.side is Side.ASK), D(0))
        assert pf.krw == K0 - bids + asks
        # coin: exact
        for m in MARKETS:
            vol = sum((g.volume if g.side is Side.BID else -g.volume for g in seen if g.market == m), D(0))
            pos = pf.position(m)
            assert pos.volume == vol and pos.volume >= 0
            if vol == 0:
                assert pos.avg_buy_price == 0 and pos.cost_fees_open == 0
            assert pos.fees_paid == sum((g.fee for g in seen if g.market == m), D(0))
        # value: cash + what the open volume cost (fees included) = K0 + realized
        cost_open = sum((pf.position(m).cost_basis for m in MARKETS), D(0))
        assert abs(pf.krw + cost_open - (K0 + pf.realized_pnl_total())) <= TOL
        # at the average price, unrealized = − (attached buy fees + the sell fee)
        for m in MARKETS:
            pos = pf.position(m)
            if pos.volume:
                sell_fee = pos.volume * pos.avg_buy_price * FEE_RATE
                assert abs(pf.unrealized_pnl(m, pos.avg_buy_price) + pos.cost_fees_open + sell_fee) <= TOL
    assert pf.fees_total() == sum((f.fee for f in fills), D(0))


@settings(max_examples=100, deadline=None)
@given(st.lists(op, max_size=30), st.randoms(use_true_random=False))
def test_duplicates_are_no_ops(ops: list[tuple[str, bool, int, int]], rnd) -> None:  # type: ignore[no-untyped-def]
    fills = build_fills(ops)
    once = Portfolio(krw=K0)
    once.apply_fills(fills)
    # replay with each fill repeated at random later points: only first sightings count
    noisy: list[Fill] = []
    for f in fills:
        noisy.append(f)
        noisy.extend(rnd.sample(noisy, k=min(len(noisy), rnd.randint(0, 2))))
    twice = Portfolio(krw=K0)
    effects = twice.apply_fills(noisy)
    assert [e.fill for e in effects] == fills
    assert twice == once
    assert twice.apply_fills(fills) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(op, max_size=30), st.integers(min_value=0, max_value=30))
def test_state_round_trip_mid_sequence(ops: list[tuple[str, bool, int, int]], cut: int) -> None:
    fills = build_fills(ops)
    straight = Portfolio(krw=K0)
    straight.apply_fills(fills)
    first = Portfolio(krw=K0)
    first.apply_fills(fills[:cut])
    resumed = Portfolio.from_dict(json.loads(json.dumps(first.to_dict())))
    resumed.apply_fills(fills)  # the already-applied prefix is skipped by trade_uuid
    assert resumed == straight
