"""`kill -9` of the trading process at seeded random points around orders, then restart.

One simulator (in this test process) stays alive across every kill; `python -m trader run
--paper --sim-url …` runs as a subprocess against it while a pusher thread keeps the price
swinging so the strategy trades constantly (immediate entry, 1 % take-profit and stop-loss).
Each run dies by SIGKILL — at the n-th crash point (`TRADER_CRASH_AT=any:n`, see
trader/execution/crashpoints.py: before/after recording an order, sending it, storing a fill,
booking it, marking it final…) or, every fourth run, by a SIGKILL from outside at a random time.
Every restart reconciles first (a reconciliation failure exits 3 and fails the test). At the end
a clean run and the books check: every fill recorded exactly once, no order doubled, the ledger
equal to the exchange.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fault.checks import assert_books_match
from trader.cli import main as cli_main
from trader.sim.server import SimControl
from trader.storage.db import Database
from trader.storage.repository import Repository

REPO_ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
SEED = 20260124

STRATEGY = """\
market: {market}
order_krw: 20000
entry: {{immediate: true}}
exits:
  take_profit: [{{gain: 0.01, sell: 1.0}}]
  stop_loss: 0.01
"""


class Pusher(threading.Thread):
    """Swings the price ±1.5 % around its start, one trade every `period_s`."""

    def __init__(self, base_url: str, start: float, period_s: float = 0.04) -> None:
        super().__init__(daemon=True)
        self.control = SimControl(base_url)
        self.path = [start * f for f in (1.0, 1.015, 1.015, 1.0, 0.985, 0.985)]
        self.period_s = period_s
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            self.control.push_prices([self.path[i % len(self.path)]], mode="now")
            i += 1
            self.halt.wait(self.period_s)
        self.control.close()


def _run_cmd(sim_url: str, db_url: str, strategy: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "trader", "run", "--paper", "--sim-url", sim_url, "--db", db_url,
            "--strategy", str(strategy), "--log-level", "WARNING", *extra]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("direct_orders", [False, True], ids=["sdk-orders", "direct-orders"])
def test_fault_kill9_at_random_points_loses_and_doubles_nothing(make_sim, tmp_path, direct_orders):
    sim = make_sim(krw=2_000_000)
    strategy = tmp_path / "strategy.yaml"
    strategy.write_text(STRATEGY.format(market=sim.market))
    db_url = f"sqlite:///{tmp_path / 'trader.db'}"
    rng = random.Random(SEED)
    pusher = Pusher(sim.base_url, float(sim.exchange.last_price(sim.market)))
    pusher.start()
    points: list[str] = []
    kills = 0
    try:
        for i in range(KILLS):
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            env["TRADER_DIRECT_ORDERS"] = "1" if direct_orders else "0"
            by_timing = i % 4 == 3
            if not by_timing:
                env["TRADER_CRASH_AT"] = f"any:{rng.randint(1, 40)}"
            log_path = tmp_path / f"run{i}.log"
            with open(log_path, "w") as log:
                proc = subprocess.Popen(_run_cmd(sim.base_url, db_url, strategy), cwd=REPO_ROOT, env=env,
                                        stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
                deadline = time.monotonic() + (rng.uniform(3.0, 6.0) if by_timing else 12.0)
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            out = log_path.read_text()
            assert proc.returncode == -signal.SIGKILL, f"run {i} exited {proc.returncode}:\n{out[-3000:]}"
            kills += 1
            points += re.findall(r"crashpoint: killing at (\w+)", out)
    finally:
        pusher.halt.set()
        pusher.join(5)
    # a clean run: start-up reconciliation must succeed, then trade quietly and stop
    final = subprocess.run(_run_cmd(sim.base_url, db_url, strategy, "--max-runtime-s", "1"), cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert final.returncode == 0, final.stdout + final.stderr[-3000:]
    assert cli_main(["reconcile", "--paper", "--sim-url", sim.base_url, "--db", db_url,
                     "--market", sim.market]) == 0  # fmt: skip
    assert kills >= 20
    assert len(set(points)) >= 5, points  # the kills spread over many different places
    print(f"kills={kills} at crash points: {sorted(set(points))}")
    db = Database.open(db_url)
    try:
        repo = Repository(db)
        counts = assert_books_match(sim.exchange, repo, sim.market)
        assert not repo.unresolved_orders()
    finally:
        db.close()
    assert counts["orders"] >= KILLS and counts["fills"] >= KILLS  # it really traded across the kills
