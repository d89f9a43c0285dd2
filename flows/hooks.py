"""Flow-run state hooks: mail a failure alert the moment a run fails or crashes.

`on_failure`/`on_crashed` hooks run after the final state is set (after the last retry, never
on a retried attempt): in the flow's own process, or — for a run whose process died under a
live worker (kill -9, OOM) — in the worker, which marks the run Crashed itself. The mail is
built by `trader.reporting.alerts` (secrets scrubbed) and sent with smtplib bounded by
TRADER_SMTP_TIMEOUT_S; a hook never raises. Crashes no hook lives to see (worker and process
both gone) are caught by the server-side automations created in `deployments/setup.py`.

Every Crashed run also starts the crash automation's `notify-failure`; a hook that mailed tags
the run `alert-mailed`, and `notify-failure` then stays silent: one crash, one mail.

A cancel (the UI's Cancel button) is deliberately not reported: it is the user's own action and
nothing failed. There is no `on_cancellation` hook, the trading loop still shuts down cleanly
(tests/e2e/test_e2e_trading_lifecycle.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("flows.hooks")

# Latest position of each trading run, kept by the trading flow so an alert can say what was held.
LAST_POSITION: dict[str, dict[str, Any]] = {}
# The tag a hook puts on a run it mailed an alert for (flows/notify.py then does not mail again).
ALERTED_TAG = "alert-mailed"


class RunCrashed(RuntimeError):
    """Stands for the failure of a run that crashed with no exception of its own (killed process)."""


def state_exception(state: Any) -> BaseException:
    """The exception a final state carries (or a RuntimeError with its message).

    Read from `state.data` (the exception itself, or a result record holding it) rather than
    `state.result()`, which returns a coroutine when the hook runs inside an event loop.
    """
    data = getattr(state, "data", None)
    for value in (data, getattr(data, "result", None)):
        if isinstance(value, BaseException):
            return value
    # a run whose process was killed carries no exception: name the crash, not "RuntimeError"
    kind = RunCrashed if state.name == "Crashed" else RuntimeError
    return kind(f"{state.name}: {state.message or 'no message'}")


def mark_alerted(flow_run_id: str) -> None:
    """Tag the run `alert-mailed`, so the crash automation's notify-failure does not mail it again."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return  # no server, so no automation to tell (and no ephemeral server started for a tag)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        client.update_flow_run(flow_run_id, tags=sorted({*(run.tags or []), ALERTED_TAG}))


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
        return
    if sent and context["flow_run_id"]:
        try:  # only after the mail went out: a tag without a mail would silence the automation
            mark_alerted(context["flow_run_id"])
        except Exception:  # at worst notify-failure mails a second time
            log.warning("could not tag flow run %s %s", context["flow_run_id"], ALERTED_TAG, exc_info=True)
