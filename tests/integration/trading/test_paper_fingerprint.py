"""A lockstep paper run names its fills with the backtest's fingerprint, run after run.

`python -m trader run --paper --lockstep --sim-start A --sim-end B` (as a user types it) replays
the candles `backtest --from A --to B` reads, with the backtest's initial KRW, seed and trades
per candle, stops by itself when the replay ends and prints `fingerprint <16 hex>` over its fills
(trader/fingerprint.py over the database's fills in fill order, intent ids from the orders).
The demo's trading part — the Prefect `trading` flow on the simulator flows/demo.py starts — is
checked the same way over a shorter window. demo.yaml trades limit entries and take-profits
(market fallback on timeout) and every other exit, so the windows exercise both order kinds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trader.backtest.api import run_backtest

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"
# three days in which demo.yaml fills 12 times: entries, both take-profits (limit orders), trailing
# stop, reversal, max hold; the demo's flow over two days with take-profits, trailing stop, reversal
START, END = "2024-01-14T09:00", "2024-01-17T09:00"
FLOW_START, FLOW_DAYS, FLOW_END = "2024-01-07T09:00", 2.0, "2024-01-09T09:00"
FINGERPRINT = re.compile(r"^fingerprint ([0-9a-f]{16})$", re.MULTILINE)


def _backtest(start: str, end: str) -> tuple[str, int]:
    res = run_backtest(DEMO, DATA, start=start, end=end)  # the CLI's defaults: 10,000,000 KRW, seed 0
    return res.fingerprint[:16], len(res.output.fills)


def _run_paper(tmp_path: Path, name: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADER_", "UPBIT_"))}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", TRADER_VAR_DIR=str(tmp_path / "var"))
    proc = subprocess.run(
        [sys.executable, "-m", "trader", "run", "--paper", "--lockstep", "--strategy", str(DEMO),
         "--sim-start", START, "--sim-end", END, "--db", f"sqlite:///{tmp_path / f'{name}.db'}",
         "--log-level", "WARNING", "--max-runtime-s", "200"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tmp = tmp_path_factory.mktemp("paper-fingerprint")
    return [_run_paper(tmp, "first"), _run_paper(tmp, "second")]


@pytest.mark.slow
def test_run_paper_lockstep_prints_the_backtests_fingerprint_and_stops_at_the_replays_end(two_runs):
    expected, fills = _backtest(START, END)
    assert fills >= 10, "the window must make the strategy trade"  # 12 today
    out = two_runs[0]
    assert "stopped (replay ended)" in out, out
    assert f"fills={fills} " in out, out
    assert FINGERPRINT.findall(out) == [expected], out


@pytest.mark.slow
def test_two_lockstep_paper_runs_print_the_same_fingerprint(two_runs):
    first, second = (FINGERPRINT.findall(out) for out in two_runs)
    assert len(first) == 1 and first == second, two_runs


@pytest.fixture
def prefect_harness():
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.slow
def test_the_demos_trading_part_gives_the_backtests_fingerprint(tmp_path, prefect_harness):
    from flows import demo

    opts = demo.window_sim(DEMO, DATA, FLOW_START, FLOW_DAYS)
    expected, fills = _backtest(FLOW_START, FLOW_END)
    assert opts.end == FLOW_END and opts.lockstep and fills >= 8  # 9 today
    summary, _wall = demo.trade(opts, DEMO, f"sqlite:///{tmp_path / 'demo.db'}", tmp_path)
    assert summary["stop_reason"] == "replay ended"
    assert (summary["fills"], summary["fingerprint"]) == (fills, expected)
