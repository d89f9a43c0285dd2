"""One execution policy: the backtest and a lockstep paper run over loopback make the same fills.

Every `limit_orders.use_for` value × every `on_timeout` policy runs through the backtest
(in-process matching, `trader.backtest.execution`) and through the trading loop's order manager
against the simulator in lockstep (HTTP + WebSocket over loopback); both drive the orders through
`trader.execution.policy`, so their fills — time, side, price, volume, fee, rule, intent id —
must be identical, and so must their fingerprints. The candles' volume is scaled down so that a
1,000,000 KRW limit order fills partly, over several trades, and resting orders really time out
(`timeout_s` is shorter than the time the market takes to come back to them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.trading.harness import LoopRig, strategy
from trader.backtest.api import run_backtest
from trader.fingerprint import fill_line, fingerprint
from trader.marketdata.candles import load_frame, slice_time
from trader.sim.lockstep import LockstepAck
from trader.sim.server import SimulatorThread
from trader.upbit.ratelimit import Unpaced

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"
MARKET = "KRW-ETH"
SEED = 5
TICKS_PER_CANDLE = 8
START, END = "2024-03-04T09:00", "2024-03-05T21:00"
VOLUME_SCALE = 0.0002  # per-trade volume ≈ 0.01 ETH: a 1,000,000 KRW order needs many trades

USE_FOR = ["entry", "take_profit", "reversal", "max_hold"]
ON_TIMEOUT = ["market", "reprice", "cancel"]


class _Row:
    """A fill as the fingerprint reads it."""

    __slots__ = ("fee", "intent_id", "price", "reason", "side", "ts_ms", "volume")

    def __init__(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self, k, v)



def _data(tmp_path: Path) -> Path:
    _kind, frame = load_frame(DATA)
    part = slice_time(frame, START, END).reset_index(drop=True)
    part["volume"] = (part["volume"] * VOLUME_SCALE).round(8)
    part["value"] = part["volume"] * part["close"]
    path = tmp_path / f"{MARKET}_15m_thin.parquet"
    part.to_parquet(path, index=False)
    return path


def _config(use_for: str, on_timeout: str) -> Any:
    return strategy(
        MARKET,
        order_krw=1_000_000,
        entry={"immediate": True},
        exits={
            "stop_loss": 0.012,
            "take_profit": [{"gain": 0.004, "sell": 0.5}, {"gain": 0.008, "sell": 0.5}],
            "reversal": {"min_gain": 0.002, "fast_ma": 2, "slow_ma": 4, "interval": "15m"},
            "max_hold_s": 5400,
        },
        limit_orders={"use_for": [use_for], "offset_ticks": 2, "timeout_s": 600, "on_timeout": on_timeout},
    )


def _backtest(config: Any, data: Path) -> tuple[dict, list[_Row]]:
    res = run_backtest(config, data, seed=SEED, ticks_per_candle=TICKS_PER_CANDLE, skip=True)
    rows = [_Row(ts_ms=f.ts_ms, side=f.side, price=f.price, volume=f.volume, fee=f.fee, reason=f.reason,
                 intent_id=f.intent_id) for f in res.output.fills]
    return res.output.execution_stats, rows


async def _paper(config: Any, data: Path, db: Path) -> list[Any]:
    with SimulatorThread(data=data, market=MARKET, seed=SEED, ticks_per_candle=TICKS_PER_CANDLE, speed=None,
                         lockstep=True, rate_limit=False) as sim:
        last_ts = int(sim.sim.feed.trades.ts_ms[-1])
        rig = LoopRig(sim, config, db, stop_at_ms=last_ts, status_every_s=3600, shutdown_grace_s=0.5)
        rig.rest.limiter = Unpaced()  # as the composition root gives a lockstep run
        ack = LockstepAck(rig.public, sim.base_url)
        rig.loop.after_tick = ack
        async with rig:
            assert rig.task is not None
            await rig.task
        await ack.close()
        # every fill booked, also those of an order still resting at the end (as the backtest's)
        return rig.repo.fingerprint_fills()


@pytest.fixture(scope="module")
def thin_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _data(tmp_path_factory.mktemp("parity"))


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("on_timeout", ON_TIMEOUT)
@pytest.mark.parametrize("use_for", USE_FOR)
async def test_backtest_and_lockstep_paper_make_the_same_fills(
    thin_data: Path, tmp_path: Path, use_for: str, on_timeout: str
) -> None:
    config = _config(use_for, on_timeout)
    stats, expected = _backtest(config, thin_data)
    # the policy really ran: limit orders timed out (and, but for `cancel`, fell back) and
    # limit orders filled over several trades
    assert stats["timeouts"] > 0 and stats["split_fills"] > 0, stats
    assert (stats["fallbacks"] > 0) == (on_timeout != "cancel"), stats
    reasons = {r.reason for r in expected}
    # the combination is really exercised: its limit orders were placed and some filled
    limit_reason = {"entry": "entry", "take_profit": "take_profit_1", "reversal": "reversal",
                    "max_hold": "max_hold"}[use_for]
    assert limit_reason in reasons, sorted(reasons)
    got = await _paper(config, thin_data, tmp_path / "paper.db")
    assert [fill_line(r) for r in got] == [fill_line(r) for r in expected]
    assert fingerprint(got) == fingerprint(expected)
