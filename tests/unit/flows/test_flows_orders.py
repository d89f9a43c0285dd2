"""Order confirmation: which errors are retried, and the fallback when Prefect cannot run a subflow."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from flows import place_order as po
from tasks.orders import _retry_transient, is_transient
from trader.upbit.errors import AmbiguousOrderError, InsufficientFundsError, RateLimitError, RetryableError


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (RetryableError(503, "server_error"), True),
        (RateLimitError(429, "too_many_requests"), True),
        (AmbiguousOrderError("at-1", "read timeout"), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (InsufficientFundsError(400, "insufficient_funds_bid"), False),
        (ValueError("bug"), False),
    ],
)
def test_only_transient_errors_are_retried(exc: BaseException, retry: bool) -> None:
    assert is_transient(exc) is retry
    assert _retry_transient(None, None, SimpleNamespace(data=exc)) is retry


class FakeManager:
    def __init__(self) -> None:
        self.confirmed: list[Any] = []

    async def confirm(self, order: Any) -> str:
        self.confirmed.append(order)
        return "direct result"


def _order() -> SimpleNamespace:
    intent = SimpleNamespace(market="KRW-ETH", kind="sell", reason="stop_loss", intent_id="i-1")
    return SimpleNamespace(intent=intent, identifier="at-1")


async def test_subflow_result_is_returned_and_the_live_entry_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fake_subflow(**kw: Any) -> str:
        assert kw["key"] in po.LIVE_ORDERS and kw["reason"] == "stop_loss"
        return "subflow result"

    monkeypatch.setattr(po, "place_order", fake_subflow)
    manager = FakeManager()
    assert await po.confirm_with_subflow(manager, _order()) == "subflow result"
    assert manager.confirmed == [] and po.LIVE_ORDERS == {}


@pytest.mark.parametrize("failure", [RuntimeError("API unreachable"), asyncio.CancelledError()])
async def test_orchestration_failure_falls_back_to_a_direct_confirm(
    monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    async def broken_subflow(**_: Any) -> str:
        raise failure

    monkeypatch.setattr(po, "place_order", broken_subflow)
    manager, order = FakeManager(), _order()
    assert await po.confirm_with_subflow(manager, order) == "direct result"
    assert manager.confirmed == [order] and po.LIVE_ORDERS == {}


async def test_cancelling_the_engine_task_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    started = asyncio.Event()

    async def slow_subflow(**_: Any) -> str:
        started.set()
        await asyncio.sleep(60)
        return "late"

    monkeypatch.setattr(po, "place_order", slow_subflow)
    manager = FakeManager()
    task = asyncio.create_task(po.confirm_with_subflow(manager, _order()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert manager.confirmed == []
