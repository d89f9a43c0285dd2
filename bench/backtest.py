"""Backtest benchmark: prints candles, trades, trades/s, wall seconds and peak memory
(peak resident set size of the process, from getrusage). CPU seconds are printed next to wall
seconds because a shared machine's wall time says little.

1. a year of 1-minute candles (525,600, seeded random walk) with examples/default.yaml, load
   (candle generation + trade synthesis) included — target < 5 s wall;
2. the real year of KRW-ETH 15-minute candles (data/KRW-ETH_15m_2024.parquet) with default.yaml
   (market set to KRW-ETH) — target < 1 s — and with demo.yaml (an order-heavy strategy);
3. engine + ledger alone, every trade through `on_price`, no skipping — target ≥ 500,000 trades/s.
Run: .venv/bin/python bench/backtest.py [--quick]
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

from trader.backtest.api import run_frame  # noqa: E402
from trader.backtest.runner import TICKS_PER_CANDLE  # noqa: E402
from trader.domain import Fill, IntentKind, Side  # noqa: E402
from trader.marketdata.candles import load_candles  # noqa: E402
from trader.marketdata.synth import random_walk_candles, synthesize_trades  # noqa: E402
from trader.portfolio import Portfolio  # noqa: E402
from trader.strategy.config import load_strategy  # noqa: E402
from trader.strategy.engine import StrategyEngine  # noqa: E402
from trader.strategy.sizing import to_decimal  # noqa: E402
from trader.upbit.rules import FEE_RATE, quantize_volume  # noqa: E402

EXAMPLES = ROOT / "trader" / "strategy" / "examples"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_year_1m(n: int) -> None:
    cfg = load_strategy(EXAMPLES / "default.yaml")
    t0, c0 = time.perf_counter(), time.process_time()
    candles = random_walk_candles(n, seed=7)
    res = run_frame(cfg, "candles", candles, seed=0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = res.summary
    print(f"[1m year, default.yaml] candles={n:,} trades={s['ticks']:,} through on_tick="
          f"{s['ticks_processed']:,} fills={s['fills']} wall={wall:.2f}s cpu={cpu:.2f}s "
          f"(loop {s['wall_s']:.2f}s) "
          f"trades/s={s['ticks'] / wall:,.0f} return={s['return_pct']:+.2f}% peak_rss={_peak_rss_mb():.0f}MB")


def bench_real_15m(name: str) -> None:
    cfg = load_strategy(EXAMPLES / name)
    if cfg.market != "KRW-ETH":
        cfg = cfg.model_copy(update={"market": "KRW-ETH"})
    t0, c0 = time.perf_counter(), time.process_time()
    candles = load_candles(ROOT / "data" / "KRW-ETH_15m_2024.parquet")
    res = run_frame(cfg, "candles", candles, seed=0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = res.summary
    print(f"[ETH 15m 2024, {name}] candles={len(candles):,} trades={s['ticks']:,} through on_tick="
          f"{s['ticks_processed']:,} fills={s['fills']} wall={wall:.2f}s cpu={cpu:.2f}s "
          f"trades/s={s['ticks'] / wall:,.0f} peak_rss={_peak_rss_mb():.0f}MB")


def bench_engine_ledger(n: int) -> None:
    """Every trade through the engine, market fills at the trade price straight into the ledger."""
    cfg = load_strategy(EXAMPLES / "default.yaml")
    trades = synthesize_trades(random_walk_candles(n, seed=7), ticks_per_candle=TICKS_PER_CANDLE, seed=0)
    ts_l, px_l = trades.ts_ms.tolist(), trades.price.tolist()
    eng = StrategyEngine(cfg)
    pf = Portfolio(Decimal(10_000_000))
    market = cfg.market
    view = pf.view(market)
    on_price = eng.on_price
    fills = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for t, p in zip(ts_l, px_l, strict=True):
        intents = on_price(t, p, view)
        if intents:
            for it in intents:
                price = to_decimal(p)
                if it.kind is IntentKind.BUY:
                    vol = quantize_volume(it.krw / price)
                    side = Side.BID
                else:
                    vol = it.volume
                    side = Side.ASK
                funds = vol * price
                fills += 1
                fee = funds * FEE_RATE
                pf.apply_fill(Fill(f"f{fills}", f"o{fills}", market, side, price, vol, funds, fee, t))
                eng.on_order_result(it, vol, price, t)
            view = pf.view(market)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"[engine+ledger, default.yaml] trades={len(ts_l):,} fills={fills} wall={wall:.2f}s cpu={cpu:.2f}s "
          f"trades/s={len(ts_l) / wall:,.0f} peak_rss={_peak_rss_mb():.0f}MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a month instead of a year of 1-minute candles")
    args = ap.parse_args()
    n = 43_200 if args.quick else 525_600
    bench_real_15m("default.yaml")
    bench_real_15m("demo.yaml")
    bench_year_1m(n)
    bench_engine_ledger(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
