"""Order state machine: the transition table, illegal transitions, and exchange reports → events."""

from decimal import Decimal as D

import pytest

from trader.domain import OrderSnapshot, OrderState, OrdType, Side
from trader.execution.states import (
    FINAL_STATUSES,
    TRANSITIONS,
    Accepted,
    Ambiguous,
    Canceled,
    CancelRequested,
    Filled,
    InvalidOrderTransition,
    OrderFSM,
    OrderStatus,
    PartiallyFilled,
    Rejected,
    Submitted,
    event_for_snapshot,
)

S = OrderStatus


def run(*events):
    fsm = OrderFSM()
    for e in events:
        fsm.apply(e)
    return fsm


def test_limit_order_lifecycle_with_partial_fills_and_cancel():
    fsm = run(
        Submitted(), Accepted(), PartiallyFilled(executed_volume=D(1)), PartiallyFilled(executed_volume=D(2))
    )
    assert fsm.status is S.PARTIALLY_FILLED
    fsm.apply(CancelRequested())
    fsm.apply(Accepted())  # Upbit's cancel is asynchronous: the order still reads `wait`
    assert fsm.status is S.PENDING_CANCEL
    fsm.apply(Canceled(executed_volume=D(2)))
    assert fsm.status is S.CANCELED and fsm.is_final
    assert len(fsm.history) == 7


def test_ambiguous_order_stays_in_doubt_until_resolved_or_resent():
    fsm = run(Submitted(), Ambiguous(cause="timeout"))
    assert fsm.status is S.IN_DOUBT and not fsm.is_final
    fsm.apply(Ambiguous(cause="still unknown"))
    fsm.apply(Submitted())  # not found after the grace: re-send (same identifier)
    fsm.apply(Filled(executed_volume=D(1)))
    assert fsm.status is S.FILLED


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ((), Filled()),  # never sent
        ((), Accepted()),
        ((Submitted(), Filled()), Accepted()),  # final is final
        ((Submitted(), Filled()), Filled()),
        ((Submitted(), Rejected()), Submitted()),
        ((Submitted(), Canceled()), Filled()),
        ((Submitted(), Accepted()), Submitted()),  # an accepted order is never re-sent
        ((Submitted(), Accepted()), Ambiguous()),
        ((Submitted(), Ambiguous()), CancelRequested()),  # cannot cancel what we cannot see
        ((Submitted(), Accepted(), CancelRequested()), Submitted()),
    ],
)
def test_illegal_transitions_raise_and_leave_status_unchanged(path, bad):
    fsm = run(*path)
    before = fsm.status
    with pytest.raises(InvalidOrderTransition):
        fsm.apply(bad)
    assert fsm.status is before
    assert not fsm.can_apply(bad)


def test_final_statuses_have_no_outgoing_transitions():
    for (src, _event), _dst in TRANSITIONS.items():
        assert src not in FINAL_STATUSES


def test_every_status_is_reachable():
    reached = {S.INITIALIZED} | set(TRANSITIONS.values())
    assert reached == set(OrderStatus)


def snap(state, ord_type=OrdType.LIMIT, executed="0"):
    return OrderSnapshot(
        uuid="u", market="KRW-BTC", side=Side.BID, ord_type=ord_type, state=state, price=D(1), volume=D(1),
        remaining_volume=D(1), executed_volume=D(executed), paid_fee=D(0), locked=D(0), created_at="",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("state", "ord_type", "executed", "event"),
    [
        (OrderState.WAIT, OrdType.LIMIT, "0", Accepted),
        (OrderState.WATCH, OrdType.LIMIT, "0", Accepted),
        (OrderState.WAIT, OrdType.LIMIT, "0.5", PartiallyFilled),
        (OrderState.DONE, OrdType.LIMIT, "1", Filled),
        (OrderState.CANCEL, OrdType.LIMIT, "0.5", Canceled),  # partly filled then cancelled
        (OrderState.CANCEL, OrdType.PRICE, "0.00003736", Filled),  # market buy: cancel + dust = filled
        (OrderState.CANCEL, OrdType.PRICE, "0", Canceled),
    ],
)
def test_event_for_snapshot(state, ord_type, executed, event):
    assert type(event_for_snapshot(snap(state, ord_type, executed))) is event
