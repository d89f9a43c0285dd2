"""The exchange interface the execution layer talks to (Upbit REST, the simulator, or in-process).

`trader.upbit.rest.UpbitRestClient` implements it over HTTP with the official SDK; a backtest
may implement it in-process. Results are domain types with `Decimal` numbers; failures are the
typed errors of `trader.upbit.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from trader.domain import OrderSnapshot, OrdType, Side

# Who sends an order may set this to a callback; an exchange client calls it once the order
# request has been written to its connection. The trading loop holds the next tick until then:
# httpx/httpcore's send path suspends several times (pool and connection locks, the socket write),
# and at each suspension one more tick of a buffered burst would run first — measured, that put
# 1.5 ms between the SDK handing the request over and its bytes reaching the socket. A ContextVar,
# so concurrent order tasks each reach their own callback; a client that never calls it only loses
# that precision (the loop stops waiting when the order task ends, or after a short bound).
order_request_out: ContextVar[Callable[[], None] | None] = ContextVar("order_request_out", default=None)


@dataclass(frozen=True, slots=True)
class Balance:
    """One `/v1/accounts` row."""

    currency: str
    balance: Decimal
    locked: Decimal
    avg_buy_price: Decimal

    @property
    def total(self) -> Decimal:
        return self.balance + self.locked


class ExchangeClient(Protocol):
    """What execution needs from an exchange. All calls are async and never block the loop."""

    async def accounts(self) -> dict[str, Balance]: ...

    async def create_order(
        self,
        market: str,
        side: Side,
        ord_type: OrdType,
        *,
        identifier: str,
        price: Decimal | None = None,
        volume: Decimal | None = None,
        time_in_force: str | None = None,
    ) -> OrderSnapshot: ...

    async def get_order(self, *, uuid: str | None = None, identifier: str | None = None) -> OrderSnapshot:
        """The order with its `trades` (fills)."""
        ...

    async def cancel_order(
        self, *, uuid: str | None = None, identifier: str | None = None
    ) -> OrderSnapshot: ...

    async def open_orders(self, market: str | None = None) -> list[OrderSnapshot]: ...

    async def closed_orders(self, market: str | None = None, *, limit: int = 100) -> list[OrderSnapshot]: ...

    async def close(self) -> None: ...
