"""On a fast replay a filled limit order must be confirmed to the strategy at once.

Regression 1: on a lockstep (or max-speed) replay market time outran the database; every tick
queued an equity point and a strategy-state save, and the confirmation of a filled limit entry
waited behind that backlog until the replay ended — so the strategy never learnt it was in a
position and no exit fired (1 decision over three days where the backtest makes dozens).

Regression 2 (the test above failed ~1 run in 4 on a busy machine with `reasons == ['entry']`):
a lockstep ack waited only until a limit order was *sent*, not until its fill was booked, so the
replay kept going while the confirmation (REST polls, fsync'd SQLite commits of the fill and the
order state) ran behind it. When the machine was busy, committing the first entry's fill took
longer than the rest of the three-day replay (~2 s of wall time): the run ended with the entry
still "pending" in the strategy's view. Lockstep now settles every in-flight order before each
tick and before its ack (engine.py, "lockstep"), so a slow disk slows the replay instead of
leaving the strategy behind it; the second test makes the disk slow on purpose.
"""

import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.trading.harness import LoopRig
from tests.integration.trading.test_trading_lockstep import _slice
from trader.sim.lockstep import LockstepAck
from trader.sim.server import SimulatorThread
from trader.strategy.config import load_strategy

DEMO = Path(__file__).resolve().parents[3] / "trader" / "strategy" / "examples" / "demo.yaml"


async def _lockstep_reasons(tmp_path: Path, *, first_fill_delay_s: float = 0.0) -> list[str]:
    data = _slice(tmp_path, "2024-01-01", "2024-01-04")
    config = load_strategy(DEMO)  # limit orders for entries and take-profits
    assert "entry" in config.limit_orders.use_for
    with SimulatorThread(data=data, market="KRW-ETH", seed=0, ticks_per_candle=8, speed=None,
                         lockstep=True, rate_limit=False) as sim:
        last_ts = int(sim.sim.feed.trades.ts_ms[-1])
        hook: list[LockstepAck] = []

        async def ack(tick):  # type: ignore[no-untyped-def]
            await hook[0](tick)

        rig = LoopRig(sim, config, tmp_path / "p.db", after_tick=ack, stop_at_ms=last_ts)
        if first_fill_delay_s:
            record_fill = rig.repo.record_fill
            calls: list[int] = []

            def slow_record_fill(*args: Any, **kw: Any) -> bool:
                # a busy disk: the first fill's commit (on a worker thread) takes seconds
                calls.append(1)
                if len(calls) == 1:
                    time.sleep(first_fill_delay_s)
                return record_fill(*args, **kw)

            rig.repo.record_fill = slow_record_fill  # type: ignore[method-assign]
        hook.append(LockstepAck(rig.public, sim.base_url))
        async with rig:
            assert rig.task is not None
            await rig.task
        await hook[0].close()
        return [o.reason for o in rig.repo.orders()]


@pytest.mark.timeout(240)
async def test_limit_entries_are_confirmed_while_the_replay_runs(tmp_path: Path) -> None:
    reasons = await _lockstep_reasons(tmp_path)
    assert reasons.count("entry") >= 3, reasons
    assert set(reasons) - {"entry"}, f"no exit ever fired: {reasons}"


@pytest.mark.timeout(240)
async def test_lockstep_waits_for_a_slow_fill_commit(tmp_path: Path) -> None:
    # longer than the whole replay takes: without the lockstep settle the run ends first
    reasons = await _lockstep_reasons(tmp_path, first_fill_delay_s=4.0)
    assert reasons.count("entry") >= 3, reasons
    assert set(reasons) - {"entry"}, f"no exit ever fired: {reasons}"
