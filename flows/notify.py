"""`notify-failure`: mail an alert about another flow run (started by the crash automation).

The crash automation starts this deployment for every Crashed run. When the worker and the
run's process are both gone, no hook ran: the server marked the run Crashed (zombie
automation) and this flow mails the alert. When the worker survived (only the flow's process
was killed), the worker marked the run Crashed and ran its `on_crashed` hook, which mailed and
tagged the run `alert-mailed`; this flow then sends nothing, so one crash makes one mail.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_client, get_run_logger

from flows.hooks import ALERTED_TAG, RunCrashed, alert_context

__all__ = ["HOOK_GRACE_S", "RunCrashed", "notify_failure"]

# The automation starts this flow as soon as the run is Crashed, while the worker may still be
# running the run's hook (importing the flow, talking SMTP): give it this long after the crash.
HOOK_GRACE_S = 10.0


async def _read_after_hook_grace(client: Any, flow_run_id: str, grace_s: float = HOOK_GRACE_S) -> Any:
    """The flow run, read again once `grace_s` passed since its state if no hook tagged it yet."""
    run = await client.read_flow_run(flow_run_id)
    if ALERTED_TAG in (run.tags or []) or run.state is None or run.state.timestamp is None:
        return run
    age = (datetime.now(UTC) - run.state.timestamp).total_seconds()
    if age >= grace_s:
        return run
    await asyncio.sleep(grace_s - age)
    return await client.read_flow_run(flow_run_id)


@flow(name="notify-failure", persist_result=False, retries=2, retry_delay_seconds=30)
async def notify_failure(
    flow_run_id: str, flow_name: str = "", state: str = "Crashed", message: str = ""
) -> bool:
    """Mail the failure alert for flow run `flow_run_id`; True when the mail went out, False
    when the run's own hook had mailed it already."""
    from trader.reporting.alerts import send_failure_alert

    async with get_client() as client:
        run = await _read_after_hook_grace(client, flow_run_id)
    if ALERTED_TAG in (run.tags or []):
        get_run_logger().info("alert for %s %s: already mailed by the run's hook", flow_name, flow_run_id)
        return False
    run_state = run.state
    context = alert_context(
        flow_name or "flow",
        run,
        run_state.name if run_state is not None else state,
        (run_state.message if run_state is not None else None) or message,
    )
    context["source"] = "automation (the run's own process did not report it)"
    exc = RunCrashed(message or (run_state.message if run_state else "") or f"flow run {state}")
    sent = send_failure_alert(exc, context=context)
    get_run_logger().info("alert for %s %s: %s", context["flow"], flow_run_id, "sent" if sent else "NOT sent")
    if not sent:
        raise RuntimeError("the failure alert could not be sent (see the log); retrying")
    return sent
