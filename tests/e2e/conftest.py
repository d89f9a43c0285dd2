"""Real services for the end-to-end tests: a Prefect server, workers, an SMTP sink, the simulator.

Everything binds 127.0.0.1 on a free port and lives under the test's tmp dir (PREFECT_HOME, the
trader database, var/), so tests never touch the user's state. Workers are stopped before the
server (a server stopped first leaves them retrying for a minute).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deployments.env import PROJECT_DIR, prefect_env
from deployments.smtp_sink import SmtpSink, free_port

SERVER_START_TIMEOUT_S = 120.0  # ~18 s on a new database on an idle machine; CI machines are busier


@dataclass
class PrefectServer:
    api_url: str
    home: Path
    env: dict[str, str]
    log_path: Path

    def run(self, *args: str, timeout: float = 180.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `python -m <args>` against this server from the checkout, output captured."""
        proc = subprocess.run(
            [sys.executable, "-m", *args],
            cwd=PROJECT_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{args} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"prefect server not healthy after {timeout_s:.0f} s:\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path_factory.mktemp("mail")) as sink:
        yield sink


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory, smtp_sink: SmtpSink) -> Iterator[PrefectServer]:
    """A real `prefect server start` on a free loopback port with its own PREFECT_HOME.

    The environment it hands out also points the trader at a tmp var/ dir and the SMTP sink.
    """
    root = tmp_path_factory.mktemp("prefect")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = prefect_env(root / "home", api_url)
    env.update(
        {
            "TRADER_VAR_DIR": str(root / "var"),
            "TRADER_DATABASE_URL": f"sqlite:///{root / 'var' / 'trader.db'}",
            "TRADER_SMTP_HOST": smtp_sink.host,
            "TRADER_SMTP_PORT": str(smtp_sink.port),
            "TRADER_SMTP_MODE": "insecure",
            "TRADER_SMTP_TIMEOUT_S": "10",
            "TRADER_MAIL_TO": '["ops@example.test"]',
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        }
    )
    (root / "var").mkdir()
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(api_url, proc, log_path, SERVER_START_TIMEOUT_S)
        yield PrefectServer(api_url=api_url, home=root / "home", env=env, log_path=log_path)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def deployed(prefect_server: PrefectServer) -> PrefectServer:
    """The server after `python -m deployments.setup` (pool, blocks, deployments, automations)."""
    proc = prefect_server.run("deployments.setup", timeout=300)
    assert "automation     autotrader: mail an alert when a run crashes" in proc.stdout, proc.stdout
    return prefect_server


@pytest.fixture
def worker_factory(prefect_server: PrefectServer) -> Iterator:
    """Start `prefect worker start --pool P` (optionally --run-once); all stopped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        pool: str = "autotrader-local",
        *,
        run_once: bool = False,
        log_name: str = "worker.log",
        env: dict[str, str] | None = None,
    ):
        cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
        if run_once:
            cmd.append("--run-once")
        log = (prefect_server.home.parent / log_name).open("ab")
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_DIR,
            env={**prefect_server.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        _stop(proc)
