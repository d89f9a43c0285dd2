"""What execution needs from the repository and the ledger (structural types, no imports of them).

Execution codes against these protocols so it can be tested with in-memory fakes and never
depends on SQLAlchemy. The real implementations are `trader.storage.repository.Repository`
(synchronous: always called through `asyncio.to_thread`) and `trader.portfolio.Portfolio`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from trader.domain import Fill, PositionView


class OrderJournalPort(Protocol):
    """Record-before-send on the loop's own thread (a dedicated connection that never waits for
    the write lock): `record` takes `RepositoryPort.record_order`'s arguments and answers True
    (recorded), False (already recorded) or None (the lock is busy: use `record_order` instead)."""

    def record(self, *args: Any) -> bool | None: ...

    def close(self) -> None: ...


class RepositoryPort(Protocol):
    def record_order(
        self,
        identifier: str,
        intent_id: str,
        market: str,
        side: str,
        ord_type: str,
        price: Decimal | None,
        volume: Decimal | None,
        krw_amount: Decimal | None,
        reason: str,
        ts_ms: int,
        trigger_price: Decimal | None = None,
    ) -> Any: ...

    def mark_order(self, identifier: str, **fields: Any) -> Any: ...

    def record_fill(self, fill: Fill, realized_pnl: Decimal | None = None) -> bool: ...

    def set_fill_pnl(self, trade_uuid: str, realized_pnl: Decimal | None) -> None: ...

    def order_journal(self) -> OrderJournalPort | None:
        """The loop-thread journal, or None where the storage has none (then `record_order`)."""
        ...

    def unresolved_orders(self) -> list[Any]: ...


class PortfolioPort(Protocol):
    krw: Decimal

    def apply_fill(self, fill: Fill) -> Any: ...

    def view(
        self, market: str, pending: bool = False, krw_reserved: Decimal = Decimal(0)
    ) -> PositionView: ...
