"""Exact conversions between datetimes and UTC epoch milliseconds (integer arithmetic only).

`int(dt.timestamp() * 1000)` goes through a float of seconds: past the year ~2300 the product
can round up to the next millisecond (2500-03-30T03:43:18.475999Z gives …476), and `int()`
truncates towards zero, so an instant just before 1970 lands on the wrong millisecond. A
`timedelta` holds days, seconds and microseconds as integers, so floor-dividing the distance
from the epoch by one millisecond is exact for every datetime.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def datetime_to_ms(dt: datetime) -> int:
    """UTC epoch milliseconds of `dt`, floored (sub-millisecond digits dropped, as Upbit does).

    A naive datetime is local time, as `datetime.timestamp()` takes it (astimezone is exact).
    """
    if dt.tzinfo is None:
        dt = dt.astimezone(UTC)
    return (dt - EPOCH) // _MS


def ms_to_datetime(ts_ms: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds `ts_ms` (exact, unlike fromtimestamp(ms / 1000))."""
    return EPOCH + timedelta(milliseconds=int(ts_ms))


def now_ms() -> int:
    """Wall-clock UTC epoch milliseconds, from the integer nanosecond clock."""
    return time.time_ns() // 1_000_000
