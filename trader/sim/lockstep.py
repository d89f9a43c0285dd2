"""Client side of the simulator's lockstep mode: acknowledge each trade once it has been handled.

`LockstepAck(public_ws, base_url)` is a `TradingLoop(after_tick=...)` hook: it sends
"ACK <sequential_id>" on the public WebSocket the trade came from (the cheap path) and falls back
to POST /_sim/ack when that socket is down, so a reconnect never leaves the feed waiting.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from trader.domain import Tick

log = logging.getLogger("trader.sim.lockstep")


class LockstepAck:
    """Awaitable per-tick hook acking trades to a lockstep simulator."""

    def __init__(self, public_ws: Any, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.public_ws = public_ws
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.sent = 0
        self.fallbacks = 0
        self._http: httpx.AsyncClient | None = None

    async def __call__(self, tick: Tick) -> None:
        self.sent += 1
        if await self.public_ws.send_text(f"ACK {tick.seq}"):
            return
        self.fallbacks += 1
        await self.ack_rest(tick.seq)

    async def ack_rest(self, seq: int | None = None) -> None:
        """POST /_sim/ack (seq None: release whatever trade is waiting)."""
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s)
        try:
            r = await self._http.post("/_sim/ack", json={} if seq is None else {"seq": seq})
            r.raise_for_status()
        except httpx.HTTPError as exc:  # the feed's ack timeout releases it anyway
            log.warning("lockstep ack failed: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
