"""`python -m trader sim` as a process: the ready line, port 0, a real request, clean SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from trader.sim.server import SimulatorProcess


def test_cli_ready_line_port_zero_and_sigterm() -> None:
    sim = SimulatorProcess(["--paused", "--krw", "5000000"]).start()
    try:
        assert sim.port > 0 and sim.market == "KRW-ETH"
        r = httpx.get(sim.base_url + "/v1/ticker", params={"markets": "KRW-ETH"})
        assert r.status_code == 200 and r.json()[0]["market"] == "KRW-ETH"
        assert sim.control.state()["paused"] is True
    finally:
        assert sim.proc is not None
        sim.proc.send_signal(signal.SIGTERM)
        assert sim.proc.wait(20) == 0


def test_cli_sigint_stops_cleanly() -> None:
    with SimulatorProcess(["--speed", "max"]) as sim:
        assert sim.proc is not None
        sim.proc.send_signal(signal.SIGINT)
        assert sim.proc.wait(20) == 0


def test_cli_help_shows_default_keys() -> None:
    out = subprocess.run([sys.executable, "-m", "trader", "sim", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    from trader.config import SIM_ACCESS_KEY

    flat = "".join(out.split())  # argparse wraps long defaults at hyphens
    assert SIM_ACCESS_KEY in flat and "--speed" in out and "--strict" in out


def test_cli_bad_data_file_fails_with_message(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="not found"):
        SimulatorProcess(["--data", str(tmp_path / "missing.parquet")]).start(timeout=60)
