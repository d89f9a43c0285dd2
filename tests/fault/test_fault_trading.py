"""Faults over loopback with the simulator's /_sim/ controls: dropped sockets, 429/5xx, timeouts.

Each test ends with the same books check (tests/fault/checks.py): every exchange order was
recorded first and never doubled, every fill is stored exactly once, ledger == exchange.
"""

import asyncio

from tests.fault.checks import assert_books_match_async
from tests.integration.trading.harness import LoopRig, strategy, wait_for

DIP = {"dip": {"drop": 0.02, "lookback_s": 3600}}  # enters only when the test pushes a 2 % dip


def done_with(rig: LoopRig, reason: str):
    return lambda: not rig.loop.inflight and any(o.reason == reason for o in rig.repo.orders())


async def test_fault_stop_fires_after_the_websocket_drops_while_the_price_falls(make_sim, tmp_path):
    sim = make_sim(krw=1_000_000)
    cfg = strategy(sim.market)
    async with LoopRig(sim, cfg, tmp_path / "t.db") as rig:
        p = rig.price()
        await rig.push(p)
        await wait_for(lambda: rig.loop.portfolio.position(cfg.market).volume > 0 and not rig.loop.inflight,
                       what="position open")  # fmt: skip
        # the sockets drop; while the client is away the price falls through the 3 % stop, and
        # then nothing trades: only what the client catches up on after reconnecting can fire it
        await asyncio.to_thread(sim.control.drop_websockets)
        await rig.push(p * 0.985, p * 0.95)
        await wait_for(done_with(rig, "stop_loss"), what="stop-loss after reconnect")
        assert rig.public.stats.reconnects >= 1
        assert rig.loop.portfolio.position(cfg.market).volume == 0
        counts = await assert_books_match_async(sim.exchange, rig.repo, cfg.market)
        assert counts == {"orders": 2, "fills": 2}


async def test_fault_429_and_5xx_bursts_during_orders_neither_double_nor_lose_them(make_sim, tmp_path):
    sim = make_sim(krw=1_000_000)
    cfg = strategy(sim.market, entry=DIP)
    async with LoopRig(sim, cfg, tmp_path / "t.db") as rig:
        p = rig.price()
        await rig.push(p)
        for status, n in ((429, 2), (503, 2), (500, 1)):
            await asyncio.to_thread(sim.control.fail_next, n, status)
        await rig.push(p * 0.975)  # the dip: entry goes out into the failures
        await wait_for(done_with(rig, "entry"), what="entry through 429/5xx")
        assert sim.control.state() is not None
        assert rig.loop.portfolio.position(cfg.market).volume > 0
        for status, n in ((500, 3), (429, 2)):
            await asyncio.to_thread(sim.control.fail_next, n, status)
        await rig.push(p * 0.975 * 0.96)  # the stop: cancel check, balance read, sell, all failing first
        await wait_for(done_with(rig, "stop_loss"), what="stop through 5xx/429")
        counts = await assert_books_match_async(sim.exchange, rig.repo, cfg.market)
        assert counts == {"orders": 2, "fills": 2}
        assert [o.state for o in rig.repo.orders()] == ["done", "done"]


async def test_fault_timeouts_keep_the_order_in_doubt_until_it_is_resolved(make_sim, tmp_path):
    """Every request outlives the client's timeout: the order goes in doubt and stays there (no
    blind re-send) while lookups keep failing; once the exchange answers, one order results."""
    sim = make_sim(krw=1_000_000)
    cfg = strategy(sim.market, entry=DIP)
    async with LoopRig(sim, cfg, tmp_path / "t.db", rest_timeout_s=0.3) as rig:
        p = rig.price()
        await rig.push(p)
        await asyncio.to_thread(sim.control.set_latency, 500)
        await rig.push(p * 0.975)
        await wait_for(lambda: any(o.state == "ambiguous" for o in rig.repo.orders()), what="in doubt")
        await asyncio.sleep(0.5)
        assert [o.state for o in rig.repo.orders()] == ["ambiguous"] and rig.loop.inflight
        await asyncio.to_thread(sim.control.set_latency, 0)
        await wait_for(done_with(rig, "entry"), what="entry resolved")
        counts = await assert_books_match_async(sim.exchange, rig.repo, cfg.market)
        assert counts == {"orders": 1, "fills": 1}
