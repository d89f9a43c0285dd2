"""Paper replays faster than real time: pause the simulator while one of our orders is in flight.

On the real exchange an order is placed and filled in milliseconds of market time. A replay at
thousands of times real speed turns every wall-clock millisecond of our order handling (REST
round trips, a `place-order` subflow's ~1 s) into minutes or hours of market time, during which
the strategy (which never stacks decisions on a pending order) would be blind. In lockstep the
simulator is paused on each decision (and each fill) and resumed once nothing is in flight but
resting limit orders — those need the market to move to fill — so the replayed market waits for
our order handling the way the real one effectively does. Never used against Upbit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger("flows.lockstep")


class SimLockstep:
    """Pause on a decision or fill; a watcher resumes the simulator once `idle()` says so.

    While resumed it keeps the replay at `resting_speed` as long as `waiting()` (an order rests)
    and at `speed` otherwise.
    """

    def __init__(
        self,
        sim_url: str,
        idle: Callable[[], bool],
        *,
        waiting: Callable[[], bool] = lambda: False,
        speed: str = "max",
        resting_speed: float | None = None,
        poll_s: float = 0.01,
    ) -> None:
        self._client = httpx.AsyncClient(base_url=sim_url.rstrip("/"), timeout=10.0)
        self._idle = idle
        self._waiting = waiting
        self._speed = speed
        self._resting_speed = resting_speed
        self._current: str | float = speed
        self._poll_s = poll_s
        self._paused = False
        self._pausing: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.pauses = 0

    def pause(self) -> None:
        """Called on the loop by the decision/fill observers: pause now (the request goes out async)."""
        if not self._paused:
            self._paused = True
            self.pauses += 1
            self._pausing = asyncio.create_task(self._post("pause"))
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        # the engine registers an intent as in flight in the same synchronous step as the
        # decision observer, so by the time this runs `idle()` already sees it
        while True:
            if self._paused:
                if self._idle():
                    if self._pausing is not None:
                        with contextlib.suppress(Exception):
                            await self._pausing
                    self._paused = False
                    await self._resume_at(self._pace())
            elif self._resting_speed is not None and self._pace() != self._current:
                await self._resume_at(self._pace())
            await asyncio.sleep(self._poll_s)

    def _pace(self) -> str | float:
        if self._resting_speed is not None and self._waiting():
            return self._resting_speed
        return self._speed

    async def _resume_at(self, speed: str | float) -> None:
        self._current = speed
        await self._post("resume", {"speed": speed})

    async def _post(self, action: str, body: dict[str, Any] | None = None) -> None:
        try:
            r = await self._client.post(f"/_sim/{action}", json=body or {})
            r.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("simulator %s failed: %s", action, type(exc).__name__)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
        if self._paused:
            await self._post("resume")
        await self._client.aclose()


def only_resting_limits(loop: Any) -> bool:
    """True when the engine waits for nothing but the market: no intent in flight, or every open
    order is an acknowledged limit order (it fills only if the replay moves on)."""
    if not loop.inflight:
        return True
    open_orders = loop.om.open_orders
    return bool(open_orders) and all(
        str(getattr(o.ord_type, "value", o.ord_type)) == "limit" and o.uuid for o in open_orders
    )


def waiting_on_limits(loop: Any) -> bool:
    """True while an intent is in flight (its resting limit order needs the market to move)."""
    return bool(loop.inflight)
