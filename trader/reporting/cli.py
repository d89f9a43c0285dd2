"""`python -m trader report`: render a performance report to a folder and optionally mail it.

Reads only the database (or the parquet snapshots), never the running engine. The files are
written before any mail is attempted, so a mail failure still leaves the report on disk.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trader import cli_types as t

PERIOD_CHOICES = ("day", "week", "month", "all")
EXIT_USAGE = 2


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
        "--date", type=t.iso_date, help="trading day the period ends with (default: the last complete day)"
    )
    p.add_argument(
        "--period", choices=PERIOD_CHOICES, default="day", help="day (default), week, month or all"
    )
    p.add_argument("--out", type=t.out_dir, help="output folder (default: <var>/reports/<date>/)")
    p.add_argument("--send", action="store_true", help="e-mail the report via TRADER_SMTP_* settings")
    p.add_argument("--lang", choices=("ko", "en"), help="report language (default: TRADER_REPORT_LANG, ko)")
    p.add_argument("--db", type=t.db_url, metavar="URL",
                   help="database URL (default: TRADER_DATABASE_URL or var/trader.db)")
    p.add_argument(
        "--snapshots", type=t.existing_dir, metavar="DIR",
        help="read parquet snapshots from DIR instead of the DB"
    )
    p.add_argument("--market", type=t.market, help="only this market (e.g. KRW-BTC); default: every market")
    p.add_argument(
        "--starting-krw",
        type=t.krw_or_zero,
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
    from trader.storage.db import redact_url

    settings = load_settings()
    hour = settings.day_start_hour_kst
    day = args.date or last_complete_day(day_start_hour=hour)
    lang = args.lang or settings.report_lang
    start_ms, end_ms = report_window(day, args.period, hour)
    out_dir = args.out or settings.reports_dir / (
        day.isoformat() if args.period == "day" else f"{day}-{args.period}"
    )
    problem = _missing_database(args.db or str(settings.db_url)) if not args.snapshots else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
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
    if args.market and _nothing_for_market(inputs):
        where = args.snapshots or redact_url(args.db or str(settings.db_url))
        print(f"error: --market {args.market}: no fills or equity recorded for it in {where}",
              file=sys.stderr)
        return EXIT_USAGE
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


def _missing_database(url: str) -> str | None:
    """A SQLite file that does not exist is a mistyped path: opening it would make an empty database
    (and mail a "0원" report), so it is refused; None when the database is there or not a file."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    database = u.database or ""
    if u.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    if not Path(database).is_file():
        return f"--db: no database at {database} (check the path; a report needs the trader's database)"
    return None


def _nothing_for_market(inputs: object) -> bool:
    """True when the inputs hold neither a fill nor an equity/price row of the chosen market."""
    for name in ("fills", "prices"):
        rows = getattr(inputs, name, None)
        if rows is not None and len(rows):
            return False
    equity = getattr(inputs, "equity", None)
    return not (equity is not None and len(equity) and "market" in equity.columns)
