"""Gap detection and REST backfill for a trade stream that dropped and came back.

After a reconnect, the last trade seen before the drop and the first one after it bound the gap.
`backfill(...)` pages `/v1/trades/ticks` backwards from the newest trade (cursor =
sequential_id) until it reaches the last seen trade, keeps the trades inside the gap that were
not seen yet, and returns them oldest first; when trades are not available it falls back to
1-minute candles (four synthetic ticks per candle: open, high/low, close). `SeenTrades`
remembers recent sequential_ids per market so nothing is delivered twice.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from trader.domain import Tick
from trader.timeutil import datetime_to_ms, ms_to_datetime, now_ms
from trader.upbit.events import tick_from_rest_trade

log = logging.getLogger(__name__)


class TradesSource(Protocol):
    """What backfill needs from the REST client (UpbitRestClient has both)."""

    async def trades_ticks(
        self, market: str, count: int = ..., cursor: str | int | None = ..., *, days_ago: int | None = ...
    ) -> list[Any]: ...

    async def candles_minutes(
        self, market: str, unit: int, to: str | None = ..., count: int = ...
    ) -> list[Any]: ...


class SeenTrades:
    """Bounded memory of delivered trades per market: sequential_ids plus the last tick."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._ids: dict[str, set[int]] = {}
        self._order: dict[str, deque[int]] = {}
        self.last: dict[str, Tick] = {}

    def __contains__(self, tick: Tick) -> bool:
        return bool(tick.seq) and tick.seq in self._ids.get(tick.market, ())

    def add(self, tick: Tick) -> bool:
        """Record a delivered tick; False when its sequential_id was already delivered (or, for
        ticks without one — tickers — when it repeats the last tick, as a resubscribe snapshot does)."""
        if not tick.seq and self.last.get(tick.market) == tick:
            return False
        if tick.seq:
            ids = self._ids.setdefault(tick.market, set())
            if tick.seq in ids:
                return False
            ids.add(tick.seq)
            order = self._order.setdefault(tick.market, deque())
            order.append(tick.seq)
            if len(order) > self.capacity:
                ids.discard(order.popleft())
        last = self.last.get(tick.market)
        if last is None or (tick.ts_ms, tick.seq) >= (last.ts_ms, last.seq):
            self.last[tick.market] = tick
        return True


@dataclass(frozen=True, slots=True)
class Gap:
    """One detected gap and how it was filled."""

    market: str
    after_ts_ms: int
    after_seq: int
    until_ts_ms: int
    until_seq: int
    filled: int
    source: str  # trades | candles | none


def _in_gap(t: Tick, after: Tick, until: Tick | None) -> bool:
    """Strictly between the bounds; a bound without sequential_id (a ticker) is exclusive by time."""
    if t.ts_ms < after.ts_ms or t.seq == after.seq or (not after.seq and t.ts_ms == after.ts_ms):
        return False
    if until is None:
        return True
    if not until.seq:
        return t.ts_ms < until.ts_ms
    return t.ts_ms <= until.ts_ms and t.seq != until.seq


async def backfill_trades(
    rest: TradesSource, after: Tick, until: Tick | None, seen: SeenTrades,
    *, page_size: int = 500, max_pages: int = 20,
) -> list[Tick]:
    """Trades after `after` up to `until` (exclusive of both), not yet seen, oldest first.

    Upbit's `/v1/trades/ticks` serves one UTC day per `days_ago` (none = today): when a day runs
    out before the gap's start is reached and the gap began on an earlier UTC day, paging goes on
    with `days_ago` + 1 (at most 7, Upbit's limit) and the same cursor.
    """
    found: dict[int, Tick] = {}
    cursor: int | None = None
    days_ago: int | None = None
    after_day = after.ts_ms // 86_400_000
    for _ in range(max_pages):
        rows = await rest.trades_ticks(after.market, count=page_size, cursor=cursor, days_ago=days_ago)
        if not rows:
            if _earlier_day_left(after_day, days_ago, until):
                days_ago = (days_ago or 0) + 1
                continue
            break
        reached = False
        for row in rows:  # newest first
            t = tick_from_rest_trade(row)
            if t.ts_ms < after.ts_ms or t.seq == after.seq:
                reached = True
            if _in_gap(t, after, until) and t not in seen:
                found[t.seq] = t
        oldest = rows[-1]
        if reached or oldest.get("sequential_id") is None:
            break
        cursor = int(oldest["sequential_id"])
        if len(rows) < page_size:  # this UTC day is exhausted
            if not _earlier_day_left(after_day, days_ago, until):
                break
            days_ago = (days_ago or 0) + 1
    return sorted(found.values(), key=lambda t: (t.ts_ms, t.seq))


def _earlier_day_left(after_day: int, days_ago: int | None, until: Tick | None) -> bool:
    """True while the gap's start lies on a UTC day before the one just paged (≤ 7 days back)."""
    paged = days_ago or 0
    if paged >= 7:
        return False
    reference_ms = until.ts_ms if until is not None else now_ms()
    return after_day < reference_ms // 86_400_000 - paged


def _utc_iso(ms: int) -> str:
    return ms_to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%SZ")


def _candle_start_ms(row: dict[str, Any]) -> int:
    dt = datetime.fromisoformat(str(row["candle_date_time_utc"])).replace(tzinfo=UTC)
    return datetime_to_ms(dt)


async def backfill_candles(rest: TradesSource, after: Tick, until: Tick | None, now_ms: int) -> list[Tick]:
    """Fallback: 1-minute candles inside the gap → 4 ticks each (open, extremes, close), seq 0."""
    end_ms = until.ts_ms if until is not None else now_ms
    minutes = min(200, max(1, (end_ms - after.ts_ms) // 60_000 + 2))
    rows = await rest.candles_minutes(after.market, 1, to=_utc_iso(end_ms + 60_000), count=int(minutes))
    ticks: list[Tick] = []
    for row in reversed(rows):  # oldest first
        start = _candle_start_ms(row)
        o, h, lo, c = (float(row[k]) for k in ("opening_price", "high_price", "low_price", "trade_price"))
        vol = float(row.get("candle_acc_trade_volume") or 0) / 4
        first, second = (lo, h) if c >= o else (h, lo)  # rising candle visits the low first
        for offset, price in ((0, o), (15_000, first), (30_000, second), (59_000, c)):
            ts = start + offset
            if after.ts_ms < ts and (until is None or ts < until.ts_ms):
                ticks.append(Tick(after.market, ts, price, vol, "BID", 0))
    return ticks


async def backfill(
    rest: TradesSource, after: Tick, until: Tick | None, seen: SeenTrades, *, now_ms: int = 0
) -> tuple[list[Tick], Gap]:
    """Fill one gap from trades, or candles when trades fail; never raises (a gap is logged)."""
    source, ticks = "none", []
    try:
        ticks, source = await backfill_trades(rest, after, until, seen), "trades"
    except Exception as exc:  # the live stream must go on; candles are the second source
        log.warning("trade backfill for %s failed (%s); trying minute candles",
                    after.market, type(exc).__name__)
        try:
            ticks, source = await backfill_candles(rest, after, until, now_ms), "candles"
        except Exception as exc2:
            log.error("gap in %s not filled: %s", after.market, type(exc2).__name__)
    gap = Gap(after.market, after.ts_ms, after.seq, until.ts_ms if until else 0, until.seq if until else 0,
              len(ticks), source)
    return ticks, gap
