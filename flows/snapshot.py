"""`snapshot`: parquet snapshots of the trading database, one set of files per KST calendar day.

Re-running it for the same day rewrites the same files (idempotent), so the hourly deployment
keeps the current day fresh (and rewrites yesterday too, so its last hour is never missed); any
past day can be rebuilt from the UI or the CLI:
`python -m flows.snapshot --date 2024-03-05`.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date as Date
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger

from tasks.snapshot import write_snapshot
from trader.config import load_settings
from trader.storage.parquet import kst_date


def resolve_days(date: str | None) -> list[Date]:
    """[`date`] (YYYY-MM-DD) or, by default, [yesterday, today] in KST (partitions are KST days)."""
    if date:
        return [Date.fromisoformat(date)]
    today = kst_date(time.time_ns() // 1_000_000)
    return [today - timedelta(days=1), today]


@flow(name="snapshot", persist_result=False, log_prints=False)
def snapshot(
    date: str | None = None, db_url: str | None = None, out_dir: str | None = None
) -> dict[str, Any]:
    """Write the parquet snapshot of KST day `date` (default: yesterday and today)."""
    settings = load_settings()
    url = db_url or settings.db_url
    target = out_dir or str(settings.var_dir / "snapshots")
    written: dict[str, Any] = {}
    for day in resolve_days(date):
        written[day.isoformat()] = write_snapshot(url, target, day)
    get_run_logger().info("snapshot of %s written under %s", ", ".join(written), target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.snapshot", description=__doc__.split("\n")[0])
    parser.add_argument("--date", help="KST day YYYY-MM-DD (default: yesterday and today)")
    parser.add_argument("--db-url")
    parser.add_argument("--out-dir")
    args = parser.parse_args(argv)
    print(snapshot(date=args.date, db_url=args.db_url, out_dir=args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
