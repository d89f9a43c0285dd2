"""Flow-run state hooks: mail a failure alert the moment a run fails, crashes or is cancelled.

`on_failure`/`on_crashed` hooks run in the flow's own process after the final state is set
(after the last retry, never on a retried attempt). The mail is built by
`trader.reporting.alerts` (secrets scrubbed) and sent with smtplib bounded by
TRADER_SMTP_TIMEOUT_S; a hook never raises. Crashes no hook lives to see (a killed worker) are
caught by the server-side automation created in `deployments/setup.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("flows.hooks")

# Latest position of each trading run, kept by the trading flow so an alert can say what was held.
LAST_POSITION: dict[str, dict[str, Any]] = {}


def state_exception(state: Any) -> BaseException:
    """The exception a final state carries (or a RuntimeError with its message).

    Read from `state.data` (the exception itself, or a result record holding it) rather than
    `state.result()`, which returns a coroutine when the hook runs inside an event loop.
    """
    data = getattr(state, "data", None)
    for value in (data, getattr(data, "result", None)):
        if isinstance(value, BaseException):
            return value
    return RuntimeError(f"{state.name}: {state.message or 'no message'}")


def alert_context(
    flow_name: str, flow_run: Any, state_name: str, state_message: str | None
) -> dict[str, Any]:
    """What ran and where (the alert mail scrubs anything secret-looking from it)."""
    params: Mapping[str, Any] = getattr(flow_run, "parameters", None) or {}
    return {
        "flow": flow_name,
        "flow_run": getattr(flow_run, "name", ""),
        "flow_run_id": str(getattr(flow_run, "id", "")),
        "state": f"{state_name}: {state_message or ''}".strip(": "),
        "attempt": getattr(flow_run, "run_count", None),
        "deployment_id": str(getattr(flow_run, "deployment_id", "") or ""),
        "tags": list(getattr(flow_run, "tags", None) or []),
        "parameters": dict(params),
    }


def mail_failure_alert(flow: Any, flow_run: Any, state: Any) -> None:
    """on_failure / on_crashed hook: mail the alert (never raises)."""
    from trader.reporting.alerts import send_failure_alert

    try:
        context = alert_context(getattr(flow, "name", "flow"), flow_run, state.name, state.message)
        position = LAST_POSITION.get(str(getattr(flow_run, "id", "")))
        sent = send_failure_alert(state_exception(state), context=context, position=position)
        outcome = "sent" if sent else "NOT sent"
        log.warning("failure alert for %s (%s): %s", context["flow"], context["state"], outcome)
    except Exception:  # a hook must never hide the original failure
        log.exception("failure alert hook failed")
