"""`report`: the performance report of a day (or week/month) — inputs → render → .eml → e-mail.

Deployed twice (prefect.yaml): `report-daily` at 09:05 KST for the day that just ended and
`report-weekly` on Mondays. `date` and `period` are parameters, so any past report is one click
("Custom run" in the UI) or one command away:
    python -m flows.report --date 2024-03-05 --period day [--no-send]
The files are written before the mail is attempted: a mail failure leaves the report on disk
(and fails the run, which mails an alert through the hook — if the mail server is back).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date as Date
from typing import Any

from prefect import flow, get_run_logger

from flows.hooks import mail_failure_alert
from tasks.reporting import fetch_inputs, render_report, save_eml, send_report
from trader.config import load_settings
from trader.reporting.periods import PERIODS, last_complete_day, report_window


def out_dir_for(reports_dir: Any, day: Date, period: str) -> str:
    """var/reports/<date>/ for a day, var/reports/<date>-<period>/ otherwise (as the CLI does)."""
    return str(reports_dir / (day.isoformat() if period == "day" else f"{day.isoformat()}-{period}"))


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"report-{params.get('period', 'day')}-{params.get('date') or 'last-day'}"


@flow(
    name="report",
    flow_run_name=_run_name,
    persist_result=False,
    on_failure=[mail_failure_alert],
    on_crashed=[mail_failure_alert],
)
def report(
    date: str | None = None,
    period: str = "day",
    market: str | None = None,
    db_url: str | None = None,
    out_dir: str | None = None,
    lang: str | None = None,
    send: bool = True,
) -> dict[str, Any]:
    """Build the `period` report ending with trading day `date` (default: the last complete day)."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    settings = load_settings()
    hour = settings.day_start_hour_kst
    day = Date.fromisoformat(date) if date else last_complete_day(day_start_hour=hour)
    start_ms, end_ms = report_window(day, period, hour)
    target = out_dir or out_dir_for(settings.reports_dir, day, period)
    inputs = fetch_inputs(db_url or settings.db_url, start_ms, end_ms, market)
    rendered = render_report(inputs, period, day, lang or settings.report_lang, target, hour)
    eml = save_eml(rendered, settings.mail_from, settings.mail_to)
    logger = get_run_logger()
    logger.info("%s → %s", rendered.subject, target)
    sent_to = send_report(rendered, settings) if send else None
    if sent_to:
        logger.info("mailed to %s", sent_to)
    return {
        "day": day.isoformat(),
        "period": period,
        "subject": rendered.subject,
        "out_dir": target,
        "files": {name: str(path) for name, path in rendered.paths.items()},
        "eml": eml,
        "sent_to": sent_to,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.report", description=__doc__.split("\n")[0])
    parser.add_argument("--date", help="trading day YYYY-MM-DD (default: the last complete one)")
    parser.add_argument("--period", choices=PERIODS, default="day")
    parser.add_argument("--market")
    parser.add_argument("--db-url")
    parser.add_argument("--out-dir")
    parser.add_argument("--lang", choices=("ko", "en"))
    parser.add_argument("--no-send", action="store_true", help="write the files only")
    args = parser.parse_args(argv)
    result = report(
        date=args.date,
        period=args.period,
        market=args.market,
        db_url=args.db_url,
        out_dir=args.out_dir,
        lang=args.lang,
        send=not args.no_send,
    )
    print(result["subject"])
    for name, path in result["files"].items():
        print(f"  {name:8s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
