"""One contract for every exchange client (in the spirit of Hummingbot's shared connector tests).

Each test runs one scenario against a venue (`conftest.Venue`: the REST client over the SDK, the
same with direct orders — both against the simulator over loopback — and the in-process client)
and asserts on values. On a loopback venue the scenario then runs again on a fresh in-process
venue, and every answer seen (orders with their fills, balances, typed errors) must be equal, uuids
aside: the backtest's client and the paper/live client answer alike, fill for fill.
"""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest

from tests.contract.conftest import KRW, Venue, in_process_venue
from trader.domain import Fill, OrderSnapshot, OrderState, OrdType, Side
from trader.sim.inprocess import InProcessClient
from trader.upbit.client import Balance
from trader.upbit.errors import (
    DuplicateIdentifierError,
    FinalError,
    InsufficientFundsError,
    OrderNotFoundError,
    UpbitError,
)

D = Decimal
RATE = D("0.0005")
Seen = list[Any]
Scenario = Callable[[Venue, Seen], Awaitable[None]]


def floor8(x: Decimal) -> Decimal:
    return x.quantize(D("0.00000001"), rounding=ROUND_DOWN)


def norm(x: Any) -> Any:
    """What must be equal across clients: everything but the exchange's random uuids."""
    if isinstance(x, OrderSnapshot):
        return replace(x, uuid="-", trades=tuple(norm(f) for f in x.trades))
    if isinstance(x, Fill):
        return replace(x, trade_uuid="-", order_uuid="-")
    if isinstance(x, UpbitError):
        return (type(x).__name__, x.status, x.name, x.message)
    if isinstance(x, dict):
        return {k: norm(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [norm(v) for v in x]
    return x


async def same_everywhere(venue: Venue, scenario: Scenario) -> None:
    seen: Seen = []
    await scenario(venue, seen)
    if venue.kind != "inprocess":
        reference: Seen = []
        await scenario(in_process_venue(), reference)
        assert norm(seen) == norm(reference)


async def refused(seen: Seen, kind: type[UpbitError], call: Awaitable[Any]) -> UpbitError:
    with pytest.raises(kind) as info:
        await call
    seen.append(info.value)
    return info.value


async def place(
    v: Venue, seen: Seen, side: Side, ord_type: OrdType, ident: str, **kw: Decimal
) -> OrderSnapshot:
    order = await v.client.create_order(v.market, side, ord_type, identifier=ident, **kw)
    seen.append(order)
    return order


async def look(v: Venue, seen: Seen, order: OrderSnapshot) -> OrderSnapshot:
    got = await v.client.get_order(uuid=order.uuid)
    assert await v.client.get_order(identifier=order.identifier) == got
    seen.append(got)
    return got


async def balances(v: Venue, seen: Seen) -> dict[str, Balance]:
    accounts = await v.client.accounts()
    seen.append(accounts)
    return accounts


def best(v: Venue) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """Best ask price/size and best bid price/size of the synthetic book, read before an order."""
    book = v.exchange.book(v.market)
    (ask, ask_size), (bid, bid_size) = book.asks[0], book.bids[0]
    return ask, ask_size, bid, bid_size


# ---------------------------------------------------------------------------------------- accounts

async def accounts_rows(v: Venue, seen: Seen) -> None:
    assert await balances(v, seen) == {"KRW": Balance("KRW", KRW, D(0), D(0))}
    v.fund("ETH", D("0.5"), D(2_900_000))
    assert (await balances(v, seen))["ETH"] == Balance("ETH", D("0.5"), D(0), D(2_900_000))
    await place(v, seen, Side.ASK, OrdType.LIMIT, "acc-ask", price=D(3_100_000), volume=D("0.1"))
    assert await balances(v, seen) == {
        "KRW": Balance("KRW", KRW, D(0), D(0)),
        "ETH": Balance("ETH", D("0.4"), D("0.1"), D(2_900_000)),
    }


async def test_accounts_balance_locked_avg_buy_price(venue: Venue) -> None:
    await same_everywhere(venue, accounts_rows)


# ---------------------------------------------------------------------------------------- market orders

async def market_buy_by_price(v: Venue, seen: Seen) -> None:
    budget = D(10_000)
    ask, ask_size, _, _ = best(v)
    volume = floor8(budget / ask)
    assert ask_size >= volume  # one level serves it
    funds, fee = ask * volume, ask * volume * RATE
    accepted = await place(v, seen, Side.BID, OrdType.PRICE, "buy-price", price=budget)
    assert (accepted.state, accepted.price, accepted.volume, accepted.executed_volume) == (
        OrderState.WAIT, budget, None, D(0))
    assert accepted.locked == budget * (1 + RATE) and accepted.identifier == "buy-price"
    got = await look(v, seen, accepted)
    # Upbit's documented outcome: the budget's last fraction of a unit cannot be bought (dust),
    # so the order ends `cancel` with what it executed
    assert budget - funds == D("0.01") and got.state is OrderState.CANCEL
    assert (got.executed_volume, got.paid_fee, got.trades_count, got.avg_fill_price) == (volume, fee, 1, ask)
    (fill,) = got.trades
    assert (fill.price, fill.volume, fill.funds, fill.fee) == (ask, volume, funds, fee)
    assert (fill.side, fill.identifier, fill.order_uuid, fill.ts_ms) == (
        Side.BID, "buy-price", accepted.uuid, v.trade_ts[-1])
    assert await balances(v, seen) == {
        "KRW": Balance("KRW", KRW - funds - fee, D(0), D(0)),
        "ETH": Balance("ETH", volume, D(0), ask),  # Upbit's avg_buy_price leaves fees out
    }


async def test_market_buy_by_price_ends_cancel_with_dust(venue: Venue) -> None:
    await same_everywhere(venue, market_buy_by_price)


async def market_sell(v: Venue, seen: Seen) -> None:
    v.fund("ETH", D("0.01"), D(3_000_000))
    _, _, bid, bid_size = best(v)
    assert bid_size >= D("0.01")
    accepted = await place(v, seen, Side.ASK, OrdType.MARKET, "sell-market", volume=D("0.01"))
    assert (accepted.state, accepted.volume, accepted.price) == (OrderState.WAIT, D("0.01"), None)
    got = await look(v, seen, accepted)
    funds = bid * D("0.01")
    assert (got.state, got.executed_volume, got.remaining_volume) == (OrderState.DONE, D("0.01"), D(0))
    assert [(f.price, f.volume, f.funds, f.fee) for f in got.trades] == [
        (bid, D("0.01"), funds, funds * RATE)]
    assert got.avg_fill_price == bid and got.paid_fee == funds * RATE
    assert await balances(v, seen) == {"KRW": Balance("KRW", KRW + funds - funds * RATE, D(0), D(0))}


async def test_market_sell(venue: Venue) -> None:
    await same_everywhere(venue, market_sell)


# ---------------------------------------------------------------------------------------- resting limits

async def limits_rest_and_lock(v: Venue, seen: Seen) -> None:
    v.fund("ETH", D("0.01"), D(3_000_000))
    bid = await place(v, seen, Side.BID, OrdType.LIMIT, "rest-bid", price=D(2_900_000), volume=D("0.002"))
    ask = await place(v, seen, Side.ASK, OrdType.LIMIT, "rest-ask", price=D(3_100_000), volume=D("0.002"))
    lock = D(5800) * (1 + RATE)  # price × volume plus the fee reserve
    assert (bid.state, bid.locked, bid.remaining_volume) == (OrderState.WAIT, lock, D("0.002"))
    assert (ask.state, ask.locked, ask.remaining_volume) == (OrderState.WAIT, D("0.002"), D("0.002"))
    for order in (bid, ask):
        got = await look(v, seen, order)
        assert (got.state, got.executed_volume, got.trades) == (OrderState.WAIT, D(0), ())
    assert await balances(v, seen) == {
        "KRW": Balance("KRW", KRW - lock, lock, D(0)),
        "ETH": Balance("ETH", D("0.008"), D("0.002"), D(3_000_000)),
    }
    opened = await v.client.open_orders(v.market)
    seen.append(opened)
    assert [o.identifier for o in opened] == ["rest-ask", "rest-bid"]  # newest first


async def test_limit_bid_and_ask_rest_with_locked_funds(venue: Venue) -> None:
    await same_everywhere(venue, limits_rest_and_lock)


async def cancel_unlocks(v: Venue, seen: Seen) -> None:
    order = await place(v, seen, Side.BID, OrdType.LIMIT, "to-cancel", price=D(2_900_000), volume=D("0.002"))
    answer = await v.client.cancel_order(uuid=order.uuid)
    seen.append(answer)
    assert answer.uuid == order.uuid and answer.state is OrderState.WAIT  # as accepted, like Upbit
    got = await look(v, seen, order)
    assert (got.state, got.executed_volume, got.trades) == (OrderState.CANCEL, D(0), ())
    assert await balances(v, seen) == {"KRW": Balance("KRW", KRW, D(0), D(0))}
    assert await v.client.open_orders(v.market) == []
    # by identifier too
    again = await place(v, seen, Side.BID, OrdType.LIMIT, "to-cancel-2", price=D(2_900_000),
                        volume=D("0.002"))
    seen.append(await v.client.cancel_order(identifier="to-cancel-2"))
    assert (await look(v, seen, again)).state is OrderState.CANCEL


async def test_cancel_ends_cancel_and_unlocks_funds(venue: Venue) -> None:
    await same_everywhere(venue, cancel_unlocks)


async def resting_filled_later(v: Venue, seen: Seen) -> None:
    v.fund("ETH", D("0.01"), D(3_000_000))
    bid = await place(v, seen, Side.BID, OrdType.LIMIT, "fill-bid", price=D(2_990_000), volume=D("0.002"))
    ask = await place(v, seen, Side.ASK, OrdType.LIMIT, "fill-ask", price=D(3_050_000), volume=D("0.002"))
    (down,) = v.trade([(2_990_000.0, 1.0)])  # prints through the bid: it fills as maker, at its price
    got = await look(v, seen, bid)
    assert (got.state, got.executed_volume, got.remaining_volume) == (OrderState.DONE, D("0.002"), D(0))
    assert [(f.price, f.volume, f.funds, f.fee, f.ts_ms) for f in got.trades] == [
        (D(2_990_000), D("0.002"), D(5980), D("2.99"), down)]
    assert (await look(v, seen, ask)).state is OrderState.WAIT
    (up,) = v.trade([(3_060_000.0, 1.0)])  # through the ask: filled at the ask's own price
    got = await look(v, seen, ask)
    assert got.state is OrderState.DONE and got.avg_fill_price == D(3_050_000)
    assert [(f.volume, f.funds, f.ts_ms) for f in got.trades] == [(D("0.002"), D(6100), up)]
    assert await balances(v, seen) == {
        "KRW": Balance("KRW", KRW - D(5980) - D("2.99") + D(6100) - D("3.05"), D(0), D(0)),
        "ETH": Balance("ETH", D("0.01"), D(0), (D("0.01") * 3_000_000 + D("0.002") * 2_990_000) / D("0.012")),
    }


async def test_resting_limit_filled_by_a_later_trade(venue: Venue) -> None:
    await same_everywhere(venue, resting_filled_later)


async def partial_fill(v: Venue, seen: Seen) -> None:
    order = await place(v, seen, Side.BID, OrdType.LIMIT, "partial", price=D(2_990_000), volume=D("0.005"))
    lock = D(2_990_000) * D("0.005") * (1 + RATE)
    first, = v.trade([(2_990_000.0, 0.002)])  # the trade's volume caps the fill
    got = await look(v, seen, order)
    assert (got.state, got.executed_volume, got.remaining_volume, got.trades_count) == (
        OrderState.WAIT, D("0.002"), D("0.003"), 1)
    spent = D(5980) * (1 + RATE)
    assert got.locked == lock - spent
    assert await balances(v, seen) == {
        "KRW": Balance("KRW", KRW - lock, lock - spent, D(0)),
        "ETH": Balance("ETH", D("0.002"), D(0), D(2_990_000)),
    }
    second, = v.trade([(2_989_000.0, 0.001)])
    got = await look(v, seen, order)
    assert [(f.price, f.volume, f.ts_ms) for f in got.trades] == [
        (D(2_990_000), D("0.002"), first), (D(2_990_000), D("0.001"), second)]
    assert got.avg_fill_price == D(2_990_000) and got.paid_fee == D(8970) * RATE
    await v.client.cancel_order(uuid=order.uuid)
    got = await look(v, seen, order)
    assert (got.state, got.executed_volume) == (OrderState.CANCEL, D("0.003"))
    assert await balances(v, seen) == {
        "KRW": Balance("KRW", KRW - D(8970) * (1 + RATE), D(0), D(0)),
        "ETH": Balance("ETH", D("0.003"), D(0), D(2_990_000)),
    }


async def test_partial_fill_then_cancel(venue: Venue) -> None:
    await same_everywhere(venue, partial_fill)


# ---------------------------------------------------------------------------------------- refusals

async def duplicate_identifier(v: Venue, seen: Seen) -> None:
    first = await place(v, seen, Side.BID, OrdType.LIMIT, "twice", price=D(2_900_000), volume=D("0.002"))
    err = await refused(seen, DuplicateIdentifierError, v.client.create_order(
        v.market, Side.BID, OrdType.LIMIT, identifier="twice", price=D(2_800_000), volume=D("0.002")))
    assert (err.status, err.name) == (400, "duplicated_identifier")
    assert [o.uuid for o in await v.client.open_orders(v.market)] == [first.uuid]
    assert (await balances(v, seen))["KRW"].locked == D(5800) * (1 + RATE)


async def test_duplicate_identifier_is_refused(venue: Venue) -> None:
    await same_everywhere(venue, duplicate_identifier)


async def insufficient_funds(v: Venue, seen: Seen) -> None:
    err = await refused(seen, InsufficientFundsError, v.client.create_order(
        v.market, Side.BID, OrdType.PRICE, identifier="too-much", price=D(2_000_000)))
    assert (err.status, err.name) == (400, "insufficient_funds_bid")
    err = await refused(seen, InsufficientFundsError, v.client.create_order(
        v.market, Side.ASK, OrdType.MARKET, identifier="no-coin", volume=D(1)))
    assert (err.status, err.name) == (400, "insufficient_funds_ask")
    assert await balances(v, seen) == {"KRW": Balance("KRW", KRW, D(0), D(0))}
    assert await v.client.open_orders() == [] and await v.client.closed_orders() == []


async def test_insufficient_funds_is_refused(venue: Venue) -> None:
    await same_everywhere(venue, insufficient_funds)


async def below_minimum(v: Venue, seen: Seen) -> None:
    v.fund("ETH", D("0.01"), D(3_000_000))
    err = await refused(seen, FinalError, v.client.create_order(
        v.market, Side.BID, OrdType.PRICE, identifier="small-bid", price=D(4_999)))
    assert (type(err), err.status, err.name) == (FinalError, 400, "under_min_total_bid")
    err = await refused(seen, FinalError, v.client.create_order(
        v.market, Side.ASK, OrdType.LIMIT, identifier="small-ask", price=D(3_000_000), volume=D("0.001")))
    assert (type(err), err.status, err.name) == (FinalError, 400, "under_min_total_ask")
    assert await v.client.open_orders() == [] and await v.client.closed_orders() == []


async def test_below_the_5000_krw_minimum_is_refused(venue: Venue) -> None:
    await same_everywhere(venue, below_minimum)


async def unknown_order(v: Venue, seen: Seen) -> None:
    ghost = str(uuid_mod.UUID(int=7))
    for call in (v.client.get_order(uuid=ghost), v.client.get_order(identifier="never-sent"),
                 v.client.cancel_order(uuid=ghost), v.client.cancel_order(identifier="never-sent")):
        err = await refused(seen, OrderNotFoundError, call)
        assert (err.status, err.name) == (404, "order_not_found")


async def test_unknown_order_is_not_found(venue: Venue) -> None:
    await same_everywhere(venue, unknown_order)


async def cancel_done(v: Venue, seen: Seen) -> None:
    bought = await place(v, seen, Side.BID, OrdType.PRICE, "done-buy", price=D(10_000))
    rest = await place(v, seen, Side.BID, OrdType.LIMIT, "done-limit", price=D(2_990_000), volume=D("0.002"))
    v.trade([(2_990_000.0, 1.0)])
    for order, final in ((bought, OrderState.CANCEL), (rest, OrderState.DONE)):
        err = await refused(seen, OrderNotFoundError, v.client.cancel_order(uuid=order.uuid))
        assert (err.status, err.name) == (404, "order_not_found")
        assert (await look(v, seen, order)).state is final  # untouched


async def test_cancel_of_a_final_order_is_refused(venue: Venue) -> None:
    await same_everywhere(venue, cancel_done)


# ---------------------------------------------------------------------------------------- listings

async def listings(v: Venue, seen: Seen) -> None:
    await place(v, seen, Side.BID, OrdType.PRICE, "l-buy", price=D(10_000))
    a = await place(v, seen, Side.BID, OrdType.LIMIT, "l-a", price=D(2_900_000), volume=D("0.002"))
    await place(v, seen, Side.BID, OrdType.LIMIT, "l-b", price=D(2_800_000), volume=D("0.002"))
    await place(v, seen, Side.BID, OrdType.LIMIT, "l-c", price=D(2_700_000), volume=D("0.002"))
    await v.client.cancel_order(uuid=a.uuid)
    opened = await v.client.open_orders(v.market)
    closed = await v.client.closed_orders(v.market)
    seen.extend([opened, closed, await v.client.open_orders(), await v.client.closed_orders(limit=1)])
    assert [(o.identifier, o.state) for o in opened] == [("l-c", OrderState.WAIT), ("l-b", OrderState.WAIT)]
    assert [(o.identifier, o.state) for o in closed] == [("l-a", OrderState.CANCEL),
                                                         ("l-buy", OrderState.CANCEL)]
    assert [o.identifier for o in seen[-1]] == ["l-a"]
    assert all(o.trades == () for o in opened + closed)  # listings carry no trades, as Upbit's
    assert closed[1].executed_volume > 0 and closed[1].trades_count == 1
    assert await v.client.open_orders("KRW-BTC") == [] and await v.client.closed_orders("KRW-BTC") == []


async def test_open_and_closed_orders(venue: Venue) -> None:
    await same_everywhere(venue, listings)


# ---------------------------------------------------------------------------------------- in-process only

async def test_in_process_sync_core_is_what_the_protocol_returns() -> None:
    v = in_process_venue()
    client = v.client
    assert isinstance(client, InProcessClient)
    placed = client.create_order_now(v.market, Side.BID, OrdType.PRICE, identifier="sync", price=D(10_000))
    assert await client.get_order(uuid=placed.uuid) == client.get_order_now(identifier="sync")
    assert await client.accounts() == client.accounts_now()
    assert await client.closed_orders() == client.closed_orders_now() != []
    with pytest.raises(ValueError, match="identifier is required"):
        client.create_order_now(v.market, Side.BID, OrdType.PRICE, identifier="", price=D(10_000))
    with pytest.raises(ValueError, match="uuid or identifier"):
        client.get_order_now()
    with pytest.raises(FinalError) as info:
        client.closed_orders_now(limit=1001)
    assert info.value.name == "invalid_parameter"


def test_in_process_orders_carry_the_clock_time() -> None:
    v = in_process_venue()
    ex = v.exchange
    times = iter([v.trade_ts[-1] + 500, v.trade_ts[-1] + 900])
    client = InProcessClient(ex, clock=lambda: next(times))
    order = client.create_order_now(v.market, Side.BID, OrdType.LIMIT, identifier="t", price=D(2_900_000),
                                    volume=D("0.002"))
    assert order.created_at == "2026-01-01T09:00:02+09:00"  # ms dropped, as Upbit renders it
    client.cancel_order_now(uuid=order.uuid)
    (o,) = ex.orders(states=("cancel",))
    assert (o.created_ms, o.done_ms) == (v.trade_ts[-1] + 500, v.trade_ts[-1] + 900)
