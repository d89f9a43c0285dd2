"""Injected faults for resilience tests: the next N requests fail, added latency, dropped sockets.

Only Upbit's namespace (/v1/…, /websocket/…) is affected; the /_sim/ controls never fail.
"""

from __future__ import annotations

import asyncio
from collections import deque

from trader.sim.matching import SimError


class Faults:
    def __init__(self) -> None:
        self.latency_ms = 0.0
        self._fail: deque[int] = deque()  # one status per request to fail
        self.drop_generation = 0

    def fail_next(self, n: int, status: int = 500) -> None:
        self._fail.extend([int(status)] * max(0, int(n)))

    def clear(self) -> None:
        self._fail.clear()
        self.latency_ms = 0.0

    def pending(self) -> int:
        return len(self._fail)

    async def before_request(self) -> None:
        """Apply latency, then raise the next scheduled failure if any."""
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000.0)
        if self._fail:
            status = self._fail.popleft()
            if status == 429:
                raise SimError(429, "too_many_requests", "Too many API requests.")
            if status == 418:
                raise SimError(418, "too_many_requests", "I'm a teapot.")
            raise SimError(status, "server_error", "일시적인 서버 오류입니다. (injected fault)")
