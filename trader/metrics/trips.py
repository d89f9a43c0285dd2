"""Round trips (entry → flat) from a list of fills, per market; the one type both reports use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


@dataclass(slots=True)
class RoundTrip:
    """From the buy that opens a position to the sell that empties it; `exit_ts` None while open."""

    no: int  # 1, 2, … in opening order (all markets together)
    market: str
    entry_ts: int
    exit_ts: int | None
    bought: Decimal  # volume bought (plus coins held before the first fill)
    cost: Decimal  # Σ buys (funds + fee) + the cost basis of coins held before the first fill
    proceeds: Decimal  # Σ sells (funds − fee)
    fees: Decimal  # Σ fee of its fills
    fills: int
    exits: list[str] = field(default_factory=list)  # sell reasons in order, repeats merged

    @property
    def closed(self) -> bool:
        return self.exit_ts is not None

    @property
    def pnl(self) -> Decimal:
        """Net of every fee; meaningful once closed (while open it is proceeds so far − cost)."""
        return self.proceeds - self.cost

    @property
    def exit_reason(self) -> str:
        return self.exits[-1] if self.exits else ""

    @property
    def hold_ms(self) -> int | None:
        return None if self.exit_ts is None else self.exit_ts - self.entry_ts

    @property
    def return_pct(self) -> float | None:
        if self.exit_ts is None or not self.cost:
            return None
        return float(self.pnl / self.cost * 100)


def round_trips(
    fills: Iterable[Any],
    *,
    market: str = "",
    opening: Mapping[str, tuple[int, Decimal, Decimal]] | None = None,
) -> list[RoundTrip]:
    """Round trips of `fills` (time order). A fill without a `market` attribute belongs to `market`
    (the backtest's single market). `opening` = coins held before the first fill, market →
    (ts it counts from, volume, cost basis incl. attached buy fees): each opens a trip.
    A sell with no position open (history missing) belongs to no trip."""
    trips: list[RoundTrip] = []
    cur: dict[str, RoundTrip] = {}
    held: dict[str, Decimal] = {}
    for m, (ts, volume, cost) in sorted((opening or {}).items()):
        if volume > 0:
            cur[m] = RoundTrip(len(trips) + 1, m, ts, None, volume, cost, ZERO, ZERO, 0)
            trips.append(cur[m])
            held[m] = volume
    for f in fills:
        m = getattr(f, "market", market)
        trip = cur.get(m)
        if f.side == "bid":
            if trip is None:
                trip = cur[m] = RoundTrip(len(trips) + 1, m, f.ts_ms, None, ZERO, ZERO, ZERO, ZERO, 0)
                trips.append(trip)
            trip.bought += f.volume
            trip.cost += f.funds + f.fee
            held[m] = held.get(m, ZERO) + f.volume
        elif trip is not None:
            trip.proceeds += f.funds - f.fee
            reason = f.reason or "?"
            if not trip.exits or trip.exits[-1] != reason:
                trip.exits.append(reason)
            held[m] -= f.volume
            if held[m] <= 0:
                trip.exit_ts = f.ts_ms
                del cur[m]
        else:
            continue
        trip.fees += f.fee
        trip.fills += 1
    return trips
