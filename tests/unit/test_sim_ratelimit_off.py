"""With rate limits off the simulator counts nothing and never tells a client to wait.

Regression: it kept counting and answered `Remaining-Req: …; sec=0` past 30 requests in a second,
so our client (which honours the header) paced a lockstep paper run at Upbit's real limit.
"""

from __future__ import annotations

from trader.sim.ratelimit import GROUP_LIMITS, RateLimiter


def test_limits_off_report_a_full_window_however_many_requests() -> None:
    limiter = RateLimiter(enabled=False)
    limit = GROUP_LIMITS["default"][0]
    headers = [limiter.check("default", "127.0.0.1") for _ in range(limit * 5)]
    assert set(headers) == {f"group=default; min=1800; sec={limit - 1}"}


def test_limits_on_count_down_to_zero_then_refuse() -> None:
    limiter = RateLimiter(enabled=True)
    limit = GROUP_LIMITS["default"][0]
    last = [limiter.check("default", "127.0.0.1") for _ in range(limit)][-1]
    assert last.endswith("sec=0")
