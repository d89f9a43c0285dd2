"""`snapshot`: parquet snapshots of the trading database, one set of files per trading day.

Re-running it for the same day rewrites the same files (idempotent), so the hourly deployment
keeps the current day fresh and any past day can be rebuilt from the UI or the CLI:
`python -m flows.snapshot --date 2024-03-05`.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date as Date
from typing import Any

from prefect import flow, get_run_logger

from tasks.snapshot import write_snapshot
from trader.config import load_settings
from trader.reporting.periods import trading_day


def resolve_day(date: str | None, day_start_hour: int = 9) -> Date:
    """`date` (YYYY-MM-DD) or, by default, the trading day in progress (09:00 KST boundary)."""
    if date:
        return Date.fromisoformat(date)
    return trading_day(time.time_ns() // 1_000_000, day_start_hour)


@flow(name="snapshot", persist_result=False, log_prints=False)
def snapshot(
    date: str | None = None, db_url: str | None = None, out_dir: str | None = None
) -> dict[str, Any]:
    """Write the parquet snapshot of trading day `date` (default: today's, KST)."""
    settings = load_settings()
    day = resolve_day(date, settings.day_start_hour_kst)
    url = db_url or settings.db_url
    target = out_dir or str(settings.var_dir / "snapshots")
    result = write_snapshot(url, target, day)
    get_run_logger().info("snapshot of %s written under %s", day.isoformat(), target)
    return {"day": day.isoformat(), **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.snapshot", description=__doc__.split("\n")[0])
    parser.add_argument("--date", help="trading day YYYY-MM-DD (default: today, KST)")
    parser.add_argument("--db-url")
    parser.add_argument("--out-dir")
    args = parser.parse_args(argv)
    print(snapshot(date=args.date, db_url=args.db_url, out_dir=args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
