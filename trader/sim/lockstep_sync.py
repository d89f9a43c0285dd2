"""The trading loop's lockstep step: settle every order around each trade, then ack with a quiet band.

Only paper runs against a lockstep simulator take this path (`TradingLoop(after_tick=ack)` builds
one `LockstepSync`; the loop calls `before(tick)` and `after(tick)` around its own tick handling).

Why: the backtest (trader/backtest/runner.py) handles each trade in this order: (1) the trade fills
the resting orders it crosses and a finished order's result reaches the strategy, (2) a limit
order past its timeout is cancelled and its fallback sent and settled, (3) the strategy sees the
trade, (4) its orders are placed, and one that finishes at once (a market order, a marketable
limit) is reported before the next trade. In paper a resting order's fill comes on the private
WebSocket, apart from the public trade that caused it, so lockstep reproduces the order itself:
the simulator has matched trade t before it publishes it and applies nothing it must wait for
until t is acked (trader/sim/ackgate.py), so before the strategy sees t, `before` wakes every
order of ours that t crosses (and, through the market clock, every order t times out) and waits
until each in-flight intent is settled — its task done, or parked on a limit order still resting
with nothing left to read (REST `get_order` is the truth, whatever the private socket delivered
so far); after the strategy has decided, `after` waits the same way, then acks.

Speed: the ack carries the loop's quiet band — `strategy.quiet(view)` with the view the strategy
was given, `until` capped by the next market-time deadline of a resting limit order, and empty
(lo = hi = price) while any in-flight intent is not parked on a resting order. The simulator then
releases the trades inside it without waiting for acks; the loop still handles (and acks) each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from trader.domain import OrdType, Side, Tick
from trader.sim.ackgate import QuietBand
from trader.sim.lockstep import current_band

log = logging.getLogger("trader.engine")


class LockstepSync:
    """Settle-then-ack around each tick of `loop` (a `trader.engine.TradingLoop`)."""

    def __init__(self, loop: Any, ack: Callable[[Tick], Awaitable[None]], *,
                 settle_timeout_s: float = 30.0, poll_s: float = 0.001, coalesce: bool = True) -> None:
        self.loop = loop
        self.ack = ack
        self.settle_timeout_s = settle_timeout_s
        self.poll_s = poll_s
        self.quiet_acks = 0  # acks whose band let at least the next price through
        # acks are coalesced: the newest handled trade's ack (with its band) is sent whenever the
        # loop yields — at the latest when it waits for the next trade, which is exactly when the
        # simulator may be waiting for that ack — so a burst of quiet trades costs one ack, not
        # one each (older trades' acks would only be stale). False: one ack per trade, in turn.
        self.coalesce = coalesce
        self._pending: tuple[Tick, QuietBand] | None = None
        self._flusher: asyncio.Future[None] | None = None
        self._error: Exception | None = None

    async def before(self, tick: Tick) -> None:
        """Steps (1)–(2) for `tick`: book what it filled and what it timed out."""
        loop = self.loop
        if not loop.inflight or tick.market != loop.market:
            return
        loop.stats.last_tick_ts_ms = tick.ts_ms  # market time: timeouts and fallbacks see t
        loop.last_price = tick.price
        om = loop.om
        om.note_market_time(tick.ts_ms)
        price = tick.price
        for order in om.open_orders:
            if order.market != loop.market or order.ord_type is not OrdType.LIMIT or order.price is None:
                continue
            # the simulator's crossing rule (matching.py `_match_resting`), inclusive: a trade at
            # the limit price may fill it; waking an order it did not fill costs one GET
            if price <= order.price if order.side is Side.BID else price >= order.price:
                order.wake.set()
        await self.settle()

    async def after(self, tick: Tick) -> None:
        """Step (4): wait until this tick's orders are placed and every in-flight intent is
        settled (market orders confirmed, limit orders resting or finished), then ack the trade
        with the quiet band (the ack lets the simulator apply the next trade)."""
        if self.loop.inflight:
            await self.settle()
        band = self.band(tick)
        if band.lo < band.hi:
            self.quiet_acks += 1
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if not self.coalesce:
            current_band.set(band)
            await self.ack(tick)
            return
        self._pending = (tick, band)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        """Send the ack of the newest handled trade (with its band) whenever the loop yields."""
        try:
            while self._pending is not None:
                tick, band = self._pending
                self._pending = None
                current_band.set(band)
                await self.ack(tick)
        except Exception as exc:  # raised into the loop at the next tick, as without coalescing
            self._error = exc

    async def close(self) -> None:
        """The loop is shutting down: an ack still to be sent no longer matters."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher

    def band(self, tick: Tick) -> QuietBand:
        """The prices and times over which the loop, as it is now, would only observe."""
        loop = self.loop
        price = loop.last_price if loop.last_price is not None else tick.price
        empty = QuietBand(price, price, 0.0)
        if tick.market != loop.market or self._busy():
            return empty
        quiet = getattr(loop.strategy, "quiet", None)
        if quiet is None:  # a strategy that makes no promise: every trade is acked in turn
            return empty
        lo, hi, until = quiet(loop.strategy_view())
        if loop.inflight:
            until = min(until, loop.om.next_market_deadline())
        return QuietBand(lo, hi, until) if lo < hi else empty

    def _busy(self) -> list[asyncio.Task[Any]]:
        """In-flight tasks neither done nor parked on a resting limit order."""
        loop = self.loop
        return [t for iid, t in loop.inflight.items() if not t.done() and not self._parked(iid)]

    def _parked(self, intent_id: str) -> bool:
        """The intent's orders all rest on the book and its task waits with nothing to read."""
        orders = [o for o in self.loop.om.open_orders if o.intent.intent_id == intent_id]
        return bool(orders) and all(o.parked and not o.wake.is_set() for o in orders)

    async def settle(self) -> None:
        """Wait until every in-flight intent's task is done or parked (bounded: a stuck order
        must not hang the run; the simulator's ack timeout then paces the feed)."""
        aio = asyncio.get_running_loop()
        deadline = aio.time() + self.settle_timeout_s
        while True:
            busy = self._busy()
            if not busy:
                return
            remaining = deadline - aio.time()
            if remaining <= 0:
                log.warning("lockstep: %d order task(s) not settled after %.0fs", len(busy),
                            self.settle_timeout_s)
                return
            # a parked task is woken by a flag, not by finishing: poll briefly (lockstep only)
            await asyncio.wait(busy, timeout=min(remaining, self.poll_s))
