"""Order tasks: confirm an order that the engine already sent (one verb, retries for transients).

The engine sends the request itself (`OrderManager.submit_intent_fast`, the latency-critical
half); this task is the slow half — follow the order to a final state, book its fills, apply the
limit-order timeout policy (`OrderManager.confirm`). `confirm` only reads and cancels by uuid /
identifier, never re-sends, so retrying it is safe; only transient errors are retried.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from trader.upbit.errors import AmbiguousOrderError, RetryableError


def is_transient(exc: BaseException | None) -> bool:
    """Rate limits, 5xx, timeouts and network errors are worth another try; the rest is final.

    An ambiguous read (a timeout while *looking* at the order) is transient here: confirming
    only re-reads the order by uuid/identifier, it never sends a new one.
    """
    return isinstance(exc, RetryableError | AmbiguousOrderError | OSError)


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only when the failure was transient."""
    exc = getattr(state, "data", None)  # the engine builds Failed(data=exception)
    return isinstance(exc, BaseException) and is_transient(exc)


@task(
    name="confirm-fill",
    retries=3,
    retry_delay_seconds=[0.5, 2.0, 5.0],
    retry_condition_fn=_retry_transient,
    cache_policy=NO_CACHE,  # inputs are live objects; a confirmation is never cached
    persist_result=False,
)
async def confirm_fill(manager: Any, order: Any) -> Any:
    """Wait for `order` (a ManagedOrder) to finish, book its fills; returns the ExecutionResult."""
    return await manager.confirm(order)
