"""Per-group request pacing that honours Upbit's `Remaining-Req` header, without blocking the loop.

Upbit counts requests per group (`default` 30/s, `order` 8/s, quotation groups 10/s …) in
one-second windows and answers every call with `Remaining-Req: group=…; min=…; sec=N`. The
limiter keeps, per group, the send times of the last second (a sliding-window bucket: no
one-second window ever holds more than the limit, whatever the server's window alignment) and
`await`s before a request that would exceed it. The server's `sec` is authoritative: when it
reports fewer requests left than we think (another process shares the key), the difference is
booked as spent now; `sec=0` closes the group for a whole window. A 418 (blocked after repeated
429s) closes every group for the announced duration.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Per-second limits by group (upbit-api.md §2.11); unknown groups get the strictest quotation limit.
GROUP_LIMITS: dict[str, int] = {
    "market": 10,
    "candle": 10,
    "trade": 10,
    "ticker": 10,
    "orderbook": 10,
    "default": 30,
    "order": 8,
    "order-test": 8,
    "order-cancel-all": 1,
}
_WINDOW_S: dict[str, float] = {"order-cancel-all": 2.0}
_REMAINING_RE = re.compile(r"group=([a-z\-]+);\s*min=([0-9]+);\s*sec=([0-9]+)")


@dataclass(frozen=True, slots=True)
class RemainingReq:
    """A parsed `Remaining-Req` header."""

    group: str
    min: int
    sec: int


def parse_remaining_req(header: str | None) -> RemainingReq | None:
    """`group=default; min=1800; sec=29` → RemainingReq; None when absent or malformed."""
    if not header:
        return None
    m = _REMAINING_RE.search(header)
    if not m:
        return None
    return RemainingReq(m.group(1), int(m.group(2)), int(m.group(3)))


def group_for(method: str, path: str) -> str:
    """The rate-limit group of an endpoint (the same table the simulator uses)."""
    method = method.upper()
    if path.startswith("/v1/orders/open") and method == "DELETE":
        return "order-cancel-all"
    if path == "/v1/orders/test":
        return "order-test"
    if (path == "/v1/orders" and method == "POST") or path == "/v1/orders/cancel_and_new":
        return "order"
    if path.startswith("/v1/market"):
        return "market"
    if path.startswith("/v1/candles"):
        return "candle"
    if path.startswith("/v1/trades"):
        return "trade"
    if path.startswith("/v1/ticker"):
        return "ticker"
    if path.startswith("/v1/orderbook"):
        return "orderbook"
    return "default"


class RateLimiter:
    """Async sliding-window limiter per group; `clock`/`sleep` are injectable for tests."""

    def __init__(
        self,
        limits: dict[str, int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        margin_s: float = 0.02,
    ) -> None:
        self.limits = dict(GROUP_LIMITS if limits is None else limits)
        self._clock = clock
        self._sleep = sleep
        self._margin = margin_s  # a little slack so clock skew with the server never tips us over
        self._sent: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._all_blocked_until = 0.0
        self._locks: dict[str, asyncio.Lock] = {}
        self.waited_s = 0.0  # total time spent waiting (a figure for logs and tests)

    def limit(self, group: str) -> int:
        return self.limits.get(group, 10)

    def window(self, group: str) -> float:
        return _WINDOW_S.get(group, 1.0)

    def _prune(self, group: str, now: float) -> deque[float]:
        sent = self._sent.setdefault(group, deque())
        horizon = now - self.window(group) - self._margin
        while sent and sent[0] <= horizon:
            sent.popleft()
        return sent

    def delay(self, group: str) -> float:
        """Seconds to wait before the next request of `group` may go (0 when it may go now)."""
        now = self._clock()
        wait = max(self._blocked_until.get(group, 0.0), self._all_blocked_until) - now
        sent = self._prune(group, now)
        if len(sent) >= self.limit(group):
            wait = max(wait, sent[0] + self.window(group) + self._margin - now)
        return max(wait, 0.0)

    async def acquire(self, group: str) -> None:
        """Wait (asyncio.sleep) until a request of `group` fits, then book it."""
        lock = self._locks.setdefault(group, asyncio.Lock())
        async with lock:  # FIFO among waiters of one group
            while (wait := self.delay(group)) > 0:
                self.waited_s += wait
                await self._sleep(wait)
            self._sent.setdefault(group, deque()).append(self._clock())

    def observe(self, remaining: RemainingReq | None) -> None:
        """Align our count with the server's `sec` (requests left in its current window)."""
        if remaining is None:
            return
        group, now = remaining.group, self._clock()
        if remaining.sec <= 0:
            self.block(group, self.window(group))
            return
        sent = self._prune(group, now)
        while self.limit(group) - len(sent) > remaining.sec:
            sent.append(now)

    def block(self, group: str, seconds: float) -> None:
        """Close one group for `seconds` (429, or `sec=0`)."""
        until = self._clock() + seconds
        self._blocked_until[group] = max(self._blocked_until.get(group, 0.0), until)

    def block_all(self, seconds: float) -> None:
        """Close every group for `seconds` (418: the IP/account is blocked)."""
        self._all_blocked_until = max(self._all_blocked_until, self._clock() + seconds)


class Unpaced(RateLimiter):
    """A limiter that never waits and ignores the server's counts: for a lockstep replay, where
    days of market time pass in seconds and the simulator limits nothing. 429/418 still close a
    group (the server said so)."""

    def delay(self, group: str) -> float:
        now = self._clock()
        return max(max(self._blocked_until.get(group, 0.0), self._all_blocked_until) - now, 0.0)

    async def acquire(self, group: str) -> None:
        while (wait := self.delay(group)) > 0:
            self.waited_s += wait
            await self._sleep(wait)

    def observe(self, remaining: RemainingReq | None) -> None:
        return None
