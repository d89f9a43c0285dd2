"""Free-balance cache: the exchange's free/locked coin without a REST read on the order path.

A market sell must never ask for more than the exchange's *free* balance (sizing.py). Reading
`/v1/accounts` right before the sell costs a REST round trip (5–10 ms) in the latency path, so
the order manager keeps the last REST answer here and uses it while it is *known fresh*:

- an entry is only ever installed from a REST read (`begin_read` → `install`); a read that
  overlaps a change we caused (`invalidate`: an order of ours sent, a fill booked, a myAsset
  event) is discarded, because it may predate that change;
- `invalidate(currency)` drops the entry (our own order or fill changed it, or the exchange
  told us over the private WebSocket that it changed: a myAsset event), so the next read of that
  currency goes to REST until a background refresh has installed a post-change value;
- an entry older than `max_age_s` is stale (a change we were not told about — a manual trade on
  the same account without a myAsset subscription — cannot outlive it);
- the caller additionally refuses the cache while any order of its own on the market is open.

Whatever slips through (a manual trade inside the freshness window) is caught by the exchange:
`insufficient_funds_ask` makes the order manager re-read over REST and resize once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

DEFAULT_MAX_AGE_S = 10.0


@dataclass(frozen=True, slots=True)
class CachedBalance:
    free: Decimal
    locked: Decimal
    at: float  # clock() when the REST read that produced it started


class BalanceCache:
    """Per-currency (free, locked) from REST reads, invalidated by every change we learn of."""

    def __init__(
        self, max_age_s: float = DEFAULT_MAX_AGE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._entries: dict[str, CachedBalance] = {}
        self._epoch = 0  # bumped by every invalidation
        self.hits = 0
        self.misses = 0

    def begin_read(self) -> tuple[int, float]:
        """Token to pass to `install` with the answer of the REST read started now."""
        return self._epoch, self.clock()

    def install(self, balances: Mapping[str, Any], token: tuple[int, float]) -> bool:
        """Store a REST `accounts()` answer (currency → Balance). Refused (False) when anything
        was invalidated since `begin_read`: the answer may not reflect that change."""
        epoch, started = token
        if epoch != self._epoch:
            return False
        # every currency the answer lacks is zero on the exchange: cached as such, so a sell of a
        # coin we no longer hold is refused locally without a read
        for cur in list(self._entries):
            if cur not in balances:
                self._entries[cur] = CachedBalance(Decimal(0), Decimal(0), started)
        for cur, row in balances.items():
            self._entries[cur] = CachedBalance(Decimal(row.balance), Decimal(row.locked), started)
        return True

    def invalidate(self, *currencies: str) -> None:
        """Something changed (or may have): forget these currencies and void reads in flight."""
        self._epoch += 1
        for cur in currencies:
            self._entries.pop(cur, None)

    def get(self, currency: str) -> tuple[Decimal, Decimal] | None:
        """(free, locked) when known fresh, else None (the caller reads REST)."""
        entry = self._entries.get(currency)
        if entry is None or self.clock() - entry.at > self.max_age_s:
            self.misses += 1
            return None
        self.hits += 1
        return entry.free, entry.locked

    def age(self, currency: str) -> float | None:
        entry = self._entries.get(currency)
        return None if entry is None else self.clock() - entry.at


def currencies_of(market: str) -> tuple[str, str]:
    """("KRW", "ETH") for "KRW-ETH"."""
    quote, _, base = market.partition("-")
    return quote, base
