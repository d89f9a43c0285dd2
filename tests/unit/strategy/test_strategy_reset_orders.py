"""A strategy state lost mid-run (the engine starts fresh) must not make an order's identifier
repeat: the exchange refuses a duplicate, the order manager then takes the old order's result as
the new one's, and a stop is delayed. Driven through the real OrderManager over the fake exchange
(which refuses a duplicate identifier as Upbit does)."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

from tests.unit.execution.fakes import FakeExchange, FakeRepo
from tests.unit.strategy.helpers import MARKET, T0, make_config
from trader.execution.order_manager import ExecutionResult, OrderManager
from trader.portfolio import Portfolio
from trader.strategy.engine import StrategyEngine

M = 1_000_000


async def _no_sleep(_s: float) -> None:
    await asyncio.sleep(0)


class Rig:
    def __init__(self) -> None:
        self.cfg = make_config(entry={"immediate": True}, exits={"stop_loss": 0.02})
        self.ex = FakeExchange(D(1_000_000), D(100 * M))
        self.pf = Portfolio(D(1_000_000))
        self.om = OrderManager(self.ex, FakeRepo(), self.pf, namespace="t", clock=lambda: 1, sleep=_no_sleep,
                               poll_interval_s=0.01, market_poll_s=0.001, ambiguous_grace_s=0.02)
        self.engine = StrategyEngine(self.cfg)
        self.results: list[ExecutionResult] = []

    async def trade(self, ts: int, price: int) -> list[ExecutionResult]:
        """One market trade: the exchange trades at `price`; the strategy decides; orders execute."""
        self.ex.price = D(price)
        out = []
        for intent in self.engine.on_price(ts, float(price), self.pf.view(MARKET)):
            res = await self.om.execute(intent, last_price=D(price))
            self.engine.on_order_result(intent, res.filled_volume, res.avg_price, ts)
            out.append(res)
        self.results += out
        return out


async def test_state_reset_mid_run_sends_new_identifiers_and_the_stop_sells_at_once():
    rig = Rig()
    await rig.trade(T0, 100 * M)  # entry
    [first_stop] = await rig.trade(T0 + 1000, 97 * M)  # stop-loss of the first position
    assert first_stop.intent.reason == "stop_loss" and first_stop.avg_price == D(97 * M)
    await rig.trade(T0 + 2000, 100 * M)  # second entry
    held = rig.pf.position(MARKET).volume
    assert held > 0
    rig.engine = StrategyEngine(rig.cfg)  # the state is lost: a fresh engine adopts the position
    [stop] = await rig.trade(T0 + 3000, 96 * M)
    assert stop.intent.reason == "stop_loss"
    # a new order, filled now at the stop's price, selling what is held: not the old stop's result
    earlier = {o.uuid for r in rig.results[:-1] for o in r.orders}
    assert [o.uuid in earlier for o in stop.orders] == [False]
    assert (stop.filled_volume, stop.avg_price) == (held, D(96 * M))
    assert rig.pf.position(MARKET).volume == 0
    sent = [c.removeprefix("create ") for c in rig.ex.calls if c.startswith("create ")]
    assert len(sent) == len(set(sent)) == 4
    ids = [r.intent.intent_id for r in rig.results]
    assert len(ids) == len(set(ids)) == 4
