"""A paper run stops by itself when the replay has no more data (`watch_replay_end`).

Before, a run whose `--until-ts` lay past the end of the data (or that had none) never stopped.
In lockstep the end is taken once the simulator's last trade is acked — the loop acks a trade only
after handling it — so every trade reached the strategy and the run's fills are those of the
backtest; without lockstep it is taken after two polls that both saw the replay over.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.trading.harness import LoopRig
from tests.integration.trading.test_trading_lockstep import (
    MARKET,
    SEED,
    TICKS_PER_CANDLE,
    _backtest_fills,
    _config,
    _slice,
    _Unpaced,
)
from trader.engine import Observers
from trader.execution.order_manager import ExecutionResult
from trader.sim.lockstep import LockstepAck, watch_replay_end
from trader.sim.server import SimulatorThread

REASON = "replay ended"


@pytest.mark.timeout(120)
async def test_lockstep_run_without_until_stops_at_the_end_of_the_data(tmp_path: Path) -> None:
    data = _slice(tmp_path, "2024-03-04", "2024-03-04T12:00")
    config = _config()
    expected = _backtest_fills(config, data)
    results: list[ExecutionResult] = []
    with SimulatorThread(data=data, market=MARKET, seed=SEED, ticks_per_candle=TICKS_PER_CANDLE, speed=None,
                         lockstep=True, rate_limit=False) as sim:
        total = sim.sim.feed.state()["total"]
        hook: list[LockstepAck] = []

        async def ack(tick):  # type: ignore[no-untyped-def]
            await hook[0](tick)

        rig = LoopRig(sim, config, tmp_path / "p.db", after_tick=ack, status_every_s=3600,
                      observers=Observers(on_result=results.append))  # no stop_at_ms: no end given
        rig.rest.limiter = _Unpaced()
        hook.append(LockstepAck(rig.public, sim.base_url))
        ended: list[int] = []

        def on_end() -> None:
            ended.append(rig.loop.stats.ticks)
            rig.loop.stop(REASON)

        async with rig:
            assert rig.task is not None
            watcher = asyncio.create_task(watch_replay_end(sim.base_url, on_end, every_s=0.05))
            await asyncio.wait_for(rig.task, 90)  # ends by itself
            await asyncio.wait_for(watcher, 5)  # and the watcher returned after calling back once
        await hook[0].close()
    assert rig.loop.stop_reason == REASON
    assert ended == [total] and rig.loop.stats.ticks == total  # every trade handled before the end
    got = [(f.side.value, r.intent.reason, f.price, f.volume)
           for r in results for o in r.orders for f in o.fills]
    assert got == expected


@pytest.mark.timeout(60)
async def test_free_running_replay_end_is_reported_too(tmp_path: Path) -> None:
    data = _slice(tmp_path, "2024-03-04", "2024-03-04T02:00")
    with SimulatorThread(data=data, market=MARKET, speed=None, paused=True, rate_limit=False) as sim:
        calls: list[dict] = []
        watcher = asyncio.create_task(
            watch_replay_end(sim.base_url, lambda: calls.append(sim.control.state()), every_s=0.05))
        await asyncio.sleep(0.3)
        assert not calls and not watcher.done()  # paused at the first trade: not over
        await asyncio.to_thread(sim.control.resume)
        await asyncio.wait_for(watcher, 10)
        assert len(calls) == 1 and calls[0]["finished"] and calls[0]["ended"]
