"""Following an order once it is out: its snapshots booked exactly once, waits, timeouts, cancels.

`OrderTracking` is one part of `trader.execution.order_manager.OrderManager` (a mixin over the
manager's exchange client, repository, ledger, settings and order indexes): every fill is
committed (`repo.record_fill`) BEFORE the ledger applies it; REST `get_order` is the truth,
myOrder events only wake the wait; a limit order's timeout counts in market time when the
manager has a market clock (the execution policy's deadline, `policy.limit_deadline_ms`), with a
wall-clock safety net for a stalled feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from trader.domain import Fill, OrderSnapshot
from trader.execution import policy
from trader.execution.balances import currencies_of
from trader.execution.crashpoints import crashpoint
from trader.execution.orders import ManagedOrder
from trader.execution.states import (
    REPO_STATE,
    Canceled,
    CancelRequested,
    Filled,
    InvalidOrderTransition,
    OrderStatus,
    event_for_snapshot,
)
from trader.upbit.errors import (
    FinalError,
    OrderNotFoundError,
    redact,
)
from trader.upbit.events import MyAssetEvent

log = logging.getLogger("trader.execution")

# Wall-clock safety net of a limit order timed by market time: a feed that stalls (a dropped
# WebSocket, a paused replay, a market without trades) must not leave the order resting forever.
# Generous on purpose: paper lockstep pauses the replay while orders are handled (wall time
# passes, market time does not), and live the market clock runs at wall speed anyway.
LIMIT_WALL_FACTOR = 5.0
LIMIT_WALL_MARGIN_S = 60.0
_NEVER = 1 << 62  # a market time no tick reaches (no market deadline pending)


def limit_wall_limit_s(
    timeout_s: float, factor: float = LIMIT_WALL_FACTOR, margin_s: float = LIMIT_WALL_MARGIN_S
) -> float:
    """Wall seconds after which a limit order timed by market time is cancelled anyway:
    max(factor × timeout_s, timeout_s + margin_s) — 600 s for 120 s, 62 s for 2 s."""
    timeout_s = max(timeout_s, 0.0)
    return max(factor * timeout_s, timeout_s + margin_s)


FillHook = Callable[[Fill, Any], None]



class OrderTracking:
    """The following half of the order manager (see the module docstring)."""

    async def wait_for_limit_order(self, order: ManagedOrder, timeout_s: float) -> ManagedOrder:
        """Wait until the order is final or `timeout_s` passes (then cancel it and wait for final).

        myOrder events (`notify`) wake the wait early; REST `get_order` is the truth, polled at
        `poll_interval_s` as the fallback when no event comes. With a market clock `timeout_s`
        is market time since the order went out (see `_wait_limit_market`).
        """
        if self.market_clock is not None:
            await self._wait_limit_market(order, timeout_s, self.market_clock)
            if not order.is_final:
                await self.cancel(order)
            return order
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        while not order.is_final:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await self._park(order, min(self.settings.poll_interval_s, remaining))
            await self.refresh(order)
        if not order.is_final:
            await self.cancel(order)
        return order

    async def _wait_limit_market(
        self, order: ManagedOrder, timeout_s: float, market_clock: Callable[[], int | None]
    ) -> None:
        """Wait until final, or market time reaches sent + timeout_s (the backtest's rule: timed
        out on the first trade at or after the deadline), or the wall safety net passes.

        The deadline counts from the market time when the order went out; an order sent before
        any tick counts from the first market time seen. Ticks wake the wait through
        `note_market_time` once the deadline is reached; every wake and poll re-reads the clock.
        """
        loop = asyncio.get_running_loop()
        cfg = self.settings
        wall_s = limit_wall_limit_s(timeout_s, cfg.limit_wall_factor, cfg.limit_wall_margin_s)
        wall_limit = loop.time() + wall_s
        start = order.sent_market_ms
        deadline: int | None = None
        try:
            while not order.is_final:
                now_ms = market_clock()
                if deadline is None:
                    origin = start if start is not None else now_ms
                    deadline = None if origin is None else policy.limit_deadline_ms(origin, timeout_s, 0.0)
                if deadline is not None:
                    if policy.timed_out(now_ms, deadline):
                        break
                    if order not in self._market_deadlines:  # (again) ask to be woken by a tick
                        self._market_deadlines[order] = deadline
                        self._next_market_deadline = min(self._next_market_deadline, deadline)
                remaining = wall_limit - loop.time()
                if remaining <= 0:
                    log.warning(
                        "limit order timed out by the wall clock (market time stalled) identifier=%s",
                        order.identifier,
                    )
                    break
                await self._park(order, min(self.settings.poll_interval_s, remaining))
                await self.refresh(order)
        finally:
            if self._market_deadlines.pop(order, None) is not None:
                self._next_market_deadline = min(self._market_deadlines.values(), default=_NEVER)

    # -- added by helper C (lockstep fast-forward, trader/sim/lockstep_sync.py): read-only accessor
    def next_market_deadline(self) -> int:
        """The earliest market time (ms) at which a waiting limit order times out (a huge value
        when none waits): the lockstep quiet band never reaches past it."""
        return self._next_market_deadline

    def note_market_time(self, ts_ms: int) -> None:
        """The market clock moved to `ts_ms` (called per tick: an int compare unless a limit
        order's market deadline is reached, whose wait is then woken at once)."""
        if ts_ms >= self._next_market_deadline:
            due = [o for o, d in self._market_deadlines.items() if d <= ts_ms]
            for o in due:
                del self._market_deadlines[o]
                o.wake.set()
            self._next_market_deadline = min(self._market_deadlines.values(), default=_NEVER)

    async def cancel(self, order: ManagedOrder) -> ManagedOrder:
        """Cancel and wait until the exchange reports the order final (cancel is asynchronous)."""
        if order.is_final:
            return order
        if order.fsm.can_apply(CancelRequested()):
            order.fsm.apply(CancelRequested(self.clock()))
            await self._mark(order)
        crashpoint("before_cancel")
        if order.uuid or order.identifier:
            try:
                await self._retrying(
                    lambda: self.exchange.cancel_order(
                        uuid=order.uuid, identifier=None if order.uuid else order.identifier
                    )
                )
            except OrderNotFoundError:
                pass
            except FinalError as exc:  # e.g. already done: the refresh below tells
                log.info("cancel refused identifier=%s error=%s", order.identifier, redact(str(exc)))
        crashpoint("after_cancel")
        await self._wait_final(order, self.settings.market_timeout_s)
        return order

    async def refresh(self, order: ManagedOrder) -> ManagedOrder:
        """Fetch the order (with its trades) and book whatever is new."""
        if order.is_final:
            return order
        try:
            if order.uuid:
                snap = await self._retrying(lambda: self.exchange.get_order(uuid=order.uuid))
            else:
                snap = await self._retrying(lambda: self.exchange.get_order(identifier=order.identifier))
        except OrderNotFoundError:
            return order
        await self.ingest(order, snap)
        return order

    def notify(self, event: Any) -> None:
        """A private-WS myOrder event (dict, SIMPLE or DEFAULT keys, or an object): wake its order.

        A myAsset event says balances changed: the cached ones are dropped and re-read in the
        background (never installed from the event itself, which may predate our last order)."""
        if isinstance(event, MyAssetEvent):
            if self.balances is not None:
                self.balances.invalidate(*(a[0] for a in event.assets))
                self.schedule_balance_refresh()
            return
        uid = _field(event, "uuid", "uid")
        ident = _field(event, "identifier", "id")
        order = (self._by_uuid.get(uid) if uid else None) or (
            self._by_identifier.get(ident) if ident else None
        )
        if order is not None:
            order.wake.set()

    async def pump(self, queue: asyncio.Queue[Any]) -> None:
        """Consume myOrder events from the private WebSocket forever (run as a task)."""
        while True:
            self.notify(await queue.get())

    async def ingest(self, order: ManagedOrder, snap: OrderSnapshot) -> None:
        """Book the new fills of a snapshot, then move the state machine and persist the state."""
        if snap.uuid and order.uuid != snap.uuid:
            order.uuid = snap.uuid
            self._by_uuid[snap.uuid] = order
        order.snapshot = snap
        for fill in snap.trades:
            if fill.trade_uuid not in order.seen_trades:
                await self._book_fill(order, fill)
        event = event_for_snapshot(snap, self.clock())
        executed = snap.executed_volume or Decimal(0)
        if event_final(event) and order.executed_volume < executed:
            # final report without (all) its trades (create/cancel responses carry none): fetch
            for _ in range(20):
                full = await self._retrying(lambda: self.exchange.get_order(uuid=snap.uuid))
                for fill in full.trades:
                    if fill.trade_uuid not in order.seen_trades:
                        await self._book_fill(order, fill)
                if order.executed_volume >= executed:
                    break
                await self._sleep(self.settings.market_poll_s)
        if order.is_final:
            return  # a late report of an order we already closed
        before = order.status
        try:
            order.fsm.apply(event)
        except InvalidOrderTransition:
            log.warning(
                "ignored stale report identifier=%s status=%s state=%s", order.identifier, before, snap.state
            )
            return
        if order.status is not before or order.is_final or order.fills:
            await self._mark(order)
        if order.is_final:
            crashpoint("after_mark_final")
            # balances are settled (a cancel unlocks, a fill moves them): re-read them now, off
            # the latency path, for the next sell
            if self.balances is not None:
                self.balances.invalidate(*currencies_of(order.market))
                self.schedule_balance_refresh()


    # ---- following ----------------------------------------------------------------------------
    async def _park(self, order: ManagedOrder, timeout_s: float) -> None:
        """Wait for the order's wake-up or the poll interval, marked `parked` meanwhile (a lockstep
        loop counts a resting order whose task waits with nothing to read as settled)."""
        order.parked = True
        try:
            await self._wait_wake(order, timeout_s)
        finally:
            order.parked = False

    async def _wait_wake(self, order: ManagedOrder, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(order.wake.wait(), timeout)
        order.wake.clear()

    async def _wait_final(self, order: ManagedOrder, timeout_s: float) -> None:
        """Poll (fast, then slower) until final; an order that never finalises stays in flight."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = self.settings.market_poll_s
        while not order.is_final:
            await self.refresh(order)
            if order.is_final:
                return
            if order.status is OrderStatus.IN_DOUBT:
                found = await self._resolve(order)
                if found is not None:
                    await self.ingest(order, found)
                continue
            if loop.time() > deadline:
                log.error("order not final after %.0fs identifier=%s", timeout_s, order.identifier)
                deadline = loop.time() + timeout_s
            await self._wait_wake(order, delay)
            delay = min(delay * 2, self.settings.poll_interval_s)

    async def _book_fill(self, order: ManagedOrder, fill: Fill) -> None:
        """Commit the fill, then apply it to the ledger (in that order: nothing lost on a kill)."""
        if fill.reason != order.intent.reason or fill.identifier != order.identifier:
            fill = replace(fill, reason=order.intent.reason, identifier=order.identifier)
        if self.balances is not None:
            self.balances.invalidate(*currencies_of(order.market))
        crashpoint("before_record_fill")
        new = await asyncio.to_thread(self.repo.record_fill, fill)
        crashpoint("after_record_fill")
        # a fill already stored is already in the ledger (applied then, or by the start-up
        # rebuild from stored fills): applying it again here would book it twice
        effect = self.portfolio.apply_fill(fill) if new else None
        crashpoint("after_apply_fill")
        order.seen_trades.add(fill.trade_uuid)
        order.fills.append(fill)
        pnl = effect.realized_pnl if effect is not None else None
        if pnl is not None:
            await asyncio.to_thread(self.repo.set_fill_pnl, fill.trade_uuid, pnl)
        log.info(
            "fill identifier=%s trade=%s side=%s price=%s volume=%s fee=%s",
            order.identifier,
            fill.trade_uuid,
            fill.side.value,
            fill.price,
            fill.volume,
            fill.fee,
        )
        if self.on_fill is not None and new:
            self.on_fill(fill, effect)

    async def _mark(self, order: ManagedOrder) -> None:
        avg = order.funds / order.executed_volume if order.executed_volume else None
        await asyncio.to_thread(
            self.repo.mark_order,
            order.identifier,
            state=REPO_STATE[order.status],
            uuid=order.uuid,
            executed_volume=order.executed_volume,
            paid_fee=order.fees,
            avg_price=avg,
            error=order.error,
            ts_ms=self.clock(),
        )



def event_final(event: object) -> bool:
    return isinstance(event, Filled | Canceled)


def _plain(value: Decimal | None) -> str:
    return "None" if value is None else f"{value.normalize():f}"


def _field(event: Any, *names: str) -> str | None:
    for name in names:
        value = event.get(name) if isinstance(event, dict) else getattr(event, name, None)
        if value:
            return str(value)
    return None
