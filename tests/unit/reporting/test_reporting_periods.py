"""Trading-day windows on Upbit's 09:00 KST clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from trader.reporting.periods import day_start_ms, last_complete_day, report_window, trading_day


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_day_starts_at_nine_kst() -> None:
    assert day_start_ms(date(2024, 3, 5)) == _ms(2024, 3, 5, 0, 0)  # 09:00 KST = 00:00 UTC
    assert day_start_ms(date(2024, 3, 5), 0) == _ms(2024, 3, 4, 15, 0)


def test_trading_day_edges() -> None:
    assert trading_day(_ms(2024, 3, 4, 23, 59)) == date(2024, 3, 4)  # 08:59 KST on the 5th
    assert trading_day(_ms(2024, 3, 5, 0, 0)) == date(2024, 3, 5)


@pytest.mark.parametrize(
    ("period", "first"),
    [("day", date(2024, 3, 6)), ("week", date(2024, 3, 4)), ("month", date(2024, 3, 1))],
)
def test_windows_end_with_the_day(period: str, first: date) -> None:
    start, end = report_window(date(2024, 3, 6), period)  # a Wednesday
    assert start == day_start_ms(first)
    assert end == day_start_ms(date(2024, 3, 7))


def test_all_starts_at_zero_and_unknown_period_fails() -> None:
    assert report_window(date(2024, 3, 6), "all")[0] == 0
    with pytest.raises(ValueError, match="unknown period"):
        report_window(date(2024, 3, 6), "year")


def test_last_complete_day() -> None:
    # 08:00 KST on the 6th: the trading day 03-05 is still running, so 03-04 is the last complete
    assert last_complete_day(datetime(2024, 3, 5, 23, 0, tzinfo=UTC)) == date(2024, 3, 4)
    assert last_complete_day(datetime(2024, 3, 6, 0, 30, tzinfo=UTC)) == date(2024, 3, 5)
