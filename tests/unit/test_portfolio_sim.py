"""The ledger equals the simulator's accounts when both see the same fills.

Random orders (market/limit, buys/sells, cancels) and market trades are driven through the
in-process exchange `trader.sim.matching.Exchange`; after every step the fills of every order
(read back from its Upbit order JSON with `fills_from_order_json`, re-applied each time, so
duplicates are exercised too) are applied to a `Portfolio`, and KRW, coin volume and the average
buy price must equal the exchange's `balance + locked` and `avg_buy_price` exactly.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.portfolio import Portfolio
from trader.upbit.convert import fills_from_order_json
from trader.upbit.rules import quantize_volume, round_price

matching = pytest.importorskip("trader.sim.matching")

MARKETS = {"KRW-BTC": 50_000_000.0, "KRW-ETH": 3_000_000.0}
K0 = D("20000000")

action = st.tuples(
    st.sampled_from(["mbuy", "msell", "lbuy", "lsell", "trade", "trade", "cancel"]),
    st.sampled_from(sorted(MARKETS)),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**4),
    st.integers(min_value=1, max_value=100),  # percent of the free coin to sell
)


def _near(last: float, b: int) -> D:
    """A tick-grid price within ±2% of the last trade."""
    return round_price(D(repr(last)) * (1 + D((b % 41) - 20) / 1000))


def _check(ex: matching.Exchange, pf: Portfolio) -> None:
    bal, locked, _ = ex.balance("KRW")
    assert pf.krw == bal + locked
    for market in MARKETS:
        bal, locked, avg = ex.balance(market.split("-")[1])
        pos = pf.position(market)
        assert pos.volume == bal + locked
        assert pos.avg_buy_price == avg


def run_scenario(actions: list[tuple[str, str, int, int, int]], seed: int) -> dict[str, int]:
    """Drive `actions` through a fresh exchange and a ledger, checking after every step;
    returns how many fills of each side and how many rejections happened."""
    counts: dict[str, int] = {}
    ex = matching.Exchange(krw=K0, markets=list(MARKETS), seed=seed)
    ts = 1_700_000_000_000
    uuids: list[str] = []
    for market, price in MARKETS.items():
        ex.on_trade(market, ts, price, 1.0, True)
        # start with holdings so that sells are possible from the first action
        uuids.append(ex.create_order(market, "bid", "price", price=D(2_000_000 + seed), ts_ms=ts)["uuid"])
    pf = Portfolio(krw=K0, fee_rate=ex.fee_rate)
    open_: list[str] = []

    for kind, market, a, b, pct in [("noop", "KRW-BTC", 0, 0, 0), *actions]:
        ts += 1000
        last = ex.last_price(market) or MARKETS[market]
        coin = market.split("-")[1]
        free = ex.balance(coin)[0]
        o = None
        try:
            if kind == "mbuy":
                o = ex.create_order(market, "bid", "price", price=D(5000 + a * 2), ts_ms=ts)
            elif kind == "msell":
                volume = quantize_volume(free * pct / 100)
                o = ex.create_order(market, "ask", "market", volume=volume, ts_ms=ts)
            elif kind == "lbuy":
                price = _near(last, b)
                o = ex.create_order(market, "bid", "limit", price=price,
                                    volume=quantize_volume(D(5000 + a) / price), ts_ms=ts)
            elif kind == "lsell":
                o = ex.create_order(market, "ask", "limit", price=_near(last, b),
                                    volume=quantize_volume(free * pct / 100), ts_ms=ts)
            elif kind == "trade":
                ex.on_trade(market, ts, float(_near(last, b)), (a % 1000) / 100 + 0.01, bool(b % 2))
            elif kind == "cancel" and open_:
                ex.cancel_order(uuid=open_[a % len(open_)], ts_ms=ts)
                counts["cancel"] = counts.get("cancel", 0) + 1
        except matching.SimError:
            counts["rejected"] = counts.get("rejected", 0) + 1  # like Upbit: nothing changes
        if o is not None:
            uuids.append(o["uuid"])
        # every order's fills, re-read from its JSON each step: the ledger skips the known ones
        open_ = []
        for uuid in uuids:
            order = ex.get_order(uuid=uuid)
            fills = fills_from_order_json(order, ex.fee_rate)
            assert fills == ex.order_fills(uuid)  # fee = funds × rate, exact; same ts and ids
            assert sum((f.fee for f in fills), D(0)) == D(order["paid_fee"])
            for e in pf.apply_fills(fills):
                counts[str(e.fill.side)] = counts.get(str(e.fill.side), 0) + 1
            if order["state"] == "wait":
                open_.append(uuid)
        _check(ex, pf)
    return counts


@settings(max_examples=100, deadline=None)
@given(st.lists(action, min_size=1, max_size=25), st.integers(min_value=0, max_value=3))
def test_ledger_matches_simulator_accounts(actions: list[tuple[str, str, int, int, int]], seed: int) -> None:
    run_scenario(actions, seed)


def test_scenario_exercises_every_kind_of_fill() -> None:
    """A fixed script: market and limit orders both ways, resting orders filled by trades, a
    partial fill then a cancel — proves the property above is not vacuous."""
    actions = [
        ("mbuy", "KRW-BTC", 500_000, 0, 0),
        ("msell", "KRW-ETH", 0, 0, 30),
        ("lbuy", "KRW-BTC", 999_000, 5, 0),  # ~0.02 BTC 1.5 % under the market: rests
        ("lsell", "KRW-ETH", 0, 35, 50),  # 1.5 % above: rests
        ("trade", "KRW-BTC", 0, 0, 0),  # 0.01 BTC prints 2 % lower: partial maker fill
        ("trade", "KRW-ETH", 999, 40, 0),  # prints 2 % higher: fills the resting ask
        ("cancel", "KRW-BTC", 0, 0, 0),  # cancels the partly filled bid
        ("lbuy", "KRW-ETH", 100_000, 40, 0),  # marketable limit: takes liquidity at once
        ("msell", "KRW-BTC", 0, 0, 100),  # sells everything: average resets
    ]
    counts = run_scenario(actions, seed=1)
    assert counts.get("bid", 0) >= 4 and counts.get("ask", 0) >= 3 and counts.get("cancel") == 1
