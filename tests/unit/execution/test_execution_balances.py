"""The free-balance cache and its fallbacks: REST only when the cache is unknown, stale or voided."""

import asyncio
from decimal import Decimal as D

from tests.unit.execution.fakes import FakeExchange, FakeRepo
from trader.domain import Intent, IntentKind
from trader.execution.balances import BalanceCache, currencies_of
from trader.execution.order_manager import OrderManager
from trader.execution.states import OrderStatus
from trader.portfolio import Portfolio
from trader.upbit.client import Balance
from trader.upbit.events import MyAssetEvent

MARKET = "KRW-BTC"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def bal(cur: str, free: str, locked: str = "0") -> Balance:
    return Balance(cur, D(free), D(locked), D(0))


def test_cache_serves_a_read_until_max_age_then_misses():
    clock = Clock()
    c = BalanceCache(max_age_s=5, clock=clock)
    assert c.get("BTC") is None
    assert c.install({"BTC": bal("BTC", "0.5", "0.1")}, c.begin_read())
    clock.t += 4.9
    assert c.get("BTC") == (D("0.5"), D("0.1"))
    clock.t += 0.2
    assert c.get("BTC") is None


def test_a_read_overlapping_an_invalidation_is_not_installed():
    c = BalanceCache()
    token = c.begin_read()
    c.invalidate("BTC")  # e.g. an order of ours was sent while the read was in flight
    assert not c.install({"BTC": bal("BTC", "1")}, token)
    assert c.get("BTC") is None
    assert c.install({"BTC": bal("BTC", "1")}, c.begin_read())
    c.invalidate("BTC")
    assert c.get("BTC") is None


def test_a_currency_missing_from_a_later_read_is_cached_as_zero():
    c = BalanceCache()
    c.install({"BTC": bal("BTC", "1"), "KRW": bal("KRW", "5")}, c.begin_read())
    c.install({"KRW": bal("KRW", "5")}, c.begin_read())
    assert c.get("BTC") == (D(0), D(0))
    assert currencies_of("KRW-BTC") == ("KRW", "BTC")


async def no_sleep(_s: float) -> None:
    await asyncio.sleep(0)


def setup(**kw):
    ex = FakeExchange(D("1000000"), D("5000000"))
    pf = Portfolio(D("1000000"))
    om = OrderManager(ex, FakeRepo(), pf, namespace="t", clock=lambda: 1, sleep=no_sleep,
                      poll_interval_s=0.01, market_poll_s=0.001, **kw)  # fmt: skip
    return ex, pf, om


def buy(iid="b1"):
    return Intent(MARKET, IntentKind.BUY, "entry", 1, iid, krw=D("100000"))


def sell(iid="s1", kind=IntentKind.SELL, volume=None):
    return Intent(MARKET, kind, "stop_loss", 2, iid, volume=volume)


async def settle(om: OrderManager) -> None:
    if om._balance_refresh is not None:
        await om._balance_refresh


async def test_sell_after_a_settled_buy_is_sized_from_the_cache_without_a_rest_read():
    ex, pf, om = setup()
    assert (await om.execute(buy())).status == "filled"
    await settle(om)  # the background re-read after the buy went final
    assert ex.calls.count("accounts") == 1
    ex.calls.clear()
    res = await om.execute(sell())
    assert res.status == "filled" and res.filled_volume == D("0.02")
    assert "accounts" not in ex.calls
    assert ex.coin["BTC"] == 0 and pf.position(MARKET).volume == 0
    assert om.balances is not None and om.balances.hits == 1


async def test_stale_cache_insufficient_funds_rereads_rest_and_resizes_once():
    ex, _pf, om = setup()
    await om.execute(buy())
    await settle(om)
    ex.coin["BTC"] = D("0.015")  # sold by hand on the same account: our cache says 0.02
    ex.calls.clear()
    res = await om.execute(sell())
    first, retry = res.orders
    assert first.status is OrderStatus.REJECTED and "insufficient_funds_ask" in (first.error or "")
    assert first.volume == D("0.02")
    assert ex.calls.count("accounts") == 1  # the retry read REST, not the cache
    assert retry.volume == D("0.015") and retry.status is OrderStatus.FILLED
    assert res.filled_volume == D("0.015") and ex.coin["BTC"] == 0


async def test_cache_older_than_max_age_falls_back_to_rest():
    ex, _pf, om = setup(balance_max_age_s=0.0)
    await om.execute(buy())
    await settle(om)
    ex.calls.clear()
    await asyncio.sleep(0.001)
    res = await om.execute(sell())
    assert res.status == "filled"
    assert ex.calls[0] == "accounts"


async def test_without_a_cache_every_sell_reads_rest():
    ex, _pf, om = setup(balance_max_age_s=None)
    await om.execute(buy())
    assert om.balances is None and om._balance_refresh is None
    ex.calls.clear()
    await om.execute(sell())
    assert ex.calls[0] == "accounts"


async def test_my_asset_event_voids_the_cache_and_refreshes_it_in_the_background():
    ex, _pf, om = setup()
    await om.execute(buy())
    await settle(om)
    assert om.balances is not None and om.balances.get("BTC") == (D("0.02"), D(0))
    ex.coin["BTC"] = D("0.012")  # changed outside: the exchange pushes myAsset
    ex.calls.clear()
    om.notify(MyAssetEvent((("BTC", D("0.012"), D(0)),), 1))
    assert om.balances.get("BTC") is None
    await settle(om)
    assert ex.calls == ["accounts"]
    assert om.balances.get("BTC") == (D("0.012"), D(0))


async def test_open_order_on_the_market_bypasses_the_cache():
    ex, _pf, om = setup()
    await om.execute(buy())
    await settle(om)
    # a resting limit sell of ours (not final): its lock may change the balance at any moment
    resting = Intent(MARKET, IntentKind.SELL_PARTIAL, "take_profit", 3, "tp", volume=D("0.01"),
                     limit_price=D("6000000"))  # fmt: skip
    order = await om.submit_intent_fast(resting)
    assert order.status is OrderStatus.ACCEPTED
    await settle(om)
    ex.calls.clear()
    await om.execute(sell(iid="s2"))
    assert ex.calls[0] == "accounts"  # REST, and the resting sell was cancelled first
    assert ex.coin["BTC"] == 0


class StateRepo(FakeRepo):
    def __init__(self) -> None:
        super().__init__()
        self.states: dict[str, dict] = {}

    def load_strategy_state(self, name: str):
        return self.states.get(name)

    def save_strategy_state(self, name: str, state, ts_ms: int) -> None:
        self.states[name] = dict(state)


class QuietStrategy:
    def on_tick(self, tick, view):
        return []

    def state_dict(self):
        return {}


async def test_loop_tunes_the_gil_switch_interval_while_running_and_warms_the_cache():
    import sys
    from types import SimpleNamespace

    from trader.domain import Tick
    from trader.engine import TradingLoop

    seen: list[float] = []
    before = sys.getswitchinterval()

    async def stream():
        seen.append(sys.getswitchinterval())
        yield Tick(MARKET, 1, 5_000_000.0, 0.1, "BID", 1)

    ex = FakeExchange(D("1000000"), D("5000000"))
    cfg = SimpleNamespace(market=MARKET)
    loop = TradingLoop(cfg, ex, stream(), StateRepo(), Portfolio(D("1000000")), strategy=QuietStrategy(),
                       reconcile_on_start=False, gil_switch_interval_s=0.002)  # fmt: skip
    await loop.run()
    assert seen == [0.002] and sys.getswitchinterval() == before
    assert "accounts" in ex.calls  # the start-up refresh of the balance cache
