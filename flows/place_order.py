"""`place-order`: one subflow per intent, confirming the order the engine has already sent.

The trading loop never waits for it: the engine sends the request first
(`OrderManager.submit_intent_fast`, within milliseconds of the deciding tick), then the trading
flow starts this subflow as a background asyncio task (`spawn_confirmation`). A subflow run costs
~1.1 s of Prefect bookkeeping, which is why it sits after the send, never before.

Live objects (the OrderManager, the ManagedOrder) cannot be flow parameters (parameters are
stored as JSON), so the subflow receives a key into `LIVE_ORDERS` plus readable parameters that
make the run self-describing in the UI.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger

from tasks.orders import confirm_fill

# key -> (manager, order); filled by spawn_confirmation, emptied when the subflow ends
LIVE_ORDERS: dict[str, tuple[Any, Any]] = {}
_keys = itertools.count(1)


@flow(
    name="place-order",
    flow_run_name="{market}-{kind}-{reason}",
    persist_result=False,
    log_prints=False,
    validate_parameters=False,
)
async def place_order(
    key: str,
    market: str,
    kind: str,
    reason: str,
    identifier: str,
    intent_id: str,
) -> dict[str, Any]:
    """Confirm the order behind `key` (sent already) and return a JSON summary of its outcome."""
    manager, order = LIVE_ORDERS[key]
    try:
        result = await confirm_fill(manager, order)
    finally:
        LIVE_ORDERS.pop(key, None)
    summary = summarize(result)
    get_run_logger().info(
        "%s %s (%s): %s, %s filled at %s",
        market,
        kind,
        reason,
        summary["status"],
        summary["filled"],
        summary["avg_price"],
    )
    return summary


def summarize(result: Any) -> dict[str, Any]:
    """JSON-able outcome of an ExecutionResult (strings for Decimals: exact, no float)."""
    avg = result.avg_price
    return {
        "intent_id": result.intent.intent_id,
        "status": result.status,
        "filled": f"{result.filled_volume.normalize():f}",
        "funds": f"{result.funds:f}",
        "fees": f"{result.fees:f}",
        "avg_price": f"{avg:f}" if avg is not None else None,
        "orders": len(result.orders),
        "note": result.note,
    }


def spawn_confirmation(
    manager: Any,
    order: Any,
    *,
    on_done: Callable[[asyncio.Task[Any]], None] | None = None,
) -> asyncio.Task[dict[str, Any]]:
    """Start `place-order` for an already-sent order as a background task of the running loop."""
    key = f"o{next(_keys)}"
    LIVE_ORDERS[key] = (manager, order)
    intent = order.intent
    task = asyncio.create_task(
        place_order(
            key=key,
            market=intent.market,
            kind=str(intent.kind),
            reason=intent.reason,
            identifier=order.identifier,
            intent_id=intent.intent_id,
        ),
        name=f"place-order-{key}",
    )
    if on_done is not None:
        task.add_done_callback(on_done)
    return task
