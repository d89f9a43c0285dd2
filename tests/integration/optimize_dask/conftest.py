"""Real parts for the optimize flow: one Prefect test server, a Dask scheduler and two workers.

The scheduler and the workers are separate `dask` processes over loopback with the project on
PYTHONPATH, as on other machines; the flow reaches them with --dask-address. One Prefect
harness per session (it takes 12–15 s to start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DASK = Path(sys.executable).with_name("dask")


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        "TRADER_VAR_DIR": str(tmp / "var"),
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    })
    return env


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


class DaskCluster:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = _env(tmp)
        self.procs: list[subprocess.Popen] = []
        self.address = ""

    def start(self, workers: int = 2) -> DaskCluster:
        sched_file = self.tmp / "scheduler.json"
        self._spawn("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(sched_file)])
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            self._alive_or_fail(deadline)
        self.address = json.loads(sched_file.read_text())["address"]
        for i in range(workers):
            self._spawn(f"worker{i}", [str(DASK), "worker", self.address, "--nworkers", "1",
                                       "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"])
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=90)
        return self

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.procs.append(subprocess.Popen(cmd, cwd=self.tmp, env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT))

    def _alive_or_fail(self, deadline: float) -> None:
        if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
            logs = "".join(p.read_text() for p in self.tmp.glob("*.log"))
            raise RuntimeError(f"the Dask scheduler did not start:\n{logs[-3000:]}")
        time.sleep(0.2)

    def worker_pids(self) -> set[int]:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return set(client.run(os.getpid).values())

    def stop(self) -> None:
        for p in reversed(self.procs):  # workers first, the scheduler last
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    cluster = DaskCluster(tmp_path_factory.mktemp("dask"))
    try:
        yield cluster.start(workers=2)
    finally:
        cluster.stop()
