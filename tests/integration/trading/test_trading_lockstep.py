"""Lockstep paper trading agrees with the backtest: same data, seed and ticks per candle → same fills.

A simulator in `lockstep` mode applies a trade and waits for the client's ack unless the quiet band
of the client's last ack covers it (trader/sim/ackgate.py); the trading loop acks each tick
(`after_tick`) once every in-flight order is settled (market orders confirmed, limit orders
resting or finished; trader/sim/lockstep_sync.py), with its quiet band. Every order then meets the
exchange as of the trade that caused it, as in the backtest (trader/backtest/runner.py), so the
fills must be the same, one for one — with the band, with per-trade acks, and with plain acks (no
band: every trade waits). Limit orders: test_trading_lockstep_limits.py.
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
from trader.sim.lockstep_sync import LockstepSync
from trader.sim.server import SimulatorThread
from trader.upbit.ratelimit import RateLimiter

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


class _Unpaced(RateLimiter):
    """The simulator here enforces no rate limit: pacing requests would only slow the test down
    (lockstep squeezes a day of market time into seconds of wall time)."""

    def delay(self, group: str) -> float:
        return 0.0


async def _paper_fills(config: Any, data: Path, db: Path, *, via: str = "ws", coalesce: bool = True
                       ) -> tuple[list[tuple[str, str, Decimal, Decimal]], int]:
    """Fills of a lockstep paper run over `data`. `via`: "ws" (LockstepAck, ACK frames with the
    quiet band), "rest" (LockstepAck over POST /_sim/ack, with the band) or "plain" (a hook that
    posts {"seq"} only: no band, so the simulator waits for every trade's ack)."""
    results: list[ExecutionResult] = []
    opts = dict(data=data, market=MARKET, seed=SEED, ticks_per_candle=TICKS_PER_CANDLE, speed=None,
                lockstep=True, rate_limit=False)
    with SimulatorThread(**opts) as sim:
        total = sim.sim.feed.state()["total"]
        last_ts = int(sim.sim.feed.trades.ts_ms[-1])
        async with httpx.AsyncClient(base_url=sim.base_url, timeout=10) as http:

            async def plain_ack(tick: Tick) -> None:
                r = await http.post("/_sim/ack", json={"seq": tick.seq})
                r.raise_for_status()

            hook: list[Any] = [plain_ack]
            obs = Observers(on_result=results.append)

            async def ack(tick: Tick) -> None:
                await hook[0](tick)

            rig = LoopRig(sim, config, db, after_tick=ack, observers=obs, stop_at_ms=last_ts,
                          status_every_s=3600)
            rig.rest.limiter = _Unpaced()
            sync = rig.loop.tick_hook
            assert isinstance(sync, LockstepSync)  # the loop wraps a plain after_tick hook too
            sync.coalesce = coalesce
            lockstep_ack = LockstepAck(rig.public, sim.base_url, prefer_rest=via == "rest")
            if via != "plain":
                hook[0] = lockstep_ack
            async with rig:
                assert rig.task is not None
                await rig.task
            await lockstep_ack.close()
            state = sim.control.state()
            gate = state["lockstep"]
            assert state["finished"], state
            assert gate["timeouts"] == 0, state
            assert rig.loop.stats.ticks == total  # every trade reached the strategy once
            # every trade after the primed one either went by on a band or waited for its ack
            assert gate["passed"] + gate["held"] == total - 1, gate
            if via == "plain":
                assert gate["passed"] == 0, gate
            else:
                assert gate["passed"] > gate["held"], gate  # most trades need no round trip
                assert lockstep_ack.banded > 0
                assert lockstep_ack.fallbacks == 0
                if coalesce:
                    assert lockstep_ack.sent < total // 2, lockstep_ack.sent
                else:  # one ack per trade handled; the loop stops at the last one, unacked
                    assert lockstep_ack.sent == total - 1
    fills = [(f.side.value, r.intent.reason, f.price, f.volume)
             for r in results for o in r.orders for f in o.fills]
    return fills, total


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("via", "coalesce", "start", "end"), [
    ("ws", True, "2024-03-04", "2024-03-06"),
    ("rest", False, "2024-03-04", "2024-03-04T12:00"),
    ("plain", True, "2024-03-04", "2024-03-04T12:00"),
])
async def test_lockstep_paper_fills_equal_backtest(tmp_path: Path, via: str, coalesce: bool, start: str,
                                                   end: str) -> None:
    data = _slice(tmp_path, start, end)
    config = _config()
    expected = _backtest_fills(config, data)
    assert len(expected) >= 6, "the slice must make the strategy trade"
    assert {r for _, r, _, _ in expected} >= {"entry", "stop_loss", "take_profit_1"}
    got, total = await _paper_fills(config, data, tmp_path / "paper.db", via=via, coalesce=coalesce)
    print(f"lockstep agreement ({via}): {len(got)} paper fills vs {len(expected)} backtest fills, "
          f"{total} trades")
    assert got == expected
