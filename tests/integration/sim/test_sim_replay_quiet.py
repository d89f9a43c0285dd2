"""`Exchange.replay_quiet_trades` leaves the exchange exactly as `on_trade` one by one would."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from trader.sim.matching import Exchange


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=50.0, allow_nan=False), min_size=1, max_size=40),
       st.booleans())
def test_bulk_replay_equals_one_by_one(volumes: list[float], warm: bool) -> None:
    one, bulk = (Exchange(krw=Decimal(1_000_000), markets=["KRW-ETH"], seed=3) for _ in range(2))
    if warm:  # a market that has seen trades already (a non-zero volume average)
        for ex in (one, bulk):
            ex.on_trade("KRW-ETH", 1_000, 3_000_000.0, 1.5, True)
    for i, v in enumerate(volumes):
        one.on_trade("KRW-ETH", 2_000 + i, 3_001_000.0, v, True)
    bulk.replay_quiet_trades("KRW-ETH", 2_000 + len(volumes) - 1, volumes, 3_001_000.0)
    assert bulk.last_price("KRW-ETH") == one.last_price("KRW-ETH")
    assert bulk.clock_ms == one.clock_ms
    assert bulk.orderbook_units("KRW-ETH", 30) == one.orderbook_units("KRW-ETH", 30)  # same book
