"""The free balances an order is sized against: the cache when it is known fresh, else REST.

`BalanceReads` is one part of `trader.execution.order_manager.OrderManager` (a mixin): a sell
is sized from the exchange's free coin (read from `BalanceCache` when no order of ours on the
market is open and the cache is fresh, otherwise over REST), a buy from the ledger's KRW minus
what our in-flight buys reserve; balances are re-read in the background after every change.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from trader.execution.balances import currencies_of
from trader.upbit.errors import (
    redact,
)

log = logging.getLogger("trader.execution")


class BalanceReads:
    """The balance half of the order manager (see the module docstring)."""

    async def _krw_free(self, market: str, fresh: bool) -> Decimal:
        if fresh:
            balances = await self.read_balances()
            krw = balances.get("KRW")
            return krw.balance if krw else Decimal(0)
        return Decimal(self.portfolio.krw) - self.reserved_krw()

    async def _coin_balance(self, market: str, fresh: bool = False) -> tuple[Decimal, Decimal]:
        """(free, locked) coin of `market` as the exchange reports it: from the cache when it is
        known fresh and no order of ours on the market is open, else by a REST read now."""
        currency = currencies_of(market)[1]
        if not fresh and self.balances is not None and not self._market_busy(market):
            hit = self.balances.get(currency)
            if hit is not None:
                return hit
        balances = await self.read_balances()
        row = balances.get(currency)
        return (row.balance, row.locked) if row else (Decimal(0), Decimal(0))

    def _market_busy(self, market: str) -> bool:
        return any(o.market == market and not o.is_final for o in self._by_identifier.values())

    async def read_balances(self) -> dict[str, Any]:
        """REST `accounts()` (retried), installed in the cache unless something changed meanwhile."""
        token = self.balances.begin_read() if self.balances is not None else None
        balances: dict[str, Any] = await self._retrying(self.exchange.accounts)
        if self.balances is not None and token is not None:
            self.balances.install(balances, token)
        return balances

    def schedule_balance_refresh(self) -> None:
        """Re-read balances in the background (one refresh at a time; no-op without a cache)."""
        if self.balances is None:
            return
        if self._balance_refresh is not None and not self._balance_refresh.done():
            self._refresh_again = True
            return
        self._refresh_again = False
        self._balance_refresh = asyncio.get_running_loop().create_task(
            self._refresh_balances(), name="balance-refresh"
        )

    async def _refresh_balances(self) -> None:
        assert self.balances is not None
        for _ in range(4):  # a read voided by a concurrent change is retried a few times
            self._refresh_again = False
            token = self.balances.begin_read()
            try:
                balances = await self._retrying(self.exchange.accounts, attempts=3)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next sell reads REST itself: nothing is lost
                log.info("background balance refresh failed error=%s", redact(str(exc)))
                return
            if self.balances.install(balances, token) and not self._refresh_again:
                return

    async def keep_balances_fresh(self, every_s: float | None = None) -> None:
        """Refresh the cache periodically (run as a task) so a sell rarely meets a stale entry."""
        if self.balances is None:
            return
        period = every_s if every_s is not None else self.balances.max_age_s / 2
        while True:
            await asyncio.sleep(period)
            self.schedule_balance_refresh()

