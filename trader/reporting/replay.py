"""The ledger replayed once over a report's fills, mark prices, and the equity curve.

Money is `Decimal` and comes from `trader.portfolio.Portfolio`, so realized P&L and the equity
at every boundary are exactly the ledger's. Round trips come from `trader.metrics` (the module
the backtest uses too), built from the fills the ledger accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

from trader.domain import Fill, Side
from trader.metrics import RoundTrip, round_trips, step_at
from trader.portfolio import LedgerError, Portfolio
from trader.reporting.inputs import ReportInputs

ZERO = Decimal(0)


@dataclass
class Replay:
    """The ledger replayed once: per-fill realized P&L, round trips, exposure, boundary states."""

    fills: list[Fill]
    realized: list[Decimal | None]  # aligned with fills
    trips: list[RoundTrip]  # `trader.metrics` round trips of the accepted fills
    states: dict[int, Portfolio]  # boundary ts → ledger with every fill before ts applied
    fill_ts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="int64"))
    skipped: list[tuple[Fill, str]] = field(default_factory=list)  # fills the ledger refused

    def state_at(self, ts: int) -> Portfolio:
        return self.states[ts]


def _clone_without_history(pf: Portfolio) -> Portfolio:
    """A copy of the ledger's balances and positions (not its 100k applied trade ids)."""
    positions = {}
    for m in pf.markets():
        p = pf.position(m)
        positions[m] = {
            "volume": str(p.volume),
            "avg_buy_price": str(p.avg_buy_price),
            "cost_fees_open": str(p.cost_fees_open),
            "realized_pnl": str(p.realized_pnl),
            "fees_paid": str(p.fees_paid),
        }
    return Portfolio.from_dict(
        {"krw": str(pf.krw), "fee_rate": str(pf.fee_rate), "positions": positions, "applied": []}
    )


def replay(
    fills: list[Fill],
    starting_krw: Decimal,
    boundaries: list[int],
    opening: dict[str, tuple[Decimal, Decimal]] | None = None,
) -> Replay:
    """Apply `fills` (time order) to a fresh ledger, capturing its state at each boundary.

    `opening` holds coins the account had before the first fill (market → (volume, average
    buy price)). A fill the ledger refuses (selling more than it holds: history is missing) is
    skipped and listed in `skipped`, so the report still arrives and says what it left out.
    """
    pf = Portfolio(krw=starting_krw)
    if opening:
        pf.adopt_balances(starting_krw, opening)
    bounds = sorted(set(boundaries))
    states: dict[int, Portfolio] = {}
    bi = 0
    realized: list[Decimal | None] = []
    skipped: list[tuple[Fill, str]] = []
    first_ts = min([*bounds[:1], *(f.ts_ms for f in fills[:1])], default=0)
    # a holding from before the data opens a round trip at the start, at the ledger's cost basis
    held = {}
    for m in pf.markets():
        p = pf.position(m)
        if p.volume > 0:
            held[m] = (first_ts, p.volume, p.volume * p.avg_buy_price + p.cost_fees_open)
    kept: list[Fill] = []
    for f in fills:
        while bi < len(bounds) and bounds[bi] <= f.ts_ms:
            states[bounds[bi]] = _clone_without_history(pf)
            bi += 1
        try:
            effect = pf.apply_fill(f)
        except LedgerError as exc:
            skipped.append((f, str(exc)))
            continue
        if effect is None:  # the same trade twice: the ledger ignores it, so do we
            continue
        kept.append(f)
        realized.append(effect.realized_pnl)
    while bi < len(bounds):
        states[bounds[bi]] = _clone_without_history(pf)
        bi += 1
    return Replay(
        fills=kept,
        realized=realized,
        trips=round_trips(kept, opening=held),
        states=states,
        fill_ts=np.fromiter((f.ts_ms for f in kept), dtype="int64", count=len(kept)),
        skipped=skipped,
    )


# --- prices and the equity curve ---------------------------------------------------------------
class PriceBook:
    """Mark prices per market; `at(market, ts)` = the last price strictly before `ts`."""

    def __init__(self, prices: pd.DataFrame) -> None:
        self._ts: dict[str, np.ndarray] = {}
        self._px: dict[str, np.ndarray] = {}
        for market, g in prices.groupby("market", sort=True):
            self._ts[str(market)] = g["ts_ms"].to_numpy(dtype="int64")
            self._px[str(market)] = g["price"].to_numpy(dtype="float64")

    @property
    def markets(self) -> list[str]:
        return list(self._ts)

    def at(self, market: str, ts: int) -> Decimal | None:
        ts_arr = self._ts.get(market)
        if ts_arr is None or len(ts_arr) == 0:
            return None
        i = int(np.searchsorted(ts_arr, ts, side="left")) - 1
        if i < 0:
            return None
        # repr() of a float is its shortest exact decimal: a recorded 3,500,000.0 stays 3500000
        return Decimal(repr(float(self._px[market][i])))

    def first_at_or_after(self, market: str, ts: int) -> Decimal | None:
        ts_arr = self._ts.get(market)
        if ts_arr is None or len(ts_arr) == 0:
            return None
        i = int(np.searchsorted(ts_arr, ts, side="left"))
        if i >= len(ts_arr):
            return None
        return Decimal(repr(float(self._px[market][i])))

    def series(self, market: str) -> tuple[np.ndarray, np.ndarray]:
        return self._ts.get(market, np.empty(0, "int64")), self._px.get(market, np.empty(0))


def marks(book: PriceBook, pf: Portfolio, ts: int) -> dict[str, Decimal]:
    out = {}
    for m in pf.markets():
        p = book.at(m, ts)
        if p is not None:
            out[m] = p
    return out


def equity_curve(inputs: ReportInputs) -> pd.DataFrame:
    """Equity over time (float KRW): the engine's recorded points, or, when there are none,
    derived from the fills (cash and volume step functions) marked at the price points."""
    eq = inputs.equity
    if len(eq):
        # one row per instant: with several markets the engine records the account total per row
        return eq.groupby("ts_ms", sort=True, as_index=False)["equity"].last()
    prices = inputs.prices
    if len(prices) == 0:
        return pd.DataFrame({"ts_ms": pd.Series(dtype="int64"), "equity": pd.Series(dtype="float64")})
    grid = np.unique(prices["ts_ms"].to_numpy(dtype="int64"))
    fills = inputs.fills
    f_ts = np.array([f.ts_ms for f in fills], dtype="int64")
    buy = np.array([f.side is Side.BID for f in fills], dtype=bool)
    funds = np.array([float(f.funds) for f in fills], dtype="float64")
    fee = np.array([float(f.fee) for f in fills], dtype="float64")
    # fills at or before a grid instant count (the fill's own price point shows its effect)
    k0 = float(inputs.starting_equity)
    cash = k0 + np.cumsum(np.where(buy, -(funds + fee), funds - fee))
    equity = step_at(f_ts, cash, grid, k0)
    for market in prices["market"].unique():
        sel = np.array([f.market == market for f in fills], dtype=bool)
        v0 = float(inputs.opening_holdings.get(str(market), (ZERO, ZERO))[0])
        if not sel.any() and not v0:
            continue
        signed = np.array([float(f.volume) for f in fills], dtype="float64") * np.where(buy, 1.0, -1.0)
        vol = step_at(f_ts[sel], v0 + np.cumsum(signed[sel]), grid, v0)
        mp = prices[prices["market"] == market]
        px = step_at(mp["ts_ms"].to_numpy(dtype="int64"), mp["price"].to_numpy(dtype="float64"), grid, 0.0)
        equity = equity + vol * px
    return pd.DataFrame({"ts_ms": grid, "equity": equity})
