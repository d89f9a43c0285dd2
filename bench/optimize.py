"""Optimiser benchmark: prints CPU (and wall) seconds per trial, a worker's peak memory, and the wall
time of a whole --local study. CPU time is the figure to read on a shared machine.

1. a year of 15-minute KRW-ETH (data/KRW-ETH_15m_2024.parquet): per-trial CPU of `evaluate` once the
   trades are cached, demo.yaml with demo.space.yaml points and default.yaml (market KRW-ETH) —
   target ≤ 0.1 s; the first (cache-filling) trial separately;
2. a year of 1-minute candles (525,600, the seeded random walk bench/backtest.py makes), default.yaml
   with points of a small space — target ≤ 0.3 s CPU per trial once cached;
3. peak resident memory of a worker process for the 1-minute year (cache mapped, a few trials) —
   target < 400 MiB — and of a bare process that only imports the same modules (the fixed part);
4. `python -m trader optimize --local` over the 15-minute year, 200 trials: wall and CPU seconds.
Run: .venv/bin/python bench/optimize.py [--quick] (quick: fewer trials, 20 in the study).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

EXAMPLES = ROOT / "trader" / "strategy" / "examples"
ETH_15M = ROOT / "data" / "KRW-ETH_15m_2024.parquet"
SPACE_1M = {"params": {"entry.volatility_breakout.k": {"low": 0.2, "high": 1.0, "step": 0.05},
                       "exits.stop_loss": {"low": 0.01, "high": 0.05},
                       "exits.take_profit[0].gain": {"low": 0.01, "high": 0.03}}}


def _strategy(name: str, market: str | None = None) -> dict:
    data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    if market:
        data["market"] = market
    return data


def _points(space_dict: dict, strategy: dict, n: int, seed: int = 1) -> list[dict]:
    """n random points of the space that meet its constraints (the strategy's own values first)."""
    from trader.optimize.space import base_values, load_space, satisfied

    space = load_space(space_dict, strategy)
    rng = random.Random(seed)
    out = [base_values(space, strategy)]
    while len(out) < n:
        point = {p.path: p.sample(rng) for p in space.params}
        if satisfied(space, point, strategy):
            out.append(point)
    return out


def per_trial(label: str, spec, points: list[dict]) -> None:
    from trader.optimize.trial import evaluate

    t0, c0 = time.perf_counter(), time.process_time()
    first = evaluate(spec, points[0])
    first_wall, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    trades = []
    for p in points:
        trades.append(evaluate(spec, p).trades)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(points)
    print(f"[{label}] trades synthesized={first.summary.get('ticks', 0):,} first trial (fills the cache) "
          f"cpu={first_cpu:.2f}s wall={first_wall:.2f}s; cached: {n} trials cpu/trial={cpu / n:.3f}s "
          f"wall/trial={wall / n:.3f}s round trips {min(trades)}..{max(trades)}", flush=True)


def _write_1m_year(folder: Path, n: int) -> Path:
    from trader.marketdata.synth import random_walk_candles

    path = folder / f"random_walk_1m_{n}.parquet"
    if not path.exists():
        random_walk_candles(n, seed=7).to_parquet(path)
    return path


# VmHWM (the process's own peak RSS): ru_maxrss of a child started from a big parent reports the
# parent's size, since Linux carries the high-water mark over fork and exec
WORKER = """
import sys, json

def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

sys.path.insert(0, {root!r})
from trader.optimize.study import OptimizeSpec
from trader.optimize.trial import evaluate
spec = OptimizeSpec(**json.loads({spec!r}))
points = json.loads({points!r})
if {bare}:
    print(f"{{peak_mib():.0f}}")
    sys.exit(0)
for p in points:
    evaluate(spec, p)
print(f"{{peak_mib():.0f}}")
"""


def worker_memory(spec, points: list[dict]) -> None:
    import json
    from dataclasses import asdict

    env = dict(os.environ)
    peaks = {}
    for bare in (True, False):
        code = WORKER.format(root=str(ROOT), spec=json.dumps(asdict(spec)), points=json.dumps(points),
                             bare=bare)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"worker failed: {out.stderr[-2000:]}")
        peaks[bare] = out.stdout.strip().splitlines()[-1]
    print(f"[1m year worker] peak RSS after {len(points)} trials (cache mapped) = {peaks[False]} MiB "
          f"(imports alone {peaks[True]} MiB)", flush=True)


def study_wall(trials: int, tmp: Path) -> None:
    cmd = [sys.executable, "-m", "trader", "optimize", "--local", "--strategy", str(EXAMPLES / "demo.yaml"),
           "--space", str(EXAMPLES / "demo.space.yaml"), "--data", str(ETH_15M), "--trials", str(trials),
           "--seed", "0", "--storage", f"sqlite:///{tmp}/bench-{time.time_ns()}.db", "--top", "3"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"[optimize --local, 15m ETH year, demo.yaml] {trials} trials wall={wall:.1f}s cpu={cpu:.1f}s "
          f"({wall / trials:.3f} s wall per trial)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials (20 in the --local study)")
    args = ap.parse_args()
    n_points = 5 if args.quick else 12
    with tempfile.TemporaryDirectory(prefix="bench-optimize-") as tmp_s:
        tmp = Path(tmp_s)
        os.environ["TRADER_VAR_DIR"] = str(tmp / "var")  # a cold cache: the first trial fills it
        from trader.optimize.study import OptimizeSpec

        demo = _strategy("demo.yaml")
        demo_space = yaml.safe_load((EXAMPLES / "demo.space.yaml").read_text(encoding="utf-8"))
        spec = OptimizeSpec(demo, demo_space, str(ETH_15M), seed=0, min_trades=0)
        per_trial("15m ETH year, demo.yaml", spec, _points(demo_space, demo, n_points))
        default = _strategy("default.yaml", "KRW-ETH")
        spec = OptimizeSpec(default, SPACE_1M, str(ETH_15M), seed=0, min_trades=0)
        per_trial("15m ETH year, default.yaml", spec, _points(SPACE_1M, default, n_points))

        data_1m = _write_1m_year(tmp, 525_600)
        default_btc = _strategy("default.yaml")
        spec = OptimizeSpec(default_btc, SPACE_1M, str(data_1m), seed=0, min_trades=0)
        points = _points(SPACE_1M, default_btc, n_points)
        per_trial("1m random-walk year, default.yaml", spec, points)
        worker_memory(spec, points[:3])
        study_wall(20 if args.quick else 200, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
