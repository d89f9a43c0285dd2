"""The loop holds the next tick until the order decided on this tick has been written out.

An exchange client's send path suspends several times before the request's bytes leave
(httpx/httpcore: pool and connection locks, the socket write). Had the loop gone on consuming a
buffered burst, each suspension would let one more tick run first and the order would leave
ticks later — measured ≈1.5 ms at 5,000 trades/s (bench/live_latency.py).
"""

import asyncio
from decimal import Decimal as D
from types import SimpleNamespace

from tests.unit.execution.fakes import FakeExchange
from tests.unit.execution.test_execution_balances import MARKET, StateRepo
from trader.domain import Intent, IntentKind, Tick
from trader.engine import TradingLoop
from trader.portfolio import Portfolio
from trader.upbit.client import order_request_out

SUSPENSIONS = 6  # on the way out, like httpcore's checkpoints


class SlowSendExchange(FakeExchange):
    def __init__(self, events: list[str], *, signals: bool = True) -> None:
        super().__init__(D("1000000"), D("5000000"))
        self.events = events
        self.signals = signals

    async def create_order(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for _ in range(SUSPENSIONS):
            await asyncio.sleep(0)
        self.events.append("order out")
        callback = order_request_out.get()
        if self.signals and callback is not None:
            callback()
        await asyncio.sleep(0)  # the response is read later
        return await super().create_order(*args, **kwargs)


class BuyOnFirstTick:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def on_tick(self, tick, view):  # type: ignore[no-untyped-def]
        self.events.append(f"tick {tick.seq}")
        if tick.seq == 1:
            return [Intent(MARKET, IntentKind.BUY, "entry", tick.ts_ms, "buy-1", krw=D("10000"))]
        return []

    def on_order_result(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass

    def state_dict(self):  # type: ignore[no-untyped-def]
        return {}


async def run_burst(*, signals: bool, wait_s: float = 0.005) -> list[str]:
    events: list[str] = []

    async def burst():  # a buffered burst: every tick is ready at once
        for seq in range(1, 11):
            yield Tick(MARKET, seq, 5_000_000.0, 0.1, "BID", seq)

    loop = TradingLoop(SimpleNamespace(market=MARKET), SlowSendExchange(events, signals=signals), burst(),
                       StateRepo(), Portfolio(D("1000000")), strategy=BuyOnFirstTick(events),
                       reconcile_on_start=False, freeze_gc=False, request_out_wait_s=wait_s)  # fmt: skip
    await loop.run()
    return events


async def test_the_order_is_out_before_the_next_tick_is_looked_at() -> None:
    events = await run_burst(signals=True)
    assert events.index("order out") < events.index("tick 2"), events


async def test_a_client_that_never_signals_holds_the_stream_only_briefly() -> None:
    events = await run_burst(signals=False, wait_s=0.0)
    # no signal and no time to wait: the stream goes on while the order makes its way out
    assert events.index("order out") > events.index("tick 2"), events
    assert events.count("order out") == 1 and "tick 10" in events


async def test_the_loop_freezes_its_start_up_heap_while_it_runs_and_releases_it_after() -> None:
    import gc

    frozen: list[int] = []

    async def burst():
        frozen.append(gc.get_freeze_count())
        yield Tick(MARKET, 1, 5_000_000.0, 0.1, "BID", 1)

    loop = TradingLoop(SimpleNamespace(market=MARKET), FakeExchange(), burst(), StateRepo(),
                       Portfolio(D("1000000")), strategy=BuyOnFirstTick([]),
                       reconcile_on_start=False)  # fmt: skip
    await loop.run()
    assert frozen[0] > 0  # a full collection skips what was alive at start
    assert gc.get_freeze_count() == 0
