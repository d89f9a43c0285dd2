"""Prefect in the trading loop: tick→order-request latency, subflow overhead, event-loop stalls.

Prints:
1. the cost of one `place-order` subflow (an already-filled order, so only Prefect's own
   bookkeeping is measured), sequential and 10 at once;
2. the event loop's lag (how late a 10 ms timer fires) while subflows run in the background;
3. tick→order-request p50/p99/max of the `trading` flow on the simulator (a separate process,
   replaying at --speed), with one place-order subflow per intent, and the same without them.
   The strategy enters immediately and exits on tight stops, so it trades constantly.

Run: .venv/bin/python bench/flow_latency.py [--seconds 60] [--speed 600]
It uses a temporary ephemeral Prefect API (its own PREFECT_HOME), offline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STRATEGY = """\
market: KRW-ETH
order_krw: 100000
entry:
  immediate: true
exits:
  stop_loss: 0.002
  trailing_stop: {activate_at: 0.002, trail: 0.001}
  max_hold_s: 3600
limit_orders:
  use_for: []
cooldown:
  after_sell_s: 0
"""


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


class _FilledManager:
    async def confirm(self, order: object) -> SimpleNamespace:
        intent = order.intent  # type: ignore[attr-defined]
        return SimpleNamespace(
            intent=intent,
            status="filled",
            filled_volume=Decimal(1),
            funds=Decimal(100),
            fees=Decimal("0.05"),
            avg_price=Decimal(100),
            orders=(order,),
            note="",
        )


def _fake_order(i: int) -> SimpleNamespace:
    intent = SimpleNamespace(market="KRW-ETH", kind="sell", reason="bench", intent_id=f"bench-{i}")
    return SimpleNamespace(intent=intent, identifier=f"at-bench-{i}")


async def subflow_overhead(n: int) -> dict[str, float]:
    from prefect import flow

    from flows.place_order import confirm_with_subflow

    out: dict[str, float] = {}

    @flow(name="bench-subflows", persist_result=False)
    async def parent() -> None:
        mgr = _FilledManager()
        await confirm_with_subflow(mgr, _fake_order(-1))  # warm-up
        walls = []
        for i in range(n):
            t = time.perf_counter()
            await confirm_with_subflow(mgr, _fake_order(i))
            walls.append(time.perf_counter() - t)
        out["seq_p50"], out["seq_max"] = statistics.median(walls), max(walls)
        lags: list[float] = []

        async def ticker(stop: asyncio.Event) -> None:
            nxt = time.perf_counter()
            while not stop.is_set():
                nxt += 0.01
                await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
                lags.append(time.perf_counter() - nxt)

        stop = asyncio.Event()
        tick_task = asyncio.create_task(ticker(stop))
        t = time.perf_counter()
        await asyncio.gather(*(confirm_with_subflow(mgr, _fake_order(1000 + i)) for i in range(10)))
        out["par10"] = time.perf_counter() - t
        stop.set()
        await tick_task
        out["lag_p50"], out["lag_p99"], out["lag_max"] = pct(lags, 0.5), pct(lags, 0.99), max(lags)

    await parent()
    return out


async def trading_latency(seconds: float, speed: str, subflows: bool, workdir: Path) -> dict:
    from flows.trading import trading
    from trader.sim.server import SimulatorProcess

    strategy = workdir / "bench-strategy.yaml"
    strategy.write_text(STRATEGY, encoding="utf-8")
    db = workdir / f"bench-{'sub' if subflows else 'inline'}.db"
    sim = SimulatorProcess(args=["--speed", speed, "--start", "2024-03-01T09:00"]).start()
    try:
        return await trading(
            strategy_path=str(strategy),
            paper=True,
            sim_url=sim.base_url,
            db_url=f"sqlite:///{db}",
            max_runtime_s=seconds,
            status_every_s=30.0,
            order_subflows=subflows,
        )
    finally:
        sim.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="trading time per variant")
    parser.add_argument("--speed", default="600", help="simulator speed (× real time)")
    parser.add_argument("--subflows", type=int, default=10, help="sequential subflows to time")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="flow-latency-"))
    os.environ.update(
        {
            "PREFECT_HOME": str(workdir / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "TRADER_VAR_DIR": str(workdir / "var"),
        }
    )
    os.environ.pop("PREFECT_API_URL", None)

    o = asyncio.run(subflow_overhead(args.subflows))
    print("place-order subflow overhead (order already filled: Prefect bookkeeping only)")
    print(f"  sequential: p50 {o['seq_p50'] * 1e3:.0f} ms, max {o['seq_max'] * 1e3:.0f} ms per subflow")
    print(f"  10 concurrent: {o['par10'] * 1e3:.0f} ms in total")
    print(
        f"  event-loop lag meanwhile (10 ms timer): p50 {o['lag_p50'] * 1e3:.1f} ms, "
        f"p99 {o['lag_p99'] * 1e3:.1f} ms, max {o['lag_max'] * 1e3:.1f} ms"
    )
    for subflows in (True, False):
        r = asyncio.run(trading_latency(args.seconds, args.speed, subflows, workdir))
        label = (
            "with a place-order subflow per intent" if subflows else "confirming in the engine (no subflow)"
        )
        print(f"tick→order-request, trading flow {label}, {args.seconds:.0f} s at {args.speed}x:")
        print(
            f"  orders {r['orders']}, fills {r['fills']}, ticks {r['ticks']}: "
            f"p50 {r['tick_to_order_ms_p50']:.1f} ms, p99 {r['tick_to_order_ms_p99']:.1f} ms, "
            f"max {r['tick_to_order_ms_max']:.1f} ms"
            if r["orders"]
            else "  no orders"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
