"""`notify-failure`: mail an alert about another flow run (started by the crash automation).

When a worker is killed, the run's own process is gone and its hooks never run; the server
marks the run Crashed (zombie automation) and the crash automation starts this deployment with
the run's id. It reads the run from the API and mails the same alert the hooks would.
"""

from __future__ import annotations

from prefect import flow, get_client, get_run_logger

from flows.hooks import alert_context


class RunCrashed(RuntimeError):
    """Stands for the failure of a run whose process could not report it itself."""


@flow(name="notify-failure", persist_result=False, retries=2, retry_delay_seconds=30)
async def notify_failure(
    flow_run_id: str, flow_name: str = "", state: str = "Crashed", message: str = ""
) -> bool:
    """Mail the failure alert for flow run `flow_run_id`; True when the mail went out."""
    from trader.reporting.alerts import send_failure_alert

    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
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
