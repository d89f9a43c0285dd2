"""On a fast replay a filled limit order must be confirmed to the strategy at once.

Regression: on a lockstep (or max-speed) replay market time outran the database; every tick
queued an equity point and a strategy-state save, and the confirmation of a filled limit entry
waited behind that backlog until the replay ended — so the strategy never learnt it was in a
position and no exit fired (1 decision over three days where the backtest makes dozens).
"""

from pathlib import Path

import pytest

from tests.integration.trading.harness import LoopRig
from tests.integration.trading.test_trading_lockstep import _slice
from trader.sim.lockstep import LockstepAck
from trader.sim.server import SimulatorThread
from trader.strategy.config import load_strategy

DEMO = Path(__file__).resolve().parents[3] / "trader" / "strategy" / "examples" / "demo.yaml"


@pytest.mark.timeout(240)
async def test_limit_entries_are_confirmed_while_the_replay_runs(tmp_path: Path) -> None:
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
        hook.append(LockstepAck(rig.public, sim.base_url))
        async with rig:
            assert rig.task is not None
            await rig.task
        await hook[0].close()
        reasons = [o.reason for o in rig.repo.orders()]
    assert reasons.count("entry") >= 3, reasons
    assert set(reasons) - {"entry"}, f"no exit ever fired: {reasons}"
