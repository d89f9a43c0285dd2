"""Portfolio backtest benchmark: prints markets, trades, fills, wall and CPU seconds, peak memory.

1. 10 GENERATED markets (seeded random walks) × a year of 15-minute candles, default.yaml on
   each, one balance, max_open_positions 3 — goal < 3 s in-process on one core;
2. 5 GENERATED markets × a year of 1-minute candles — goal < 8 s, peak memory < 1.5 GiB.
The markets are generated (KRW-G01 …), not real: no shipped data has that many markets at one
intraday interval. Run each case in its own process for an honest peak-memory figure:
  .venv/bin/python bench/portfolio.py [--case 15m|1m]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trader.backtest.portfolio import PortfolioBacktest  # noqa: E402
from trader.marketdata.synth import random_walk_candles, synthesize_trades  # noqa: E402
from trader.risk import RiskGate, RiskSpec  # noqa: E402
from trader.strategy.config import load_strategy  # noqa: E402

EXAMPLES = ROOT / "trader" / "strategy" / "examples"


def run(markets: int, candles: int, interval_ms: int, label: str) -> None:
    from trader.backtest.portfolio_api import risk_view

    base = load_strategy(EXAMPLES / "default.yaml")
    t0, c0 = time.perf_counter(), time.process_time()
    configs, trades = {}, {}
    for k in range(markets):
        m = f"KRW-G{k + 1:02d}"
        frame = random_walk_candles(candles, interval_ms=interval_ms, seed=100 + k,
                                    start_price=1_000_000.0 * (k + 1))
        configs[m] = base.model_copy(update={"market": m})
        trades[m] = synthesize_trades(frame, ticks_per_candle=8, seed=0, interval_ms=interval_ms)
    load_s = time.perf_counter() - t0
    gate = RiskGate(RiskSpec(max_open_positions=3))
    bt = PortfolioBacktest(configs, trades, krw=Decimal(10_000_000), gate=gate, risk_view=risk_view)
    out = bt.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = out.ticks
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"[{label}] markets={markets} (generated) trades={n:,} through on_tick={out.processed:,} "
          f"fills={len(out.fills)} refused={sum(r.repeats for r in out.refusals)} "
          f"max_open={out.max_open_seen} load={load_s:.2f}s loop={out.wall_s:.2f}s wall={wall:.2f}s "
          f"cpu={cpu:.2f}s peak_rss={peak:.0f}MB")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", choices=["15m", "1m", "all"], default="15m")
    args = p.parse_args()
    if args.case in ("15m", "all"):
        run(10, 35_040, 900_000, "10 x 15m year")
    if args.case in ("1m", "all"):
        run(5, 525_600, 60_000, "5 x 1m year")
    return 0


if __name__ == "__main__":
    sys.exit(main())
