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


async def test_a_lockstep_client_is_not_paced_by_the_window_but_a_429_still_closes_the_group() -> None:
    from trader.upbit.ratelimit import RemainingReq, Unpaced

    now = [0.0]
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = Unpaced(clock=lambda: now[0], sleep=sleep)
    for _ in range(500):  # far past Upbit's 30 per second, in no time at all
        await limiter.acquire("default")
        limiter.observe(RemainingReq("default", 1800, 0))
    assert slept == [] and limiter.waited_s == 0.0
    limiter.block("default", 2.0)  # the server answered 429
    await limiter.acquire("default")
    assert slept == [2.0]
