"""Order state machine: an explicit transition table driven by typed events (NautilusTrader style).

An order lives locally from the moment the intent becomes an order until the exchange says it is
final. Every change of status goes through `OrderFSM.apply(event)`, which looks the pair
(status, event type) up in `TRANSITIONS`; a pair that is not in the table raises
`InvalidOrderTransition` instead of silently corrupting the order. `IN_DOUBT` is the status of an
order whose request may or may not have reached the exchange (timeout, 5xx): it stays in flight
until a lookup by identifier resolves it, and is never blindly re-sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from trader.domain import OrderSnapshot, OrderState, OrdType


class OrderStatus(StrEnum):
    """Local order status (stored as `orders.state` by the repository)."""

    INITIALIZED = "initialized"  # built from an intent, not yet recorded
    SUBMITTED = "submitted"  # recorded in the database; the request is going out
    IN_DOUBT = "in_doubt"  # request outcome unknown: resolve by identifier before anything else
    ACCEPTED = "accepted"  # the exchange has it (wait/watch), nothing filled yet
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"  # cancel requested, exchange not final yet
    FILLED = "filled"  # final: done (or a market buy cancelled with its dust, executed > 0)
    CANCELED = "canceled"  # final: cancelled, possibly with some executed volume
    REJECTED = "rejected"  # final: never existed on the exchange (refused, dust, not found)


FINAL_STATUSES: frozenset[OrderStatus] = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED}
)
# statuses that reconcile must look up on the exchange after a restart
UNRESOLVED_STATUSES: frozenset[OrderStatus] = frozenset(OrderStatus) - FINAL_STATUSES

# how a status is stored (`trader.storage.repository.LocalOrderState` values)
REPO_STATE: dict[OrderStatus, str] = {
    OrderStatus.INITIALIZED: "recorded",
    OrderStatus.SUBMITTED: "submitted",
    OrderStatus.IN_DOUBT: "ambiguous",
    OrderStatus.ACCEPTED: "wait",
    OrderStatus.PARTIALLY_FILLED: "wait",
    OrderStatus.PENDING_CANCEL: "wait",
    OrderStatus.FILLED: "done",
    OrderStatus.CANCELED: "cancel",
    OrderStatus.REJECTED: "rejected",
}


# ---- events -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OrderEvent:
    """Base of the typed events; `ts_ms` is when it was observed."""

    ts_ms: int = 0


@dataclass(frozen=True, slots=True)
class Submitted(OrderEvent):
    """Recorded and about to be sent (also: re-sent with the same identifier after a lookup)."""


@dataclass(frozen=True, slots=True)
class Ambiguous(OrderEvent):
    """The request may have reached the exchange; outcome unknown."""

    cause: str = ""


@dataclass(frozen=True, slots=True)
class Rejected(OrderEvent):
    """Refused by the exchange or by our own sizing, or not found after a grace period."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Accepted(OrderEvent):
    """The exchange reports the order open with nothing executed."""


@dataclass(frozen=True, slots=True)
class PartiallyFilled(OrderEvent):
    executed_volume: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Filled(OrderEvent):
    executed_volume: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class CancelRequested(OrderEvent):
    pass


@dataclass(frozen=True, slots=True)
class Canceled(OrderEvent):
    executed_volume: Decimal = Decimal(0)


S = OrderStatus
# (from status, event type) -> to status. Anything else is illegal.
TRANSITIONS: dict[tuple[OrderStatus, type[OrderEvent]], OrderStatus] = {
    (S.INITIALIZED, Submitted): S.SUBMITTED,
    (S.INITIALIZED, Rejected): S.REJECTED,  # refused locally (dust, no free balance)
    (S.SUBMITTED, Accepted): S.ACCEPTED,
    (S.SUBMITTED, PartiallyFilled): S.PARTIALLY_FILLED,
    (S.SUBMITTED, Filled): S.FILLED,
    (S.SUBMITTED, Canceled): S.CANCELED,
    (S.SUBMITTED, Rejected): S.REJECTED,
    (S.SUBMITTED, Ambiguous): S.IN_DOUBT,
    (S.SUBMITTED, Submitted): S.SUBMITTED,  # retry of a request that surely never went out
    (S.IN_DOUBT, Accepted): S.ACCEPTED,
    (S.IN_DOUBT, PartiallyFilled): S.PARTIALLY_FILLED,
    (S.IN_DOUBT, Filled): S.FILLED,
    (S.IN_DOUBT, Canceled): S.CANCELED,
    (S.IN_DOUBT, Submitted): S.SUBMITTED,  # not found after the grace: re-send, same identifier
    (S.IN_DOUBT, Rejected): S.REJECTED,  # not found at restart: it never reached the exchange
    (S.IN_DOUBT, Ambiguous): S.IN_DOUBT,
    (S.ACCEPTED, Accepted): S.ACCEPTED,
    (S.ACCEPTED, PartiallyFilled): S.PARTIALLY_FILLED,
    (S.ACCEPTED, Filled): S.FILLED,
    (S.ACCEPTED, CancelRequested): S.PENDING_CANCEL,
    (S.ACCEPTED, Canceled): S.CANCELED,
    (S.PARTIALLY_FILLED, PartiallyFilled): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, Filled): S.FILLED,
    (S.PARTIALLY_FILLED, CancelRequested): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, Canceled): S.CANCELED,
    (S.PENDING_CANCEL, Accepted): S.PENDING_CANCEL,  # the cancel is asynchronous on Upbit
    (S.PENDING_CANCEL, PartiallyFilled): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, CancelRequested): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, Filled): S.FILLED,  # filled before the cancel took effect
    (S.PENDING_CANCEL, Canceled): S.CANCELED,
}


class InvalidOrderTransition(Exception):
    """An event arrived that the order's current status cannot accept."""

    def __init__(self, status: OrderStatus, event: OrderEvent) -> None:
        super().__init__(f"illegal order transition: {status.value} + {type(event).__name__}")
        self.status = status
        self.event = event


@dataclass
class OrderFSM:
    """Current status plus the history of applied events."""

    status: OrderStatus = OrderStatus.INITIALIZED
    history: list[OrderEvent] = field(default_factory=list)

    def can_apply(self, event: OrderEvent) -> bool:
        return (self.status, type(event)) in TRANSITIONS

    def apply(self, event: OrderEvent) -> OrderStatus:
        nxt = TRANSITIONS.get((self.status, type(event)))
        if nxt is None:
            raise InvalidOrderTransition(self.status, event)
        self.status = nxt
        self.history.append(event)
        return nxt

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def event_for_snapshot(snap: OrderSnapshot, ts_ms: int = 0) -> OrderEvent:
    """The event an exchange report of the order amounts to.

    A market buy (`ord_type=price`) ending `cancel` with executed volume is Upbit's normal way
    of finishing (the unspendable dust is cancelled): it counts as filled.
    """
    executed = snap.executed_volume or Decimal(0)
    if snap.state is OrderState.DONE:
        return Filled(ts_ms, executed)
    if snap.state is OrderState.CANCEL:
        if snap.ord_type is OrdType.PRICE and executed > 0:
            return Filled(ts_ms, executed)
        return Canceled(ts_ms, executed)
    if executed > 0:
        return PartiallyFilled(ts_ms, executed)
    return Accepted(ts_ms)
