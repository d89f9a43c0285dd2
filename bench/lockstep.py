"""Lockstep paper benchmark: prints trades/s and wall seconds of lockstep paper runs, each next to
the backtest's wall time over the same candles and whether their fills are equal (fingerprints).

The paper run is built as `python -m trader run --paper --lockstep` builds it (trader/compose.py:
a simulator subprocess in lockstep mode, REST + WebSockets over loopback, SQLite ledger); its
wall time is the trading part only (the loop's run until the replay ends, not the simulator's
start-up). Acks carry the loop's quiet band (trader/sim/ackgate.py), so trades that cannot make
the strategy act nor fill a resting order go by without a round trip each.

1. demo.yaml over data/KRW-ETH_15m_2024.parquet, 2024-01-01T09:00 → 2024-01-22T09:00 KST (the demo)
2. a limit-heavy month: demo.yaml with limit orders for entry, take-profit and max-hold (offset
   3 ticks, 900 s, reprice) over data/KRW-ETH_60m_2024.parquet, 2024-03-01 → 2024-04-01 KST
Run: .venv/bin/python bench/lockstep.py [--only demo|month] [--no-band]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trader.backtest.api import run_backtest  # noqa: E402
from trader.compose import PaperSim, open_run, paper_venue, start_simulator  # noqa: E402
from trader.config import load_settings  # noqa: E402
from trader.fingerprint import fingerprint  # noqa: E402
from trader.sim.lockstep import current_band  # noqa: E402
from trader.strategy.config import parse_strategy  # noqa: E402

DEMO = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
CASES: dict[str, dict[str, Any]] = {
    "demo": {"data": ROOT / "data" / "KRW-ETH_15m_2024.parquet", "start": "2024-01-01T09:00",
             "end": "2024-01-22T09:00", "limit_orders": None},
    "month": {"data": ROOT / "data" / "KRW-ETH_60m_2024.parquet", "start": "2024-03-01",
              "end": "2024-04-01",
              "limit_orders": {"use_for": ["entry", "take_profit", "max_hold"], "offset_ticks": 3,
                               "timeout_s": 900, "on_timeout": "reprice"}},
}


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _config(limit_orders: dict[str, Any] | None) -> Any:
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    if limit_orders is not None:
        data["limit_orders"] = limit_orders
    return parse_strategy(data, str(DEMO))


async def _paper(config: Any, case: dict[str, Any], workdir: Path, *, band: bool = True) -> dict[str, Any]:
    sim = start_simulator(PaperSim(market=config.market, data=case["data"], lockstep=True,
                                   start=case["start"], end=case["end"]), workdir)
    venue = paper_venue(sim.base_url, sim)
    run = await open_run(config, venue, f"sqlite:///{(workdir / 'paper.db').as_posix()}",
                         settings=load_settings(), lockstep=True, status_every_s=3600)
    if not band:  # the protocol before fast-forward, for comparison: every trade waits for its ack
        ack = run.ack

        async def plain(tick: Any) -> None:
            current_band.set(None)
            await ack(tick)

        run.loop.after_tick = plain
        run.loop.tick_hook.coalesce = False
    try:
        t0, c0, s0 = time.perf_counter(), time.process_time(), _proc_cpu_s(sim.proc.pid)
        await run.run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        sim_cpu = _proc_cpu_s(sim.proc.pid) - s0
        fp = await asyncio.to_thread(run.fingerprint)
        from trader.compose import simulator_state

        state = await simulator_state(venue.rest_url) or {}
    finally:
        await run.close()
    stats = run.loop.stats
    return {"wall": wall, "cpu": cpu, "sim_cpu": sim_cpu, "ticks": stats.ticks, "fills": stats.fills,
            "stop": run.loop.stop_reason, "fp": fp, "gate": state.get("lockstep", {}),
            "acks": getattr(run.ack, "sent", 0), "limiter_s": run.rest.limiter.waited_s}


def bench(name: str, band: bool = True) -> None:
    case = CASES[name]
    config = _config(case["limit_orders"])
    t0 = time.perf_counter()
    bt = run_backtest(config, case["data"], start=case["start"], end=case["end"])
    bt_wall = time.perf_counter() - t0
    bt_fp = fingerprint(bt.output.fills)
    with tempfile.TemporaryDirectory(prefix="bench-lockstep-") as tmp:
        p = asyncio.run(_paper(config, case, Path(tmp), band=band))
    gate = p["gate"]
    same = "yes" if p["fp"] == bt_fp else "NO"
    mode = "" if band else " (no band: one ack per trade)"
    print(f"[{name}] {case['data'].name} {case['start']} -> {case['end']} KST, {p['ticks']:,} trades\n"
          f"  lockstep paper{mode}: wall {p['wall']:.2f}s, {p['ticks'] / p['wall']:,.0f} trades/s "
          f"(cpu: loop {p['cpu']:.2f}s, simulator {p['sim_cpu']:.2f}s; REST rate-limit waits "
          f"{p['limiter_s']:.1f}s) stop={p['stop']!r}\n"
          f"  simulator: {gate.get('passed', '?')} trades passed on a band, {gate.get('held', '?')} held "
          f"for their ack; client acks sent {p['acks']:,}\n"
          f"  backtest: wall {bt_wall:.2f}s; fills paper {p['fills']} / backtest {len(bt.output.fills)}, "
          f"equal: {same} (paper {p['fp'][:16]}, backtest {bt_fp[:16]})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(CASES), help="run one case")
    ap.add_argument("--no-band", action="store_true",
                    help="for comparison: plain acks, so the simulator waits for every trade's ack")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    for name in [args.only] if args.only else list(CASES):
        bench(name, band=not args.no_band)


if __name__ == "__main__":
    main()
