"""Report tasks, one verb each: fetch the inputs, render the report, mail it, keep the .eml."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.email import make_email_credentials, send_report_email
from trader.reporting.mail import build_mime, write_eml

SMTP_BLOCK = "autotrader-smtp"


@task(name="fetch-report-inputs", retries=2, retry_delay_seconds=[2.0, 10.0], cache_policy=NO_CACHE)
def fetch_inputs(db_url: str, start_ms: int, end_ms: int, market: str | None = None) -> Any:
    """Fills, equity and positions up to `end_ms` from the trading database (ReportInputs)."""
    from trader.reporting.inputs import load_inputs_from_db

    return load_inputs_from_db(db_url, start_ms, end_ms, market)


@task(name="render-report", cache_policy=NO_CACHE, persist_result=False)
def render_report(inputs: Any, period: str, day: date, lang: str, out_dir: str, day_start_hour: int) -> Any:
    """Metrics → charts → HTML/text, written to `out_dir` (trader.reporting.report.Report)."""
    from trader.reporting.report import build_report

    return build_report(
        inputs, period=period, day=day, lang=lang, out_dir=Path(out_dir), day_start_hour=day_start_hour
    )


@task(name="write-eml", cache_policy=NO_CACHE, persist_result=False)
def save_eml(report: Any, mail_from: str, mail_to: list[str]) -> str:
    """The report as a ready-to-open `report.eml` next to the HTML (what would be mailed)."""
    out_dir = Path(report.paths["html"]).parent
    path = write_eml(build_mime(report, mail_from, mail_to), out_dir / "report.eml")
    report.paths["eml"] = path
    return str(path)


def email_credentials(settings: Any) -> Any:
    """The `autotrader-smtp` EmailServerCredentials block when the server has it, else settings."""
    from prefect_email import EmailServerCredentials

    try:
        return EmailServerCredentials.load(SMTP_BLOCK)
    except (ValueError, RuntimeError):  # no such block (ephemeral API, demo): use TRADER_SMTP_*
        return make_email_credentials(settings)


@task(name="send-report", retries=2, retry_delay_seconds=[10.0, 60.0], cache_policy=NO_CACHE)
def send_report(report: Any, settings: Any) -> str:
    """Mail the report through the prefect-email block; bounded by TRADER_SMTP_TIMEOUT_S."""
    send_report_email(
        report,
        email_credentials(settings),
        settings.mail_from,
        settings.mail_to,
        timeout_s=settings.smtp_timeout_s,
    )
    return ", ".join(settings.mail_to)
