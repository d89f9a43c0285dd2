"""The trading flow retries only what can heal (issue 15, item 3): the retry condition over a table
of errors, and real flow runs on a Prefect test server counting their attempts — a missing
strategy file fails at once, a transient error is still retried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows import trading
from trader.compose import ComposeError
from trader.execution.reconcile import ReconcileMismatch
from trader.strategy.config import StrategyConfigError
from trader.upbit.errors import (
    AmbiguousOrderError,
    AuthError,
    FinalError,
    RateLimitError,
    RetryableError,
)


def _mismatch() -> BaseException:
    return ReconcileMismatch.__new__(ReconcileMismatch)  # its message needs a report; the type is what counts


@pytest.mark.parametrize(("exc", "transient"), [
    (RetryableError(503, "server_error"), True),
    (RetryableError(0, "network_error", "GET /v1/accounts: ConnectError"), True),
    (RateLimitError(429, "too_many_requests"), True),
    (RateLimitError(418, "blocked", retry_after=30.0), True),
    (AmbiguousOrderError("id-1", "HTTP 502"), True),
    (ConnectionResetError("reset by peer"), True),
    (TimeoutError("read timed out"), True),
    (httpx.ConnectError("refused"), True),
    (trading.InjectedFault("injected fault after 3 ticks"), True),
    (ExceptionGroup("two", [TimeoutError(), RetryableError(500, "x")]), True),
    (StrategyConfigError("strategy file not found: /nonexistent.yaml"), False),
    (FileNotFoundError("/nonexistent.yaml"), False),
    (ComposeError("another trader holds this account and database: pid 1 on h since ..."), False),
    (AuthError(401, "jwt_verification"), False),
    (FinalError(400, "invalid_parameter"), False),
    (_mismatch(), False),
    (ValueError("order_krw: bad"), False),
    (ExceptionGroup("mixed", [TimeoutError(), ValueError("bad")]), False),
])
def test_only_transient_failures_are_retried(exc: BaseException, transient: bool) -> None:
    assert trading.is_transient(exc) is transient


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _no_alert(*_: Any) -> None:
    """Stands in for the failure alert (an empty hook list would keep the flow's own)."""


def _quiet(retries: int) -> Any:
    return trading.trading.with_options(retries=retries, retry_delay_seconds=0,
                                        on_failure=[_no_alert], on_crashed=[_no_alert])


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    attempts: list[int] = []

    async def back_off(*_: Any) -> None:  # runs first in every attempt
        attempts.append(1)

    monkeypatch.setattr(trading, "back_off", back_off)
    return attempts


async def test_a_missing_strategy_file_fails_the_run_at_once(
    prefect_server: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    attempts = _counting(monkeypatch)
    flow = _quiet(retries=3)
    missing = tmp_path / "nonexistent.yaml"
    state = await flow(strategy_path=str(missing), return_state=True)
    assert state.is_failed()
    assert "nonexistent.yaml" in str(state.message)
    assert len(attempts) == 1


async def test_a_transient_failure_is_still_retried(
    prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = _counting(monkeypatch)

    def unreachable(path: str) -> Any:
        raise RetryableError(0, "network_error", "GET /v1/market/all: ConnectError")

    monkeypatch.setattr("trader.strategy.config.load_strategy", unreachable)
    flow = _quiet(retries=2)
    state = await flow(return_state=True)
    assert state.is_failed()
    assert len(attempts) == 3  # the first and two retries


def test_the_trading_deployment_runs_one_at_a_time_and_cancels_a_second() -> None:
    import yaml
    from prefect.cli.deploy._models import PrefectYamlModel

    root = Path(__file__).resolve().parents[3]
    text = (root / "prefect.yaml").read_text(encoding="utf-8")
    model = PrefectYamlModel.model_validate(yaml.safe_load(text))
    [dep] = [d for d in model.deployments if d.name == "trading"]
    limit = dep.concurrency_limit
    assert not isinstance(limit, int) and limit is not None
    assert (limit.limit, limit.collision_strategy) == (1, "CANCEL_NEW")
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    assert ConcurrencyLimitStrategy(limit.collision_strategy) is ConcurrencyLimitStrategy.CANCEL_NEW


async def test_a_trading_flow_on_an_account_and_database_held_by_another_trader_fails_at_once(
    prefect_server: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_sim: Any
) -> None:
    from trader.instance import acquire

    sim = make_sim(rate_limit=False)
    db_url = f"sqlite:///{tmp_path / 'paper.db'}"
    attempts = _counting(monkeypatch)
    held = acquire(db_url, sim.access_key, "")  # the other trader
    try:
        state = await _quiet(retries=3)(sim_url=sim.base_url, db_url=db_url, order_subflows=False,
                                        return_state=True)
    finally:
        held.release()
    assert state.is_failed()
    assert "another trader holds this account and database: pid " in str(state.message)
    assert len(attempts) == 1
