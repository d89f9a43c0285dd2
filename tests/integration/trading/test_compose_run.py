"""The composition root against real simulators: the checks it makes before trading, the simulator
it starts and stops, the free-running warning, and `run`'s exit code 3 on a reconcile mismatch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from trader import compose
from trader.cli import main as cli_main
from trader.config import Settings
from trader.sim.server import SimulatorThread
from trader.strategy.config import load_strategy

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
STRATEGY = """\
market: {market}
order_krw: 100000
entry: {{immediate: true}}
exits: {{stop_loss: 0.03}}
"""


async def test_lockstep_on_a_simulator_that_is_not_in_lockstep_is_refused(tmp_path: Path) -> None:
    with SimulatorThread(speed=None, paused=True, rate_limit=False) as sim:
        venue = compose.paper_venue(sim.base_url)
        with pytest.raises(compose.ComposeError, match=r"lockstep: the simulator at \S+ is not in lockstep"):
            await compose.open_run(load_strategy(DEMO), venue, f"sqlite:///{tmp_path / 'x.db'}",
                                   settings=Settings(var_dir=tmp_path), lockstep=True)
        assert not (tmp_path / "x.db").exists()  # refused before touching anything


async def test_a_free_running_simulator_at_speed_max_gets_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    with SimulatorThread(speed=None, paused=True, rate_limit=False) as sim:
        run = await compose.open_run(load_strategy(DEMO), compose.paper_venue(sim.base_url),
                                     f"sqlite:///{tmp_path / 'x.db'}", settings=Settings(var_dir=tmp_path),
                                     warn=warnings.append)
        await run.close()
    assert warnings == [compose.FREE_RUNNING_WARNING]
    with SimulatorThread(speed=600.0, paused=True, rate_limit=False) as sim:
        run = await compose.open_run(load_strategy(DEMO), compose.paper_venue(sim.base_url),
                                     f"sqlite:///{tmp_path / 'y.db'}", settings=Settings(var_dir=tmp_path),
                                     warn=warnings.append)
        await run.close()
    assert len(warnings) == 1  # real pacing: the time an order takes is what it is


@pytest.mark.slow
async def test_a_simulator_started_for_the_run_replays_the_window_and_is_stopped_at_the_end(
    tmp_path: Path,
) -> None:
    config = load_strategy(DEMO)
    opts = compose.PaperSim(config.market, start="2024-01-07T09:00", end="2024-01-07T21:00", lockstep=True)
    sim = await asyncio.to_thread(compose.start_simulator, opts, tmp_path)
    assert sim.control.state()["total"] == 48 * 8  # 12 hours of 15-minute candles, 8 trades each
    assert list(tmp_path.glob("*.parquet")) == []  # the window file is gone once the simulator read it
    run = await compose.open_run(config, compose.paper_venue(sim.base_url, sim=sim),
                                 f"sqlite:///{tmp_path / 'p.db'}", settings=Settings(var_dir=tmp_path),
                                 lockstep=True)
    try:
        stats = await run.run()
    finally:
        await run.close()
    assert run.loop.stop_reason == "replay ended" and stats.ticks == 48 * 8
    assert sim.proc is not None and sim.proc.poll() is not None and run.venue.sim is None


def test_run_paper_at_speed_max_without_lockstep_warns_and_still_sees_every_trade(tmp_path: Path) -> None:
    """Free-running at speed max, a simulator started here would replay its window before the loop
    has subscribed (1 tick seen of 384): it starts paused and the run resumes it once subscribed."""
    proc = subprocess.run(
        [sys.executable, "-m", "trader", "run", "--paper", "--sim-speed", "max", "--strategy", str(DEMO),
         "--sim-start", "2024-01-07T09:00", "--sim-end", "2024-01-07T21:00",
         "--db", f"sqlite:///{tmp_path / 'w.db'}", "--max-runtime-s", "60", "--log-level", "WARNING"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert f"warning: {compose.FREE_RUNNING_WARNING}" in proc.stderr
    assert "stopped (replay ended): ticks=384 " in proc.stdout, proc.stdout
    assert "fingerprint " in proc.stdout


def test_run_exits_3_when_the_exchange_differs_from_the_ledger(make_sim, tmp_path: Path, capsys) -> None:
    sim = make_sim(krw=1_000_000)
    strategy = tmp_path / "s.yaml"
    strategy.write_text(STRATEGY.format(market=sim.market))
    args = ["run", "--paper", "--sim-url", sim.base_url, "--db", f"sqlite:///{tmp_path / 'r.db'}",
            "--strategy", str(strategy), "--max-runtime-s", "1", "--log-level", "WARNING"]
    assert cli_main(args) == 0  # the first start takes the exchange's balances as the baseline
    sim.control.fund("KRW", "12345")  # a deposit the ledger never saw
    capsys.readouterr()
    assert cli_main(args) == 3
    err = capsys.readouterr().err
    assert "12345" in err and "--adopt" in err
