"""Prefect side of the report mail: send a rendered report through prefect-email.

`email_send_message` is an async task with no SMTP timeout of its own, so `send_report_email`
sets a process-wide socket timeout around the send (and restores it). From a sync flow the
task is submitted and awaited (`.submit(...).result()`); outside any flow run the task's plain
coroutine (`.fn`) is run instead, so the same function serves scripts and tests.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from typing import Any

from prefect.context import FlowRunContext
from prefect_email import EmailServerCredentials, SMTPType, email_send_message
from pydantic import SecretStr

from trader.reporting.mail import ReportMailError

_SMTP_TYPES = {"insecure": SMTPType.INSECURE, "ssl": SMTPType.SSL, "starttls": SMTPType.STARTTLS}


def make_email_credentials(settings: Any, *, password_block: str | None = None) -> EmailServerCredentials:
    """EmailServerCredentials from trader.config.Settings (smtp_host/port/mode/user).

    The password comes from, in order: the Prefect Secret block `password_block` (or the one
    named by TRADER_SMTP_PASSWORD_BLOCK), then settings.smtp_password (env TRADER_SMTP_PASSWORD).
    """
    password = ""
    block_name = password_block or os.environ.get("TRADER_SMTP_PASSWORD_BLOCK")
    if block_name:
        from prefect.blocks.system import Secret

        password = str(Secret.load(block_name).get())
    elif getattr(settings, "smtp_password", None) is not None:
        password = settings.smtp_password.get_secret_value()
    mode = getattr(settings, "smtp_mode", "insecure")
    if mode not in _SMTP_TYPES:
        raise ValueError(f"smtp_mode must be one of {sorted(_SMTP_TYPES)}, got {mode!r}")
    return EmailServerCredentials(
        smtp_server=settings.smtp_host,
        smtp_port=int(settings.smtp_port),
        smtp_type=_SMTP_TYPES[mode],
        # prefect-email logs in whenever a username is set: leave it unset for open relays
        username=getattr(settings, "smtp_user", None) or None,
        password=SecretStr(password),
    )


def send_report_email(
    report: Any,
    credentials: EmailServerCredentials,
    mail_from: str,
    mail_to: str | Sequence[str],
    timeout_s: float = 30,
) -> None:
    """Mail `report` (trader.reporting.report.Report) as HTML with its charts inline.

    Raises ReportMailError within about `timeout_s` when the server is unreachable or silent.
    prefect-email puts a text part next to the HTML in a multipart/mixed message, which many
    clients would show twice, so only the HTML is sent here (the smtplib path of
    trader.reporting.mail sends a proper text/HTML alternative).
    """
    kwargs = {
        "subject": report.subject,
        "msg": report.html,
        "email_server_credentials": credentials,
        "email_from": mail_from,
        "email_to": list(mail_to) if not isinstance(mail_to, str) else mail_to,
        "inline_images": {cid: str(path) for cid, path in report.images.items()},
    }
    where = f"{credentials.smtp_server}:{credentials.smtp_port}"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # prefect-email opens its SMTP socket with the default
    try:
        if FlowRunContext.get() is not None:
            email_send_message.submit(**kwargs).result()
        else:
            asyncio.run(email_send_message.fn(**kwargs))
    except ReportMailError:
        raise
    except Exception as exc:  # socket and smtplib errors, or anything prefect wraps them in
        # smtplib reports a read timeout as SMTPServerDisconnected("...: timed out")
        if (
            isinstance(exc, TimeoutError)
            or isinstance(exc.__context__, TimeoutError)
            or str(exc).endswith("timed out")
        ):
            raise ReportMailError(f"mail server {where} did not answer within {timeout_s:g} s") from exc
        raise ReportMailError(f"could not send mail via {where}: {type(exc).__name__}: {exc}") from exc
    finally:
        socket.setdefaulttimeout(previous)
