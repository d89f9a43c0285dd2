"""Bench: 200 trials over a year of 15-minute KRW-ETH through the optimize flow on Dask.

    .venv/bin/python bench/optimize_dask.py [--trials 200] [--workers 2] [--skip-external]

Runs `python -m flows.optimize` twice against a Prefect server of its own (started here, in a
temporary PREFECT_HOME): on the default LocalCluster (one worker process per core) and on a Dask
scheduler and two worker processes started separately (`dask scheduler` / `dask worker`), as
on other machines. Prints wall time, trials/s, batches and the overhead share (slot time outside
run_worker; and counting the cluster's start and warm-up). Goal: < 60 s wall on 2 cores.
The trades cache is warmed first so both runs start from the same state.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DASK = Path(sys.executable).with_name("dask")
PREFECT = Path(sys.executable).with_name("prefect")
STRATEGY = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
SPACE = ROOT / "trader" / "strategy" / "examples" / "demo.space.yaml"
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp: Path, api: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
                "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1", "PREFECT_CLI_PROMPT": "false"})
    if api:
        env["PREFECT_API_URL"] = env["PREFECT_SERVER_UI_API_URL"] = api
    return env


def _wait(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{what} did not start in {timeout:.0f} s")


def start_prefect(tmp: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    proc = subprocess.Popen([str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=_env(tmp, api), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: urllib.request.urlopen(f"{api}/health", timeout=2).status == 200, "the Prefect server")
    return proc, api


def start_dask(tmp: Path, workers: int) -> tuple[list[subprocess.Popen], str]:
    sched = tmp / "scheduler.json"
    env = _env(tmp)
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    _wait(lambda: sched.exists() and sched.read_text().strip(), "the Dask scheduler")
    address = json.loads(sched.read_text())["address"]
    for i in range(workers):
        procs.append(subprocess.Popen([str(DASK), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--no-dashboard", "--name", f"bench{i}"], env=env, cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(workers, timeout=120)
    return procs, address


def run_flow(tmp: Path, api: str, label: str, trials: int, extra: list[str]) -> dict:
    out = tmp / f"{label}.json"
    cmd = [sys.executable, "-m", "flows.optimize", "--strategy", str(STRATEGY), "--space", str(SPACE),
           "--data", str(DATA), "--trials", str(trials), "--seed", "1",
           "--storage", f"sqlite:///{tmp}/{label}.db", "--json", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(tmp, api), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed:\n{proc.stderr[-4000:]}")
    doc = json.loads(out.read_text())
    return {"label": label, "process_wall_s": wall, **doc["cluster"]}


def show(r: dict) -> None:
    rate = r["trials"] / r["wall_s"] if r["wall_s"] else 0.0
    print(f"{r['label']:>9}: {r['trials']} trials in {r['process_wall_s']:.1f} s wall (the process, with "
          f"Prefect and the cluster's start; batch phase {r['wall_s']:.1f} s, {rate:.2f} trials/s)")
    print(f"{'':>9}  {r['batches']} batches on {r['slots']} slots · {r['trial_s']:.3f} s per trial in a "
          f"worker · overhead {100 * r['overhead_share']:.1f} % of slot time, "
          f"{100 * r['run_overhead_share']:.1f} % counting the cluster's start and warm-up "
          f"({r['connect_s']:.1f} s)")
    idle = r["slots"] * r["wall_s"] - r["busy_s"] - r["dispatch_s"]
    print(f"{'':>9}  of which Prefect + Dask dispatch {r['dispatch_s']:.1f} s "
          f"({r['dispatch_s'] / max(r['batches'], 1):.2f} s a batch), slots idle {idle:.1f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--skip-external", action="store_true", help="only the LocalCluster run")
    args = ap.parse_args()
    os.chdir(ROOT)  # var/ (the trades cache) is relative to the checkout, as for the flow
    from trader.backtest.runner import TICKS_PER_CANDLE
    from trader.optimize.cache import cached_trades

    cached_trades(DATA, seed=1, ticks_per_candle=TICKS_PER_CANDLE)  # both runs start warm
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-optimize-") as name:
        tmp = Path(name)
        server, api = start_prefect(tmp)
        procs: list[subprocess.Popen] = []
        try:
            show(run_flow(tmp, api, "local", args.trials, ["--workers", str(args.workers)]))
            if not args.skip_external:
                procs, address = start_dask(tmp, args.workers)
                show(run_flow(tmp, api, "external", args.trials, ["--dask-address", address]))
        finally:
            for p in [*reversed(procs), server]:
                p.terminate()
            for p in [*procs, server]:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
    print(f"load average {os.getloadavg()[0]:.2f} at the end (the machine is shared: see CPU per trial)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
