"""Upbit's per-group request limits (upbit-api.md §2.11) and the Remaining-Req header.

A sliding one-second window per (group, caller). Exceeding it answers 429; a caller that keeps
hammering after `ban_after` 429s within ten seconds is answered 418 for `ban_s` seconds, as Upbit
blocks abusive clients. The WebSocket groups are checked by `trader.sim.ws` (connections per
IP or account, messages per connection; `websocket-message-min` is the 100/min half). The
`origin` group (1 per 10 s per IP) replaces the usual group for a Quotation request or a public
WebSocket handshake that carries an `Origin` header.
"""

from __future__ import annotations

import time
from collections import deque

from trader.sim.matching import SimError

GROUP_LIMITS: dict[str, tuple[int, float]] = {  # group -> (requests, per seconds)
    "market": (10, 1.0),
    "candle": (10, 1.0),
    "trade": (10, 1.0),
    "ticker": (10, 1.0),
    "orderbook": (10, 1.0),
    "default": (30, 1.0),
    "order": (8, 1.0),
    "order-test": (8, 1.0),
    "order-cancel-all": (1, 2.0),
    "websocket-connect": (5, 1.0),
    "websocket-message": (5, 1.0),
    "websocket-message-min": (100, 60.0),  # the per-minute half of the websocket-message limit
    # requests carrying an Origin header (browsers): Quotation REST and public WebSocket together,
    # 1 per 10 s per IP; Upbit's Remaining-Req then names the group `origin`
    "origin": (1, 10.0),
}
MIN_FIXED = 1800  # `min=` is deprecated and fixed


def origin_caller(host: str) -> str:
    """The counter key of the `origin` limit: one per IP, whether REST or WebSocket."""
    return f"origin:{host}"


def too_many() -> SimError:
    return SimError(429, "too_many_requests", "Too many API requests.")


class RateLimiter:
    def __init__(self, *, enabled: bool = True, ban_after: int = 20, ban_s: float = 30.0) -> None:
        self.enabled = enabled
        self.ban_after = ban_after
        self.ban_s = ban_s
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._rejects: dict[str, deque[float]] = {}
        self._banned_until: dict[str, float] = {}

    def reset(self) -> None:
        self._hits.clear()
        self._rejects.clear()
        self._banned_until.clear()

    def forget(self, caller: str) -> None:
        """Drop a caller's counters (a closed WebSocket connection)."""
        for key in [k for k in self._hits if k[1] == caller]:
            del self._hits[key]
        self._rejects.pop(caller, None)
        self._banned_until.pop(caller, None)

    def check(self, group: str, caller: str) -> str:
        """Count one request; returns the Remaining-Req header value or raises 429/418."""
        limit, window = GROUP_LIMITS.get(group, (30, 1.0))
        now = time.monotonic()
        q = self._hits.setdefault((group, caller), deque())
        while q and q[0] <= now - window:
            q.popleft()
        if self.enabled:
            until = self._banned_until.get(caller)
            if until is not None:
                if now < until:
                    raise SimError(418, "too_many_requests",
                                   f"I'm a teapot. Blocked for {int(until - now) + 1} seconds.")
                del self._banned_until[caller]
            if len(q) >= limit:
                rq = self._rejects.setdefault(caller, deque())
                rq.append(now)
                while rq and rq[0] <= now - 10.0:
                    rq.popleft()
                if len(rq) >= self.ban_after:
                    self._banned_until[caller] = now + self.ban_s
                    rq.clear()
                raise too_many()
        if not self.enabled:
            # limits off: nothing is counted, and the header must not tell a client that honours it
            # (ours does) to wait — `sec=0` made a lockstep replay pace itself at 30 requests/s
            return f"group={group}; min={MIN_FIXED}; sec={limit - 1}"
        q.append(now)
        remaining = max(limit - len(q), 0)
        return f"group={group}; min={MIN_FIXED}; sec={remaining}"
