"""An exchange client over the simulator's matching in process: no sockets, no threads.

`InProcessClient` implements `trader.upbit.client.ExchangeClient` over a
`trader.sim.matching.Exchange`, and exposes the same calls synchronously (`*_now`) for the
backtest, which replays trades in a plain loop with no event loop; the async methods only wrap
them. It asks the exchange what the simulator's REST endpoints ask it, with the parameters the
REST client would send (`convert.order_params`: numbers as Upbit's fixed-point text), and builds
the answers from the exchange's Upbit JSON with the REST client's converters
(`convert.order_from_json`, `balances_from_json`); a refusal becomes the typed error the REST
client raises for the same status and body (`errors.from_error_body`). So execution meets the
same objects, fill for fill, whether it trades over loopback or in process.

What it has not: a network. Nothing is ever ambiguous, retried or rate-limited here.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from trader.domain import OrderSnapshot, OrdType, Side
from trader.sim.listing import CLOSED_MAX_LIMIT, bad_page, closed_in_window
from trader.sim.matching import Exchange, SimError
from trader.upbit.client import Balance
from trader.upbit.convert import balances_from_json, order_from_json, order_params, order_ref
from trader.upbit.errors import from_error_body

T = TypeVar("T")
_OPEN = ("wait", "watch")
_CLOSED = ("done", "cancel")


class InProcessClient:
    """ExchangeClient over an in-process `Exchange`; orders are stamped with `clock()` (market ms)."""

    def __init__(self, exchange: Exchange, *, clock: Callable[[], int]) -> None:
        self.exchange = exchange
        self.clock = clock
        rate = exchange.fee_rate  # what /v1/orders/chance would tell the REST client
        self._fee_rates = {"bid": rate, "ask": rate}

    def _order(self, data: dict[str, Any]) -> OrderSnapshot:
        return order_from_json(data, self._fee_rates)

    @staticmethod
    def _call(fn: Callable[[], T]) -> T:
        try:
            return fn()
        except SimError as exc:  # the body the simulator would answer over HTTP, mapped as REST maps it
            raise from_error_body(exc.status, exc.body()) from None

    # ---- synchronous core (the backtest) ---------------------------------------------------------
    def create_order_now(
        self,
        market: str,
        side: Side,
        ord_type: OrdType,
        *,
        identifier: str,
        price: Decimal | None = None,
        volume: Decimal | None = None,
        time_in_force: str | None = None,
    ) -> OrderSnapshot:
        """The order as accepted (state `wait`, as Upbit answers); its fills: `get_order_now`."""
        p = order_params(market, side, ord_type, identifier=identifier, price=price, volume=volume,
                         time_in_force=time_in_force)
        ex, ts = self.exchange, self.clock()
        data = self._call(lambda: ex.create_order(
            p["market"], p["side"], p["ord_type"], identifier=p["identifier"],
            price=Decimal(p["price"]) if "price" in p else None,
            volume=Decimal(p["volume"]) if "volume" in p else None,
            time_in_force=p.get("time_in_force"), ts_ms=ts))
        return self._order(data)

    def get_order_now(self, *, uuid: str | None = None, identifier: str | None = None) -> OrderSnapshot:
        """The order with its `trades` (fills carry the order's identifier)."""
        ref = order_ref(uuid, identifier)
        return self._order(self._call(lambda: self.exchange.get_order(**ref)))

    def cancel_order_now(self, *, uuid: str | None = None, identifier: str | None = None) -> OrderSnapshot:
        """The order as it was when the cancel was accepted (often `wait`), as Upbit answers."""
        ref = order_ref(uuid, identifier)
        ts = self.clock()
        return self._order(self._call(lambda: self.exchange.cancel_order(**ref, ts_ms=ts)))

    def accounts_now(self) -> dict[str, Balance]:
        return balances_from_json(self.exchange.accounts())

    def open_orders_now(self, market: str | None = None) -> list[OrderSnapshot]:
        """Open orders, newest first (the REST endpoint's default order)."""
        orders = self.exchange.orders(market=market, states=_OPEN)
        return [self._order(o.to_json()) for o in reversed(orders)]

    def closed_orders_now(self, market: str | None = None, *, limit: int = 100) -> list[OrderSnapshot]:
        """Done/cancelled orders of the last 7 days of market time, newest first."""

        def listing() -> list[Any]:
            if not 1 <= limit <= CLOSED_MAX_LIMIT:
                raise bad_page()
            return closed_in_window(self.exchange, market, _CLOSED)

        return [self._order(o.to_json()) for o in reversed(self._call(listing))][:limit]

    # ---- the ExchangeClient protocol -------------------------------------------------------------
    async def accounts(self) -> dict[str, Balance]:
        return self.accounts_now()

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
    ) -> OrderSnapshot:
        return self.create_order_now(market, side, ord_type, identifier=identifier, price=price,
                                     volume=volume, time_in_force=time_in_force)

    async def get_order(self, *, uuid: str | None = None, identifier: str | None = None) -> OrderSnapshot:
        return self.get_order_now(uuid=uuid, identifier=identifier)

    async def cancel_order(self, *, uuid: str | None = None, identifier: str | None = None) -> OrderSnapshot:
        return self.cancel_order_now(uuid=uuid, identifier=identifier)

    async def open_orders(self, market: str | None = None) -> list[OrderSnapshot]:
        return self.open_orders_now(market)

    async def closed_orders(self, market: str | None = None, *, limit: int = 100) -> list[OrderSnapshot]:
        return self.closed_orders_now(market, limit=limit)

    async def close(self) -> None:
        return None
