"""Report periods on Upbit's trading-day clock: a day starts at 09:00 KST (configurable).

Upbit's daily candle runs 09:00–09:00 KST (00:00 UTC). A trading day `d` is therefore the
half-open interval [d h:00 KST, d+1 h:00 KST). KST has no daylight saving, so plain offsets are
exact. Weeks (Monday first) and months are "to date": they end where the trading day `d` ends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from trader.timeutil import datetime_to_ms, ms_to_datetime

KST = timezone(timedelta(hours=9), "KST")
DAY_MS = 86_400_000
PERIODS = ("day", "week", "month", "all")


def day_start_ms(day: date, day_start_hour: int = 9) -> int:
    """UTC epoch ms where trading day `day` begins."""
    start = datetime(day.year, day.month, day.day, day_start_hour, tzinfo=KST)
    return datetime_to_ms(start)


def trading_day(ts_ms: int, day_start_hour: int = 9) -> date:
    """The trading day an instant belongs to."""
    kst = ms_to_datetime(ts_ms).astimezone(KST)
    return (kst - timedelta(hours=day_start_hour)).date()


def last_complete_day(now: datetime | None = None, day_start_hour: int = 9) -> date:
    """The most recent trading day that has ended (what the morning report covers)."""
    now = now or datetime.now(UTC)
    return trading_day(datetime_to_ms(now), day_start_hour) - timedelta(days=1)


def period_first_day(day: date, period: str) -> date | None:
    """First trading day of the period that ends with `day` (None for 'all': since the start)."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "all":
        return None
    raise ValueError(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")


def report_window(day: date, period: str, day_start_hour: int = 9) -> tuple[int, int]:
    """(start_ms, end_ms) of the period ending with trading day `day`, half-open.

    'all' starts at 0 (the beginning of the data); the metrics then use the first record.
    """
    first = period_first_day(day, period)
    end_ms = day_start_ms(day + timedelta(days=1), day_start_hour)
    start_ms = 0 if first is None else day_start_ms(first, day_start_hour)
    return start_ms, end_ms


def fmt_kst(ts_ms: int, with_seconds: bool = False) -> str:
    """'2024-03-05 09:00 KST' for a UTC epoch ms."""
    kst = ms_to_datetime(ts_ms).astimezone(KST)
    return kst.strftime("%Y-%m-%d %H:%M:%S KST" if with_seconds else "%Y-%m-%d %H:%M KST")
