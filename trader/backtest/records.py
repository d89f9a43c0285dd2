"""What both backtests (one market, a portfolio) share: the fill record, booking a fill, and
the constants that keep them equal to the simulator's feed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from trader.domain import Fill, Intent
from trader.portfolio import Portfolio

TICKS_PER_CANDLE = 8  # the simulator's default; the backtest must see the same trades
MIN_SKIP = 24  # shorter quiet runs are cheaper to feed tick by tick than in bulk
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One fill as the backtest reports it (money in Decimal)."""

    ts_ms: int
    side: str
    price: Decimal
    volume: Decimal
    funds: Decimal
    fee: Decimal
    reason: str
    intent_id: str
    krw_after: Decimal
    volume_after: Decimal  # of this fill's market
    market: str = ""


def book_fill(pf: Portfolio, f: Fill, intent: Intent, records: list[FillRecord]) -> None:
    """Apply a fill to the ledger and record it with the ledger's figures after it (a fill seen
    before is neither applied nor recorded again)."""
    if pf.apply_fill(f) is not None:
        records.append(FillRecord(f.ts_ms, f.side.value, f.price, f.volume, f.funds, f.fee, intent.reason,
                                  intent.intent_id, pf.krw, pf.position(f.market).volume, f.market))
