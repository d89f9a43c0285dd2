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

import asyncio
import itertools
import logging
from typing import Any

from prefect import flow, get_run_logger

from tasks.orders import confirm_fill

# key -> (manager, order); filled by confirm_with_subflow, emptied when the subflow ends
LIVE_ORDERS: dict[str, tuple[Any, Any]] = {}
_keys = itertools.count(1)
log = logging.getLogger("flows.place_order")


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
    result = await confirm_fill(manager, order)
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
    """The engine's `confirm` hook: run `place-order` for an already-sent order, return its result.

    The subflow runs in its own asyncio task, so a failure of Prefect's machinery (API
    unreachable, a client timeout cancelling its scope under load) stays inside that task; the
    order is then confirmed directly — confirming is idempotent (it re-reads the order; fills are
    keyed by trade id), and an order that is out there must never be left unconfirmed. Only a
    cancellation of the engine's own task (shutdown) propagates.
    """
    key = f"o{next(_keys)}"
    LIVE_ORDERS[key] = (manager, order)
    intent = order.intent
    sub = asyncio.create_task(
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
    try:
        return await asyncio.shield(sub)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            sub.cancel()  # the engine is shutting down: the next start reconciles the order
            raise
        log.warning(
            "place-order subflow for %s was cancelled by Prefect; confirming directly", intent.intent_id
        )
    except Exception as exc:
        log.warning(
            "place-order subflow for %s failed (%s); confirming directly",
            intent.intent_id,
            type(exc).__name__,
        )
    finally:
        LIVE_ORDERS.pop(key, None)
    return await manager.confirm(order)
