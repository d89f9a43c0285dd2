"""Retrying a read or a cancel: safe to repeat, so repeated on a transient failure.

Order *creation* is never retried here (its retry rule — same identifier, look up an order in
doubt — lives in the order manager's send path); reads and cancels are idempotent, so a rate
limit, a 5xx, a network error or an unknown outcome is retried with exponential back-off.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from trader.upbit.errors import AmbiguousOrderError, RetryableError


async def retrying(call: Callable[[], Awaitable[Any]], sleep: Callable[[float], Awaitable[None]],
                   attempts: int = 12) -> Any:
    """`await call()`, retried on RetryableError (after its `retry_after`) and AmbiguousOrderError."""
    delay = 0.05
    for i in range(attempts):
        try:
            return await call()
        except RetryableError as exc:
            if i == attempts - 1:
                raise
            await sleep(max(exc.retry_after, delay))
            delay = min(delay * 2, 2.0)
        except AmbiguousOrderError:
            if i == attempts - 1:
                raise
            await sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")
