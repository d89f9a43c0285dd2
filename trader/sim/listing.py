"""Upbit's rules for listing orders, shared by the REST endpoints and the in-process client.

`/v1/orders/closed` looks at most 7 days back (by default the 7 days up to now: the market
clock) and answers at most 1,000 orders; a bad page or limit is `invalid_parameter`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from trader.sim.matching import Exchange, SimError
from trader.sim.orders import Order

DAY_MS = 86_400_000
CLOSED_MAX_LIMIT = 1000  # /v1/orders/closed takes up to 1,000 per call (no pages)


def bad_page() -> SimError:
    return SimError(400, "invalid_parameter", "page/limit 값이 올바르지 않습니다.")


def closed_in_window(ex: Exchange, market: str | None, states: Iterable[str],
                     start: int | None = None, end: int | None = None) -> list[Order]:
    """Closed orders whose close (or creation) time lies in [start, end], oldest first."""
    now = ex.clock_ms or time.time_ns() // 1_000_000
    if end is None:
        end = (start + 7 * DAY_MS) if start is not None else now + 1
    if start is None:
        start = end - 7 * DAY_MS
    if end - start > 7 * DAY_MS or end < start:
        raise SimError(400, "invalid_parameter", "조회 기간은 최대 7일입니다.")
    return [o for o in ex.orders(market=market, states=states) if start <= (o.done_ms or o.created_ms) <= end]
