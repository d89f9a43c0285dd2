"""Datetime ↔ epoch-ms conversions are exact, where `int(dt.timestamp() * 1000)` is not."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from trader.reporting.periods import last_complete_day, trading_day
from trader.sim.rest import parse_time_ms
from trader.timeutil import EPOCH, datetime_to_ms, ms_to_datetime, now_ms
from trader.upbit.gaps import _candle_start_ms

# float seconds × 1000 rounds up to the next millisecond here (found by a search over random
# microsecond instants; such far dates reach the simulator as a client's `to` parameter)
FAR = datetime(2500, 3, 30, 3, 43, 18, 475999, tzinfo=UTC)
FAR_MS = 16_732_842_198_475


def test_the_float_path_is_off_by_one_where_the_helper_is_exact() -> None:
    assert int(FAR.timestamp() * 1000) == FAR_MS + 1  # the bug being avoided
    assert datetime_to_ms(FAR) == FAR_MS
    assert (FAR - EPOCH) // timedelta(microseconds=1) // 1000 == FAR_MS  # independent derivation
    # int() truncates towards zero: half a millisecond before 1970 is ms −1, not 0
    before = datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)
    assert int(before.timestamp() * 1000) == 0 and datetime_to_ms(before) == -1


@pytest.mark.parametrize("ms", [0, 1, 999, 1_704_067_199_999, 1_704_067_200_000, FAR_MS, -1, -86_400_001])
def test_ms_round_trips(ms: int) -> None:
    assert datetime_to_ms(ms_to_datetime(ms)) == ms


def test_offsets_and_naive_local_time() -> None:
    kst = timezone(timedelta(hours=9))
    assert datetime_to_ms(datetime(2024, 1, 1, 9, tzinfo=kst)) == 1_704_067_200_000
    naive = datetime(2024, 5, 6, 7, 8, 9, 123456)  # local time, as datetime.timestamp() reads it
    assert datetime_to_ms(naive) == int(naive.timestamp() * 1000)
    assert abs(now_ms() - int(datetime.now(UTC).timestamp() * 1000)) < 5_000


def test_callers_use_the_exact_conversion() -> None:
    assert parse_time_ms("2500-03-30T03:43:18.475999Z") == FAR_MS
    assert parse_time_ms("2500-03-30 12:43:18.475999+09:00") == FAR_MS
    assert parse_time_ms("2500-03-30T03:43:18.475999") == FAR_MS  # naive = UTC
    assert _candle_start_ms({"candle_date_time_utc": "2500-03-30T03:43:18.475999"}) == FAR_MS
    # one microsecond before 09:00 KST still belongs to the trading day before
    edge = datetime(2024, 3, 5, 23, 59, 59, 999999, tzinfo=UTC)  # 2024-03-06 08:59:59.999999 KST
    assert last_complete_day(edge) == date(2024, 3, 4)
    assert trading_day(datetime_to_ms(edge) + 1) == date(2024, 3, 6)
