"""Lockstep paper trading agrees with the backtest: same data, seed and ticks per candle → same fills.

A simulator in `lockstep` mode applies one trade and waits for the client's `/_sim/ack`; the
trading loop acks each tick (`after_tick`) once every in-flight order is settled (market orders
confirmed, limit orders resting or finished; see engine.py, "lockstep"). Every order then meets
the exchange as of the trade that caused it, as in the backtest (trader/backtest/runner.py), so
the fills must be the same, one for one. Limit orders: test_trading_lockstep_limits.py.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.trading.harness import LoopRig, strategy
from trader.backtest.api import run_backtest
from trader.domain import Tick
from trader.engine import Observers
from trader.execution.order_manager import ExecutionResult
from trader.marketdata.candles import load_frame, slice_time
from trader.sim.lockstep import LockstepAck
from trader.sim.server import SimulatorThread

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"
SEED = 3
TICKS_PER_CANDLE = 8
MARKET = "KRW-ETH"


def _slice(tmp_path: Path, start: str, end: str) -> Path:
    """The same candles for both runs: a file the simulator replays from its first trade."""
    _kind, frame = load_frame(DATA)
    part = slice_time(frame, start, end).reset_index(drop=True)
    path = tmp_path / f"{MARKET}_15m_slice.parquet"
    part.to_parquet(path, index=False)
    return path


def _config() -> Any:
    # market orders only: immediate entry, a stop and a take-profit ladder, re-entering at once
    return strategy(
        MARKET,
        order_krw=1_000_000,
        entry={"immediate": True},
        exits={"stop_loss": 0.004,
               "take_profit": [{"gain": 0.003, "sell": 0.5}, {"gain": 0.006, "sell": 0.5}]},
    )


def _backtest_fills(config: Any, data: Path) -> list[tuple[str, str, Decimal, Decimal]]:
    res = run_backtest(config, data, seed=SEED, ticks_per_candle=TICKS_PER_CANDLE, skip=False)
    return [(f.side, f.reason, f.price, f.volume) for f in res.output.fills]


async def _paper_fills(config: Any, data: Path, db: Path, *, via: str = "ws"
                       ) -> tuple[list[tuple[str, str, Decimal, Decimal]], int]:
    results: list[ExecutionResult] = []
    opts = dict(data=data, market=MARKET, seed=SEED, ticks_per_candle=TICKS_PER_CANDLE, speed=None,
                lockstep=True, rate_limit=False)
    with SimulatorThread(**opts) as sim:
        total = sim.sim.feed.state()["total"]
        last_ts = int(sim.sim.feed.trades.ts_ms[-1])
        async with httpx.AsyncClient(base_url=sim.base_url, timeout=10) as http:

            async def rest_ack(tick: Tick) -> None:
                r = await http.post("/_sim/ack", json={"seq": tick.seq})
                r.raise_for_status()

            hook: list[Any] = [rest_ack]
            obs = Observers(on_result=results.append)

            async def ack(tick: Tick) -> None:
                await hook[0](tick)

            rig = LoopRig(sim, config, db, after_tick=ack, observers=obs, stop_at_ms=last_ts,
                          status_every_s=3600)
            ws_ack = LockstepAck(rig.public, sim.base_url)
            if via == "ws":
                hook[0] = ws_ack
            async with rig:
                assert rig.task is not None
                await rig.task
            if via == "ws":
                await ws_ack.close()
                assert ws_ack.sent == total - 1 and ws_ack.fallbacks == 0  # the last one is not acked
            state = sim.control.state()
            assert state["finished"], state
            assert state["lockstep"]["timeouts"] == 0, state
            assert rig.loop.stats.ticks == total  # every trade reached the strategy once
    fills = [(f.side.value, r.intent.reason, f.price, f.volume)
             for r in results for o in r.orders for f in o.fills]
    return fills, total


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("via", "start", "end"), [("ws", "2024-03-04", "2024-03-06"),
                                                    ("rest", "2024-03-04", "2024-03-04T12:00")])
async def test_lockstep_paper_fills_equal_backtest(tmp_path: Path, via: str, start: str, end: str) -> None:
    data = _slice(tmp_path, start, end)
    config = _config()
    expected = _backtest_fills(config, data)
    assert len(expected) >= 6, "the slice must make the strategy trade"
    assert {r for _, r, _, _ in expected} >= {"entry", "stop_loss", "take_profit_1"}
    got, total = await _paper_fills(config, data, tmp_path / "paper.db", via=via)
    print(f"lockstep agreement ({via}): {len(got)} paper fills vs {len(expected)} backtest fills, "
          f"{total} trades")
    assert got == expected
