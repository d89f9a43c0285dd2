"""`place-order`: one subflow per intent, confirming the order the engine has already sent.

The trading loop never waits for it: the engine sends the request first
(`OrderManager.submit_intent_fast`, within milliseconds of the deciding tick) inside a per-intent
asyncio task, then calls its `confirm` hook — `confirm_with_subflow` — in that same task. A
subflow run costs ~0.2–2 s of Prefect bookkeeping, which is why it sits after the send, never
before it, and never on the loop's own path.

Live objects (the OrderManager, the ManagedOrder) cannot be flow parameters (parameters are
stored as JSON), so the subflow receives a key into `LIVE_ORDERS` plus readable parameters that
make the run self-describing in the UI. It returns the ExecutionResult object itself (results
are not persisted), which the engine hands to the strategy.
"""

from __future__ import annotations

import itertools
from typing import Any

from prefect import flow, get_run_logger

from tasks.orders import confirm_fill

# key -> (manager, order); filled by confirm_with_subflow, emptied when the subflow ends
LIVE_ORDERS: dict[str, tuple[Any, Any]] = {}
_keys = itertools.count(1)


@flow(
    name="place-order",
    flow_run_name="{market}-{kind}-{reason}",
    persist_result=False,
    log_prints=False,
    validate_parameters=False,
)
async def place_order(key: str, market: str, kind: str, reason: str, identifier: str, intent_id: str) -> Any:
    """Confirm the order behind `key` (already sent): wait for its fills, book them, return them."""
    manager, order = LIVE_ORDERS[key]
    try:
        result = await confirm_fill(manager, order)
    finally:
        LIVE_ORDERS.pop(key, None)
    s = summarize(result)
    get_run_logger().info(
        "%s %s (%s): %s, %s filled at %s, %s order(s)",
        market,
        kind,
        reason,
        s["status"],
        s["filled"],
        s["avg_price"],
        s["orders"],
    )
    return result


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


async def confirm_with_subflow(manager: Any, order: Any) -> Any:
    """The engine's `confirm` hook: run `place-order` for an already-sent order, return its result."""
    key = f"o{next(_keys)}"
    LIVE_ORDERS[key] = (manager, order)
    intent = order.intent
    try:
        return await place_order(
            key=key,
            market=intent.market,
            kind=str(intent.kind),
            reason=intent.reason,
            identifier=order.identifier,
            intent_id=intent.intent_id,
        )
    except Exception:
        if LIVE_ORDERS.pop(key, None) is None:
            raise  # the confirmation itself failed: the engine records the error
        # Prefect could not even start the subflow (API unreachable…): the order is out there,
        # so confirm it without orchestration rather than leave its fills unbooked
        return await manager.confirm(order)
