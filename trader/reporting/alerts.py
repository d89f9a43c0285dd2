"""Failure mail: what failed, when, and the position at that moment — never a secret.

Flows call `send_failure_alert` from their failure/crash hooks. Everything that goes into the
mail passes through `scrub`: mapping keys that look like credentials are dropped, and every
string is redacted (bearer tokens, long key-like strings, the configured secrets and any
environment value whose variable name says KEY/SECRET/PASSWORD/TOKEN).
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Any

from trader.reporting.periods import KST
from trader.upbit.errors import redact

log = logging.getLogger(__name__)

SECRET_WORDS = ("key", "secret", "password", "passwd", "token")
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+):[^@\s]+@", re.IGNORECASE)
_TRACE_LINES = 40


def _secret_key(name: object) -> bool:
    lowered = str(name).lower()
    return any(w in lowered for w in SECRET_WORDS)


def known_secrets(settings: Any = None) -> list[str]:
    """Secret values to redact: from settings (SecretStr fields) and from the environment."""
    values: list[str] = []
    if settings is not None:
        for name in ("upbit_access_key", "upbit_secret_key", "smtp_password"):
            v = getattr(settings, name, None)
            if v is not None:
                values.append(v.get_secret_value() if hasattr(v, "get_secret_value") else str(v))
    for name, value in os.environ.items():
        if _secret_key(name) and len(value) >= 6:
            values.append(value)
    # longest first, so a secret that contains another is removed whole
    return sorted({v for v in values if v}, key=len, reverse=True)


def clean_text(text: str, secrets: Iterable[str] = ()) -> str:
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:***@", text)
    return redact(text, *secrets)


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of `value` safe to mail: credential-named keys dropped, strings redacted."""
    secrets = list(secrets)
    if isinstance(value, Mapping):
        return {str(k): scrub(v, secrets) for k, v in value.items() if not _secret_key(k)}
    if isinstance(value, list | tuple | set):
        return [scrub(v, secrets) for v in value]
    if value is None or isinstance(value, bool | int | float | Decimal):
        return value
    return clean_text(str(value), secrets)


def _fmt_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_fmt_value(v) for v in value)
    return str(value)


def build_failure_alert(
    exc: BaseException,
    *,
    context: dict,
    position: dict | None,
    when: datetime,
    secrets: Iterable[str] | None = None,
    lang: str = "ko",
) -> tuple[str, str, str]:
    """(subject, html, text) of a failure mail. `context` says what was running (flow, task,
    market, run id…); `position` is the ledger's position at that moment, if any."""
    secret_list = list(secrets) if secrets is not None else known_secrets()
    ctx = scrub(dict(context or {}), secret_list)
    pos = scrub(dict(position), secret_list) if position else None
    what = ctx.get("flow") or ctx.get("task") or ctx.get("where") or "autotrader"
    err = clean_text(f"{type(exc).__name__}: {exc}", secret_list)
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    trace = "\n".join(clean_text(trace, secret_list).rstrip().splitlines()[-_TRACE_LINES:])
    when_utc = when if when.tzinfo else when.replace(tzinfo=UTC)
    when_txt = f"{when_utc.astimezone(KST):%Y-%m-%d %H:%M:%S} KST ({when_utc.astimezone(UTC):%H:%M:%S} UTC)"
    ko = lang == "ko"
    subject = clean_text(
        f"[{'자동매매 오류' if ko else 'Autotrader failure'}] {what}: {type(exc).__name__}", secret_list
    )
    labels = {
        "what": "실패한 작업" if ko else "What failed",
        "when": "시각" if ko else "When",
        "error": "오류" if ko else "Error",
        "context": "상황" if ko else "Context",
        "position": "그 시점의 포지션" if ko else "Position at that moment",
        "none": "없음 (보유 코인 없음 또는 알 수 없음)" if ko else "none (flat or unknown)",
        "trace": "추적 정보" if ko else "Traceback",
    }
    rows = [(labels["what"], str(what)), (labels["when"], when_txt), (labels["error"], err)]
    rows += [(f"{labels['context']}: {k}", _fmt_value(v)) for k, v in ctx.items() if k not in ("flow",)]
    pos_rows = [(k, _fmt_value(v)) for k, v in pos.items()] if pos else []
    text_lines = [subject, ""] + [f"{k}: {v}" for k, v in rows] + ["", f"[{labels['position']}]"]
    text_lines += [f"  {k}: {v}" for k, v in pos_rows] or [f"  {labels['none']}"]
    text_lines += ["", f"[{labels['trace']}]", trace, ""]
    td = "padding:5px 4px;border-bottom:1px solid #eceef1;font-size:14px;vertical-align:top;"

    def table(items: list[tuple[str, str]]) -> str:
        body = "".join(
            f'<tr><td style="{td}color:#52606d;white-space:nowrap;">{escape(k)}</td>'
            f'<td style="{td}word-break:break-word;">{escape(v)}</td></tr>'
            for k, v in items
        )
        return f'<table style="width:100%;border-collapse:collapse;">{body}</table>'

    html = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="margin:0;background:#f4f5f7;">'
        '<div style="max-width:600px;margin:0 auto;background:#fff;'
        "padding:16px 14px;font-family:-apple-system,'Malgun Gothic','Noto Sans KR',Arial,sans-serif;\">"
        f'<h1 style="font-size:18px;color:#b42318;margin:0 0 10px 0;">{escape(subject)}</h1>'
        f"{table(rows)}"
        f'<h2 style="font-size:15px;margin:18px 0 6px 0;">{escape(labels["position"])}</h2>'
        + (table(pos_rows) if pos_rows else f'<p style="font-size:14px;">{escape(labels["none"])}</p>')
        + f'<h2 style="font-size:15px;margin:18px 0 6px 0;">{escape(labels["trace"])}</h2>'
        '<pre style="font-size:11px;white-space:pre-wrap;word-break:break-all;background:#f7f7f9;'
        f'padding:8px;">{escape(trace)}</pre></div></body></html>'
    )
    return subject, html, "\n".join(text_lines)


def send_failure_alert(
    exc: BaseException,
    *,
    context: dict | None = None,
    position: dict | None = None,
    when: datetime | None = None,
    settings: Any = None,
) -> bool:
    """Build and mail a failure alert; True when sent. Never raises (it runs inside failure
    hooks, where a second exception would hide the first): a send failure is logged."""
    from trader.reporting.mail import ReportMailError, build_message, send_smtp

    try:
        if settings is None:
            from trader.config import load_settings

            settings = load_settings()
        subject, html, text = build_failure_alert(
            exc,
            context=context or {},
            position=position,
            when=when or datetime.now(UTC),
            secrets=known_secrets(settings),
            lang=getattr(settings, "report_lang", "ko"),
        )
        msg = build_message(
            subject=subject, html=html, text=text, mail_from=settings.mail_from, mail_to=settings.mail_to
        )
        send_smtp(msg, settings)
        return True
    except ReportMailError as mail_exc:
        log.error("failure alert not sent: %s", mail_exc)
    except Exception as other:  # the hook must survive anything
        log.error(
            "failure alert not built: %s", clean_text(f"{type(other).__name__}: {other}", known_secrets())
        )
    return False
