"""Property: any sequence of orders and trades keeps the books consistent and creates no money.

KRW_start = KRW_now (free + locked) + fees + value bought − value sold, and
coin_now (free + locked) = volume bought − volume sold; locks equal what open orders reserve.
"""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.sim.matching import Exchange, SimError

M = "KRW-ETH"
BASE = 3_000_000  # tick 1000 in this band

op = st.one_of(
    st.tuples(st.just("trade"), st.integers(-30, 30), st.sampled_from(["0.001", "0.01", "0.5", "3"])),
    st.tuples(st.just("limit"), st.sampled_from(["bid", "ask"]), st.integers(-20, 20),
              st.sampled_from(["0.002", "0.01", "0.1", "1.5"]),
              st.sampled_from([None, "ioc", "fok", "post_only"])),
    st.tuples(st.just("buy"), st.sampled_from(["5000", "12345", "300000", "4000000"])),
    st.tuples(st.just("sell"), st.sampled_from(["0.002", "0.05", "1"])),
    st.tuples(st.just("best"), st.sampled_from(["bid", "ask"]), st.sampled_from(["ioc", "fok"])),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
)


def check(ex: Exchange, krw0: D, coin0: D) -> None:
    fees = bought = sold = vol_b = vol_s = D(0)
    locked_krw = locked_coin = D(0)
    for o in ex.orders():
        for t in o.trades:
            fees += t.fee
            if o.side == "bid":
                bought += t.funds
                vol_b += t.volume
            else:
                sold += t.funds
                vol_s += t.volume
        if o.is_open:
            if o.side == "bid":
                locked_krw += o.locked
            else:
                locked_coin += o.remaining_volume
    kb, kl, _ = ex.balance("KRW")
    cb, cl, _ = ex.balance("ETH")
    assert min(kb, kl, cb, cl) >= 0
    assert krw0 == kb + kl + fees + bought - sold
    assert coin0 + vol_b - vol_s == cb + cl
    assert kl == locked_krw and cl == locked_coin


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=40), seed=st.integers(0, 3))
def test_no_krw_or_coin_is_created_or_lost(ops: list[tuple], seed: int) -> None:
    krw0, coin0 = D("20000000"), D("2")
    ex = Exchange(krw=krw0, markets=[M], seed=seed)
    ex.fund("ETH", coin0, avg_buy_price=D(BASE))
    ts = 1_704_067_200_000
    ex.on_trade(M, ts, float(BASE), 1.0, True)
    for item in ops:
        kind = item[0]
        ts += 1000
        try:
            if kind == "trade":
                ex.on_trade(M, ts, float(BASE + 1000 * item[1]), float(item[2]), item[1] >= 0)
            elif kind == "limit":
                _, side, off, vol, tif = item
                ex.create_order(M, side, "limit", price=D(BASE + 1000 * off), volume=D(vol),
                                time_in_force=tif)
            elif kind == "buy":
                ex.create_order(M, "bid", "price", price=D(item[1]))
            elif kind == "sell":
                ex.create_order(M, "ask", "market", volume=D(item[1]))
            elif kind == "best":
                _, side, tif = item
                args = {"price": D(100_000)} if side == "bid" else {"volume": D("0.05")}
                ex.create_order(M, side, "best", time_in_force=tif, **args)
            else:
                opened = ex.open_orders()
                if opened:
                    ex.cancel_order(uuid=opened[item[1] % len(opened)]["uuid"])
        except SimError as e:
            assert e.status in (400, 404)
        check(ex, krw0, coin0)
