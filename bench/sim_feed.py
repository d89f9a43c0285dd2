"""Benchmark: WebSocket messages/s the simulator pushes at --speed max to 1 and to 10 clients.

Starts `python -m trader sim --speed max --paused` as a subprocess, connects N readers
(websockets, SIMPLE trade messages, realtime only), resumes the feed and counts what the readers
receive over a fixed window. Prints the figures; it asserts nothing (speed is hardware-bound).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
import websockets

from trader.sim.server import SimulatorProcess


async def run_clients(sim: SimulatorProcess, n_clients: int, seconds: float) -> tuple[int, float, list[int]]:
    counts = [0] * n_clients
    request = orjson.dumps([{"ticket": "bench"}, {"type": "trade", "codes": [sim.market],
                            "is_only_realtime": True}, {"format": "SIMPLE"}])
    conns = [await websockets.connect(sim.ws_url, max_queue=4096, compression=None) for _ in range(n_clients)]
    for ws in conns:
        await ws.send(request)
    await asyncio.sleep(0.3)
    stop = asyncio.Event()

    async def reader(i: int, ws: websockets.ClientConnection) -> None:
        while not stop.is_set():
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                return
            counts[i] += 1

    tasks = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(conns)]
    await asyncio.to_thread(sim.control.resume, "max")
    await asyncio.sleep(1.0)  # warm-up
    start_counts = sum(counts)
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - t0
    total = sum(counts) - start_counts
    stop.set()
    await asyncio.to_thread(sim.control.pause)
    for ws in conns:
        await ws.close()
    for t in tasks:
        t.cancel()
    return total, elapsed, counts


def _cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process (Linux /proc), to tell CPU-bound from starved."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, nargs="*", default=[1, 10])
    args = ap.parse_args()
    for n in args.clients:
        with SimulatorProcess(["--speed", "max", "--paused", "--no-rate-limit"]) as sim:
            assert sim.proc is not None
            cpu0, wall0 = _cpu_seconds(sim.proc.pid), time.perf_counter()
            total, elapsed, _ = asyncio.run(run_clients(sim, n, args.seconds))
            cpu1, wall1 = _cpu_seconds(sim.proc.pid), time.perf_counter()
            state = sim.control.state()
        rate = total / elapsed
        line = (f"sim_feed: {n:>2} client(s): {rate:>9,.0f} msgs/s delivered in total "
                f"({rate / n:,.0f} per client; feed applied {state['applied']:,} trades)")
        if cpu0 is not None and cpu1 is not None and cpu1 > cpu0:
            share = (cpu1 - cpu0) / (wall1 - wall0)
            # includes warm-up and set-up, so the per-CPU-second figure is a lower bound
            line += (f"; server used {share:.0%} of a core -> "
                     f">= {total / (cpu1 - cpu0):,.0f} msgs per server CPU-second")
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
