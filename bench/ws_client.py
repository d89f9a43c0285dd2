"""WebSocket client benchmark: official SDK `ws_public` vs `UpbitWebSocket` (websockets + orjson).

Starts the simulator as a separate process at --speed max (so its CPU is not counted here),
subscribes to `trade` of its market, lets the feed run for a fixed time per client and prints
messages/s decoded into `Tick`s and the client's CPU per message (time.process_time of this
process, which only runs the client). Clients run one after another on the same feed.

    .venv/bin/python bench/ws_client.py [--seconds 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trader.domain import Tick
from trader.sim.server import SimulatorProcess
from trader.upbit.ws import UpbitWebSocket, request_payload, subscription

Runner = Callable[[SimulatorProcess, asyncio.Event, list[Tick]], Awaitable[None]]


async def run_ours(sim: SimulatorProcess, stop: asyncio.Event, out: list[Tick], fmt: str) -> None:
    ws = UpbitWebSocket(sim.ws_url, subscriptions=[subscription("trade", [sim.market])], fmt=fmt)  # type: ignore[arg-type]

    async def consume() -> None:
        async for ev in ws:
            if isinstance(ev, Tick):
                out.append(ev)

    task = asyncio.create_task(consume())
    await stop.wait()
    await ws.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run_sdk(sim: SimulatorProcess, stop: asyncio.Event, out: list[Tick]) -> None:
    from upbit import AsyncUpbit

    client = AsyncUpbit(access_key=sim.access_key, secret_key=sim.secret_key, base_url=sim.base_url,
                        websocket_base_url=sim.ws_base_url, max_retries=0)
    conn = await client.ws_public.connect_public().enter()
    await conn.send_raw(request_payload([subscription("trade", [sim.market])], "SIMPLE"))

    async def consume() -> None:
        while True:
            ev = await conn.recv()  # the SDK's own decode: typed pydantic models
            if getattr(ev, "ty", None) == "trade":
                out.append(Tick(ev.cd, ev.ttms, float(ev.tp), float(ev.tv), ev.ab or "BID", int(ev.sid or 0)))

    task = asyncio.create_task(consume())
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    await conn.close()
    await client.close()


async def measure(
    sim: SimulatorProcess, name: str, runner: Runner, seconds: float
) -> tuple[float, float, int]:
    out: list[Tick] = []
    stop = asyncio.Event()
    task = asyncio.create_task(runner(sim, stop, out))
    await asyncio.sleep(0.5)  # connected and subscribed
    await asyncio.to_thread(sim.control.resume, "max")
    n0, wall0, cpu0 = len(out), time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    n1, wall1, cpu1 = len(out), time.perf_counter(), time.process_time()
    await asyncio.to_thread(sim.control.pause)
    stop.set()
    await task
    n = n1 - n0
    rate = n / (wall1 - wall0)
    cpu_us = (cpu1 - cpu0) / n * 1e6 if n else float("nan")
    print(f"  {name:<38} {n:>9} ticks  {rate:>10,.0f} msg/s  {cpu_us:>7.1f} µs CPU/msg", flush=True)
    return rate, cpu_us, n


async def main(seconds: float, rounds: int) -> None:
    clients: list[tuple[str, Runner]] = [
        ("sdk ws_public (pydantic models)", run_sdk),
        ("UpbitWebSocket websockets+orjson SIMPLE", lambda s, e, o: run_ours(s, e, o, "SIMPLE")),
        ("UpbitWebSocket websockets+orjson DEFAULT", lambda s, e, o: run_ours(s, e, o, "DEFAULT")),
    ]
    # 32 trades per 15-min candle of 2024: ~1.1 M trades, enough for several rounds at max speed
    sim_args = ["--speed", "max", "--paused", "--no-rate-limit", "--ticks-per-candle", "32"]
    with SimulatorProcess(sim_args) as sim:
        print(f"simulator {sim.base_url} market {sim.market}; {seconds:.0f} s per client per round")
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _ in clients}
        for r in range(rounds):
            print(f"round {r + 1}")
            for name, runner in clients:
                results[name].append(await measure(sim, name, runner, seconds))
    print("best of rounds (msg/s is bounded by the simulator process on a shared machine; "
          "CPU/msg is the client's own cost):")
    for name, rs in results.items():
        rate = max(x[0] for x in rs)
        cpu = min((x[1] for x in rs if x[2]), default=float("nan"))
        print(f"  {name:<38} {rate:>10,.0f} msg/s  {cpu:>7.1f} µs CPU/msg")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    asyncio.run(main(args.seconds, args.rounds))
