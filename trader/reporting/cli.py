"""`python -m trader report`: render a performance report to a folder and optionally mail it.

Reads only the database (or the parquet snapshots), never the running engine. The files are
written before any mail is attempted, so a mail failure still leaves the report on disk.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

PERIOD_CHOICES = ("day", "week", "month", "all")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from exc


def _krw(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"expected a KRW amount, got {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError("the starting KRW cannot be negative")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "report",
        help="render (and optionally e-mail) a performance report",
        description=(
            "Render a performance report (HTML with inline charts, plain text, PNGs and a ready "
            "report.eml) from the database or parquet snapshots. Trading days start at "
            "TRADER_DAY_START_HOUR_KST (09:00 KST, Upbit's daily candle)."
        ),
    )
    p.add_argument(
        "--date", type=_date, help="trading day the period ends with (default: the last complete day)"
    )
    p.add_argument(
        "--period", choices=PERIOD_CHOICES, default="day", help="day (default), week, month or all"
    )
    p.add_argument("--out", type=Path, help="output folder (default: <var>/reports/<date>/)")
    p.add_argument("--send", action="store_true", help="e-mail the report via TRADER_SMTP_* settings")
    p.add_argument("--lang", choices=("ko", "en"), help="report language (default: TRADER_REPORT_LANG, ko)")
    p.add_argument("--db", metavar="URL", help="database URL (default: TRADER_DATABASE_URL or var/trader.db)")
    p.add_argument(
        "--snapshots", type=Path, metavar="DIR", help="read parquet snapshots from DIR instead of the DB"
    )
    p.add_argument("--market", help="only this market (e.g. KRW-BTC); default: every market")
    p.add_argument(
        "--starting-krw",
        type=_krw,
        metavar="KRW",
        help="KRW before the first fill (default: from balance snapshots)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trader.config import load_settings
    from trader.reporting.inputs import load_inputs_from_db, load_inputs_from_snapshots
    from trader.reporting.mail import ReportMailError, build_mime, send_smtp, write_eml
    from trader.reporting.periods import last_complete_day, report_window
    from trader.reporting.report import build_report

    settings = load_settings()
    hour = settings.day_start_hour_kst
    day = args.date or last_complete_day(day_start_hour=hour)
    lang = args.lang or settings.report_lang
    start_ms, end_ms = report_window(day, args.period, hour)
    out_dir = args.out or settings.reports_dir / (
        day.isoformat() if args.period == "day" else f"{day}-{args.period}"
    )
    try:
        if args.snapshots:
            inputs = load_inputs_from_snapshots(
                args.snapshots, end_ms, args.market, starting_equity=args.starting_krw
            )
        else:
            inputs = load_inputs_from_db(
                args.db or settings.db_url, start_ms, end_ms, args.market, starting_equity=args.starting_krw
            )
    except Exception as exc:
        from trader.reporting.alerts import clean_text, known_secrets

        print(
            f"error: could not read the report data: {clean_text(str(exc), known_secrets(settings))}",
            file=sys.stderr,
        )
        return 1
    report = build_report(
        inputs, period=args.period, day=day, lang=lang, out_dir=out_dir, day_start_hour=hour
    )
    msg = build_mime(report, settings.mail_from, settings.mail_to)
    report.paths["eml"] = write_eml(msg, out_dir / "report.eml")
    print(report.subject)
    for name, path in report.paths.items():
        print(f"  {name:8s} {path}")
    if args.send:
        try:
            send_smtp(msg, settings)
        except ReportMailError as exc:
            print(f"error: report written but not sent: {exc}", file=sys.stderr)
            return 1
        print(f"sent to {', '.join(settings.mail_to)}")
    return 0
