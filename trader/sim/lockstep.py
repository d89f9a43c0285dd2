"""Client side of the simulator's lockstep mode: ack each trade once handled; notice the replay's end.

`LockstepAck(public_ws, base_url)` is a `TradingLoop(after_tick=...)` hook: it sends
"ACK <sequential_id> <lo> <hi> <until_ms>" on the public WebSocket the trade came from (the cheap
path) and falls back to POST /_sim/ack when that socket is down, so a reconnect never leaves the
feed waiting. The band (trader/sim/ackgate.py) is the one the loop's lockstep step computed for
this tick (`trader.sim.lockstep_sync`); it travels in the context variable `current_band`, so a
hook that wraps a LockstepAck passes it on untouched. Without a band the ack is the plain
"ACK <seq>" and the simulator waits for the next trade's ack too.

`watch_replay_end` polls GET /_sim/state and calls back once the replay has no more data (and, in
lockstep, its last trade is acked): a paper run then stops by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import httpx

from trader.domain import Tick
from trader.sim.ackgate import QuietBand

log = logging.getLogger("trader.sim.lockstep")

# the quiet band of the tick being acked, set by the loop's lockstep step just before the ack
current_band: ContextVar[QuietBand | None] = ContextVar("lockstep_band", default=None)


class LockstepAck:
    """Awaitable per-tick hook acking trades (with the loop's quiet band) to a lockstep simulator."""

    def __init__(self, public_ws: Any, base_url: str, *, timeout_s: float = 10.0,
                 prefer_rest: bool = False) -> None:
        self.public_ws = public_ws
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.prefer_rest = prefer_rest  # tests exercise the REST path on its own
        self.sent = 0
        self.fallbacks = 0
        self.banded = 0  # acks that carried a band
        self._http: httpx.AsyncClient | None = None

    async def __call__(self, tick: Tick, band: QuietBand | None = None) -> None:
        self.sent += 1
        band = band if band is not None else current_band.get()
        if band is not None:
            self.banded += 1
        if not self.prefer_rest:
            text = f"ACK {tick.seq}" if band is None else f"ACK {tick.seq} {band.text()}"
            if await self.public_ws.send_text(text):
                return
            self.fallbacks += 1
        await self.ack_rest(tick.seq, band)

    async def ack_rest(self, seq: int | None = None, band: QuietBand | None = None) -> None:
        """POST /_sim/ack (seq None: release whatever trade is waiting)."""
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s)
        body: dict[str, Any] = {} if seq is None else {"seq": seq}
        if band is not None and seq is not None:
            body.update(zip(("lo", "hi", "until_ms"), band.text().split(), strict=True))
        try:
            r = await self._http.post("/_sim/ack", json=body)
            r.raise_for_status()
        except httpx.HTTPError as exc:  # the feed's ack timeout releases it anyway
            log.warning("lockstep ack failed: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


async def watch_replay_end(base_url: str, on_end: Callable[[], None], every_s: float = 0.5) -> None:
    """Poll GET /_sim/state every `every_s` and call `on_end()` once the replay is over.

    Over means the simulator's "ended": no more data nor pushed trades, and in lockstep the last
    trade acked — the loop acks a trade only once it has handled it and settled its orders. Without
    lockstep, the last trades may still be on their way through the socket: the end is taken after
    it has been seen on two polls in a row. Returns after calling `on_end`; cancel it to stop
    watching. A simulator that does not answer is polled again (a warning once).
    """
    warned = False
    seen = False
    async with httpx.AsyncClient(base_url=base_url, timeout=max(5.0, every_s)) as http:
        while True:
            try:
                r = await http.get("/_sim/state")
                r.raise_for_status()
                state = r.json()
            except (httpx.HTTPError, ValueError) as exc:
                if not warned:
                    log.warning("replay end: simulator state not readable (%s); polling on",
                                type(exc).__name__)
                    warned = True
                state = {}
            ended = bool(state.get("ended"))
            if ended and ("lockstep" in state or seen):
                log.info("replay ended position=%s", state.get("position"))
                on_end()
                return
            seen = ended
            await asyncio.sleep(every_s)
