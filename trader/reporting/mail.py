"""Report mail: build the MIME message and send it with smtplib, always with a socket timeout.

Structure: multipart/alternative (text, then multipart/related(html + PNGs by Content-ID)),
so every client shows one body, the HTML where it can, with the charts inline. A silent or
unreachable server raises `ReportMailError` within `settings.smtp_timeout_s`, never hangs.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from trader.upbit.errors import redact


class ReportMailError(RuntimeError):
    """The report (or alert) mail could not be sent; the message says where and why."""


def _recipients(mail_to: str | Sequence[str]) -> list[str]:
    if isinstance(mail_to, str):
        return [a.strip() for a in mail_to.split(",") if a.strip()]
    return [a for a in mail_to if a]


def build_mime(report: Any, mail_from: str, mail_to: str | Sequence[str]) -> EmailMessage:
    """The report as an e-mail: plain-text and HTML alternatives, charts as inline cid images."""
    return build_message(
        subject=report.subject,
        html=report.html,
        text=report.text,
        mail_from=mail_from,
        mail_to=mail_to,
        images=report.images,
    )


def build_message(
    *,
    subject: str,
    html: str,
    text: str,
    mail_from: str,
    mail_to: str | Sequence[str],
    images: dict[str, Path] | None = None,
) -> EmailMessage:
    to = _recipients(mail_to)
    if not to:
        raise ReportMailError("no recipient: set TRADER_MAIL_TO")
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = mail_from
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    domain = mail_from.rsplit("@", 1)[-1] if "@" in mail_from else None
    msg["Message-ID"] = make_msgid(domain=domain)
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    html_part = msg.get_payload()[1]
    for cid, path in (images or {}).items():
        html_part.add_related(
            Path(path).read_bytes(),
            maintype="image",
            subtype="png",
            cid=f"<{cid}>",
            filename=Path(path).name,
            disposition="inline",
        )
    return msg


def write_eml(msg: EmailMessage, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(msg))
    return path


def _secret(settings: Any, name: str) -> str | None:
    value = getattr(settings, name, None)
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def send_smtp(msg: EmailMessage, settings: Any) -> None:
    """Send with smtplib per `settings` (trader.config.Settings: smtp_host, smtp_port,
    smtp_mode insecure|ssl|starttls, smtp_user, smtp_password, smtp_timeout_s).

    Raises ReportMailError naming the server and the cause; the password never appears in it.
    """
    host, port = settings.smtp_host, int(settings.smtp_port)
    mode = getattr(settings, "smtp_mode", "insecure")
    timeout = float(getattr(settings, "smtp_timeout_s", 30.0) or 30.0)
    user = getattr(settings, "smtp_user", None)
    password = _secret(settings, "smtp_password")
    where = f"{mode}://{host}:{port}"
    try:
        if mode == "ssl":
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            server = smtplib.SMTP(host, port, timeout=timeout)
        with server:
            if mode == "starttls":
                server.starttls(context=ssl.create_default_context())
            if user:
                server.login(user, password or "")
            refused = server.send_message(msg)
        if refused:
            raise ReportMailError(f"mail server {where} refused recipients: {', '.join(sorted(refused))}")
    except ReportMailError:
        raise
    except TimeoutError as exc:
        raise ReportMailError(f"mail server {where} did not answer within {timeout:g} s") from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise ReportMailError(f"mail server {where} refused the login of user {user!r}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        # smtplib turns a read timeout into SMTPServerDisconnected("...: timed out")
        if isinstance(exc.__context__, TimeoutError) or str(exc).endswith("timed out"):
            raise ReportMailError(f"mail server {where} did not answer within {timeout:g} s") from exc
        detail = redact(f"{type(exc).__name__}: {exc}", *(s for s in (password,) if s))
        raise ReportMailError(f"could not send mail via {where}: {detail}") from exc
