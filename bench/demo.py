"""Benchmark: `make demo`'s trading time — the same command (`python -m trader demo`), timed.

Runs the demo (`--runs` times, default 1) exactly as `make demo` does and prints, from the
figures it writes to var/reports/demo/summary.json: the wall time of the trading part (simulator
start to the end of the `trading` flow), trades per second through the lockstep loop, fills, the
fingerprint, and the whole demo's wall time; then the backtest's fingerprint over the same
window, which the demo's must equal.

    .venv/bin/python bench/demo.py [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_demo() -> tuple[dict, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "trader", "demo"], cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        raise SystemExit(f"the demo failed ({proc.returncode}):\n{tail}")
    return json.loads((ROOT / "var" / "reports" / "demo" / "summary.json").read_text(encoding="utf-8")), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="how many demos to run")
    args = parser.parse_args()
    from flows.demo import DEFAULT_DATA, DEFAULT_STRATEGY
    from trader.backtest.api import run_backtest

    prints = set()
    window: list[str] = []
    for i in range(args.runs):
        s, wall = run_demo()
        window = s["window"]
        prints.add(s["fingerprint"])
        mode = "lockstep" if s["lockstep"] else "free-running"
        print(f"demo run {i + 1} ({mode}, {window[0]} → {window[1]} KST): "
              f"trading part {s['trading_s']:.1f} s, "
              f"{s['ticks']:,} trades → {s['trades_per_s']:,.0f} trades/s, {s['fills']} fills, "
              f"fingerprint {s['fingerprint']}; whole demo {wall:.1f} s")
    t0 = time.perf_counter()
    bt = run_backtest(DEFAULT_STRATEGY, DEFAULT_DATA, start=window[0], end=window[1])
    print(f"backtest of the same window: fingerprint {bt.fingerprint[:16]}, {len(bt.output.fills)} fills, "
          f"{time.perf_counter() - t0:.2f} s")
    same = prints == {bt.fingerprint[:16]}
    print("fingerprints: " + ("all equal to the backtest's" if same else f"DIFFER: {sorted(prints)}"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
