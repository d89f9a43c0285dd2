"""Sending an order: recorded before it goes out, retried only where that cannot double it.

`OrderSubmission` is one part of `trader.execution.order_manager.OrderManager` (a mixin).
`RetryableError` → the same request with the same identifier, after `retry_after`;
`AmbiguousOrderError` → the order is IN_DOUBT: look it up by identifier, and only when it is
still not found after a grace period re-send with the SAME identifier (a duplicate is refused by
the exchange with `duplicated_identifier`, which means "it exists: look it up").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from trader.domain import OrderSnapshot, OrdType
from trader.execution.balances import currencies_of
from trader.execution.crashpoints import crashpoint
from trader.execution.orders import ManagedOrder
from trader.execution.retry import retrying
from trader.execution.states import (
    Ambiguous,
    OrderStatus,
    Rejected,
    Submitted,
)
from trader.upbit.errors import (
    AmbiguousOrderError,
    DuplicateIdentifierError,
    FinalError,
    InsufficientFundsError,
    OrderNotFoundError,
    RetryableError,
    redact,
)

log = logging.getLogger("trader.execution")


class OrderSubmission:
    """The sending half of the order manager (see the module docstring)."""

    # ---- sending ------------------------------------------------------------------------------
    async def _submit(self, order: ManagedOrder) -> None:
        """Record, then send with retries; the order ends ACCEPTED/FILLED/…, IN_DOUBT or REJECTED."""
        if order.status is OrderStatus.REJECTED:
            log.info(
                "order refused locally intent_id=%s reason=%s note=%s",
                order.intent.intent_id,
                order.intent.reason,
                order.note,
            )
            return
        intent = order.intent
        self._by_identifier[order.identifier] = order
        crashpoint("before_record_order")
        args = (
            order.identifier,
            intent.intent_id,
            intent.market,
            order.side.value,
            order.ord_type.value,
            order.price if order.ord_type is OrdType.LIMIT else None,
            order.volume,
            order.price if order.ord_type is OrdType.PRICE else None,
            intent.reason,
            self.clock(),
            intent.trigger_price,
        )
        order.record_path = await self.recorder.record(args)
        order.recorded_ns = time.perf_counter_ns()
        order.fsm.apply(Submitted(self.clock()))
        if self.balances is not None:
            # from now on the exchange's balances may move under this order: stop trusting ours
            self.balances.invalidate(*currencies_of(order.market))
        crashpoint("before_send")
        await self._send(order)

    async def _send(self, order: ManagedOrder) -> None:
        retries = 0
        while True:
            order.sent_ns = time.perf_counter_ns()
            if self.market_clock is not None:
                order.sent_market_ms = self.market_clock()
            try:
                snap = await self.exchange.create_order(
                    order.market,
                    order.side,
                    order.ord_type,
                    identifier=order.identifier,
                    price=order.price,
                    volume=order.volume,
                )
            except RetryableError as exc:
                # nothing happened on the exchange: same request, same identifier, a bit later
                retries += 1
                if retries > self.settings.max_send_retries:
                    await self._reject(order, f"gave up after {retries} retries: {exc}")
                    return
                await self._sleep(max(exc.retry_after, min(0.05 * 2**retries, 2.0)))
                order.fsm.apply(Submitted(self.clock()))
                continue
            except DuplicateIdentifierError:
                snap = await self._lookup_existing(order)
            except AmbiguousOrderError as exc:
                order.fsm.apply(Ambiguous(self.clock(), str(exc)))
                await self._mark(order)
                found = await self._resolve(order)
                if found is None:
                    log.warning("order not found after grace, re-sending identifier=%s", order.identifier)
                    order.fsm.apply(Submitted(self.clock()))
                    continue
                snap = found
            except InsufficientFundsError as exc:
                await self._reject(order, f"insufficient funds: {exc.name}")
                return
            except FinalError as exc:
                await self._reject(order, f"{exc.name}: {redact(exc.message)}")
                return
            self.sent_log.append((order.tick_ns, order.sent_ns))
            crashpoint("after_send")
            await self.ingest(order, snap)
            log.info(
                "order sent intent_id=%s identifier=%s side=%s ord_type=%s price=%s volume=%s"
                " uuid=%s status=%s",
                order.intent.intent_id,
                order.identifier,
                order.side.value,
                order.ord_type.value,
                _plain(order.price),
                _plain(order.volume),
                order.uuid,
                order.status.value,
            )
            return

    async def _lookup_existing(self, order: ManagedOrder) -> OrderSnapshot:
        """The exchange says the identifier exists: it must be found (retry until it is)."""
        delay = self.settings.market_poll_s
        while True:
            try:
                return await self._retrying(lambda: self.exchange.get_order(identifier=order.identifier))
            except OrderNotFoundError:
                await self._sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _resolve(self, order: ManagedOrder) -> OrderSnapshot | None:
        """Look an IN_DOUBT order up by identifier; None when absent for the whole grace period."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ambiguous_grace_s
        delay = self.settings.market_poll_s
        while True:
            try:
                return await self.exchange.get_order(identifier=order.identifier)
            except OrderNotFoundError:
                if loop.time() >= deadline:
                    return None
            except (RetryableError, AmbiguousOrderError) as exc:
                # still can't tell: stay in doubt and keep asking (never re-send blindly)
                log.info("order lookup failed identifier=%s error=%s", order.identifier, redact(str(exc)))
            await self._sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _reject(self, order: ManagedOrder, reason: str) -> None:
        order.error = reason
        order.fsm.apply(Rejected(self.clock(), reason))
        await self._mark(order)
        log.warning(
            "order rejected intent_id=%s identifier=%s reason=%s",
            order.intent.intent_id,
            order.identifier,
            reason,
        )

    async def _retrying(self, call: Callable[[], Awaitable[Any]], attempts: int = 12) -> Any:
        return await retrying(call, self._sleep, attempts)



def _plain(value: Decimal | None) -> str:
    return "None" if value is None else f"{value.normalize():f}"
