"""Shared fixtures: the Upbit simulator in a background thread, its /_sim/ control, PostgreSQL.

- `sim_server` (per test) / `sim_server_session` (per session): a `SimulatorThread` on
  127.0.0.1:<free port> with the feed paused; attributes `.base_url`, `.ws_url`,
  `.private_ws_url`, `.ws_base_url`, `.access_key`, `.secret_key`, `.market`, `.exchange`
  (the in-process `Exchange`) and `.control` (`pause()`, `resume()`, `step(n)`,
  `push_prices([...])`, `drop_websockets()`, `fail_next(n, status)`, `set_latency(ms)`,
  `reset(krw=...)`, `fund(currency, amount)`, `state()`).
- `make_sim(**opts)`: a factory for simulators with other `SimConfig` options (speed=None for
  max, rate_limit=False, strict=True, krw=..., paused=False, ...); all are stopped at teardown.
- `pg_url`: the test PostgreSQL URL; skipped when the server is unreachable, except under CI=true.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from trader.sim.server import SimulatorThread

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimulatorThread]]:
    started: list[SimulatorThread] = []

    def factory(**opts: Any) -> SimulatorThread:
        opts.setdefault("paused", True)
        sim = SimulatorThread(**opts).start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def sim_server(make_sim: Callable[..., SimulatorThread]) -> SimulatorThread:
    return make_sim()


@pytest.fixture(scope="session")
def sim_server_session() -> Iterator[SimulatorThread]:
    with SimulatorThread(paused=True) as sim:
        yield sim


def _pg_reachable() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            pass
    except OSError as exc:
        return f"PostgreSQL not reachable on 127.0.0.1:5432 ({exc})"
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test",
                                connect_timeout=3)
        conn.close()
    except Exception as exc:  # any driver error means "not usable here"
        return f"PostgreSQL database 'test' not usable: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_url() -> str:
    problem = _pg_reachable()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return PG_URL


OPTUNA_DB = "optuna_test"  # Optuna's own database, never the product's (it brings its alembic_version)


@pytest.fixture
def optuna_pg(pg_url: str) -> str:
    """A PostgreSQL URL for Optuna studies: a database of its own beside `test`, made on first use."""
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        query = sa.text("SELECT 1 FROM pg_database WHERE datname = :n")
        if not conn.execute(query, {"n": OPTUNA_DB}).first():
            conn.execute(sa.text(f'CREATE DATABASE "{OPTUNA_DB}"'))
    engine.dispose()
    return pg_url.rsplit("/", 1)[0] + "/" + OPTUNA_DB
