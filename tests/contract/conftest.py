"""Venues for the exchange-client contract suite: one market state, three clients.

A `Venue` is a client plus the two hands a test needs on the market behind it — `trade(...)`
(advance the market by trades) and `fund(...)` (credit an account). Three kinds:

- `sdk`: `UpbitRestClient` (official SDK) against the simulator over loopback,
- `direct`: the same with `direct_orders=True`,
- `inprocess`: `InProcessClient` over an `Exchange` built as the simulator builds its own and fed
  the same trades with `on_trade` (as the backtest feeds it).

Every venue starts with 1,000,000 KRW and the same opening trades, so the synthetic book, the
prices and the market clock are equal: scenarios then give equal answers everywhere, except for
uuids (random in the simulator).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from trader.sim.inprocess import InProcessClient
from trader.sim.matching import Exchange
from trader.sim.server import SimulatorThread
from trader.upbit.client import ExchangeClient
from trader.upbit.rest import UpbitRestClient

MARKET = "KRW-ETH"
KRW = Decimal(1_000_000)
T0_MS = 1_767_225_600_000  # 2026-01-01 09:00 KST
OPENING = [(3_000_000.0, 0.5), (3_001_000.0, 0.4), (3_000_000.0, 0.6)]  # (price, volume)
KINDS = ("sdk", "direct", "inprocess")


@dataclass
class Venue:
    kind: str
    client: ExchangeClient
    exchange: Exchange  # the matching behind the client (in the simulator's thread for sdk/direct)
    push: Callable[[list[float], list[float], list[int]], None]
    credit: Callable[[str, Decimal, Decimal | None], None]
    market: str = MARKET
    next_ts: int = T0_MS
    trade_ts: list[int] = field(default_factory=list)

    def trade(self, trades: Iterable[tuple[float, float]]) -> list[int]:
        """Advance the market by (price, volume) trades, one second apart; their timestamps."""
        trades = list(trades)
        stamps = [self.next_ts + 1000 * i for i in range(len(trades))]
        self.next_ts += 1000 * len(trades)
        self.push([p for p, _ in trades], [v for _, v in trades], stamps)
        self.trade_ts.extend(stamps)
        return stamps

    def fund(self, currency: str, amount: Decimal, avg_buy_price: Decimal | None = None) -> None:
        self.credit(currency, amount, avg_buy_price)


def _in_process_feed(ex: Exchange, market: str) -> Callable[[list[float], list[float], list[int]], None]:
    def push(prices: list[float], volumes: list[float], stamps: list[int]) -> None:
        for price, volume, ts in zip(prices, volumes, stamps, strict=True):
            last = ex.last_price(market)
            # the simulator's rule for a pushed trade's side: a buyer when it does not go down
            ex.on_trade(market, ts, price, volume, last is None or price >= last)

    return push


def in_process_venue() -> Venue:
    ex = Exchange(krw=KRW, markets=[MARKET], seed=0)  # as trader.sim.app.Simulator builds it
    venue = Venue("inprocess", InProcessClient(ex, clock=lambda: ex.clock_ms), ex,
                  _in_process_feed(ex, MARKET), ex.fund)
    venue.trade(OPENING)
    return venue


def sim_venue(sim: SimulatorThread, *, direct_orders: bool) -> Venue:
    client = UpbitRestClient(sim.access_key, sim.secret_key, sim.base_url, timeout_s=5.0,
                             direct_orders=direct_orders)

    def push(prices: list[float], volumes: list[float], stamps: list[int]) -> None:
        sim.control.push_prices(prices, volumes, stamps, mode="now")

    def credit(currency: str, amount: Decimal, avg: Decimal | None) -> None:
        sim.control.fund(currency, amount, str(avg) if avg is not None else None)

    venue = Venue("direct" if direct_orders else "sdk", client, sim.exchange, push, credit, sim.market)
    venue.trade(OPENING)
    return venue


@pytest.fixture(params=KINDS)
async def venue(
    request: pytest.FixtureRequest, make_sim: Callable[..., SimulatorThread]
) -> AsyncIterator[Venue]:
    if request.param == "inprocess":
        v = in_process_venue()
    else:
        # no replay data, no primed trade: the market is exactly the opening trades
        sim = make_sim(data=None, market=MARKET, prime=False, rate_limit=False, krw=KRW)
        v = sim_venue(sim, direct_orders=request.param == "direct")
    yield v
    await v.client.close()
