"""The report's figures of a period: headline numbers from `trader.metrics`, plus the report's own
tables (P&L by exit reason, exits with their trigger prices, positions, daily returns).

The ledger is replayed once (`trader.reporting.replay`), so money here is exactly the ledger's
(`Decimal`); ratios are floats. Round trips, return, drawdown (a NEGATIVE percent), win rate,
profit factor, expectancy, holding time, exposure, fees and Sharpe/Sortino/Calmar are defined
in `trader.metrics` (the backtest summary uses the same module). Report-only definitions:

- equity = KRW + open volume × mark price (the ledger's `equity`, no prospective sell fee);
  P&L of a period = equity at its end − equity at its start.
- realized P&L = Σ of the ledger's realized P&L of the sells in the period (net of both fees);
  unrealized P&L = the ledger's `unrealized_pnl` of the open positions at the period end (net
  of the buy fees attached and of the sell fee a sale would pay).
- a round trip counts in the period where it closes; the daily ratios use the ledger's equity
  at each trading-day boundary (09:00 KST by default) inside the period.
- buy-and-hold = the price change of the main market over the period (start → end mark).
- per exit reason: the realized P&L of the sells with that reason, and "vs hold": what selling
  there made compared with holding the same volume to the period end (proceeds − fee −
  volume × end price): positive means the exit made or saved that much.
- an exit = one sell order (its fills grouped by identifier): volume-weighted fill price next to
  the trigger price stored with the order (the price of the trade that decided it), so the
  slippage of a stop is visible: slippage % = (fill − trigger) / trigger × 100.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from trader.domain import Side
from trader.metrics import day_boundaries, figures, return_pct
from trader.reporting.inputs import ReportInputs
from trader.reporting.periods import PERIODS, day_start_ms, report_window, trading_day
from trader.reporting.replay import PriceBook, Replay, equity_curve, marks, replay

ZERO = Decimal(0)


# --- the figures -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReasonRow:
    reason: str
    fills: int
    volume: Decimal
    realized_pnl: Decimal  # Σ ledger realized P&L of these sells
    vs_hold: Decimal  # proceeds − fee − volume × period-end price


@dataclass(frozen=True, slots=True)
class ExitRow:
    """One sell order of the period (its fills together)."""

    ts_ms: int  # its last fill
    market: str
    reason: str
    volume: Decimal
    funds: Decimal
    trigger_price: Decimal | None  # the deciding trade's price, when the order recorded it
    realized_pnl: Decimal
    fills: int

    @property
    def fill_price(self) -> Decimal:
        """Volume-weighted over its fills (computed when shown: a year holds ~100k exits)."""
        return self.funds / self.volume

    @property
    def slippage_pct(self) -> float | None:
        if not self.trigger_price:
            return None
        return float((self.fill_price - self.trigger_price) / self.trigger_price * 100)


@dataclass(frozen=True, slots=True)
class PositionRow:
    market: str
    volume: Decimal
    avg_buy_price: Decimal
    price: Decimal | None
    value: Decimal
    unrealized_pnl: Decimal


@dataclass
class PeriodMetrics:
    period: str
    start_ms: int
    end_ms: int
    start_equity: Decimal
    end_equity: Decimal
    pnl: Decimal
    return_pct: float
    cumulative_return_pct: float
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    n_fills: int
    n_buys: int
    n_sells: int
    n_trades: int  # closed round trips
    wins: int
    losses: int
    win_rate: float | None  # 0..1
    avg_win: Decimal | None
    avg_loss: Decimal | None
    profit_factor: float | None  # None when no round trip lost
    expectancy: Decimal | None  # mean P&L per closed round trip
    avg_hold_s: float | None
    best_trade: Decimal | None
    worst_trade: Decimal | None
    max_drawdown_pct: float  # ≤ 0
    max_drawdown_krw: Decimal  # ≥ 0, rounded to the won
    exposure_pct: float
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    main_market: str | None
    buy_hold_pct: float | None
    krw_end: Decimal
    by_reason: list[ReasonRow] = field(default_factory=list)
    exits: list[ExitRow] = field(default_factory=list)
    positions: list[PositionRow] = field(default_factory=list)
    daily: pd.DataFrame = field(default_factory=pd.DataFrame)  # day, equity_start, equity_end, pnl, ret

    @property
    def has_trades(self) -> bool:
        return self.n_fills > 0


@dataclass
class ReportMetrics:
    """The chosen period in detail plus the day/week/month/all summary for the same end day."""

    main: PeriodMetrics
    summary: dict[str, PeriodMetrics]
    curve: pd.DataFrame  # full equity curve (float), for charts
    replay: Replay
    prices: PriceBook


def _curve_in(curve: pd.DataFrame, start: int, end: int, start_eq: float, end_eq: float) -> np.ndarray:
    """The equity points inside [start, end), framed by the exact ledger values at both ends."""
    ts = curve["ts_ms"].to_numpy(dtype="int64")
    lo, hi = np.searchsorted(ts, start, "left"), np.searchsorted(ts, end, "left")
    return np.concatenate([[start_eq], curve["equity"].to_numpy(dtype="float64")[lo:hi], [end_eq]])


def exit_rows(rp: Replay, triggers: dict[str, Decimal]) -> list[ExitRow]:
    """Every sell order of the replay (fills grouped by identifier, else order uuid), ordered by
    its last fill; one pass, so the periods only slice it."""
    groups: dict[str, list[Any]] = {}  # key → [last ts, first fill, volume, funds, realized, n]
    for f, r in zip(rp.fills, rp.realized, strict=True):
        if r is None:
            continue
        key = f.identifier or f.order_uuid or f.trade_uuid
        g = groups.get(key)
        if g is None:
            groups[key] = [f.ts_ms, f, f.volume, f.funds, r, 1]
        else:
            g[0] = max(g[0], f.ts_ms)
            g[2] += f.volume
            g[3] += f.funds
            g[4] += r
            g[5] += 1
    rows = [
        ExitRow(
            ts_ms=ts,
            market=first.market,
            reason=first.reason or "?",
            volume=volume,
            funds=funds,
            trigger_price=triggers.get(key) if first.identifier else None,
            realized_pnl=pnl,
            fills=n,
        )
        for key, (ts, first, volume, funds, pnl, n) in groups.items()
    ]
    rows.sort(key=lambda e: e.ts_ms)
    return rows


def _daily(start: int, end: int, hour: int, day_eq: dict[int, Decimal]) -> pd.DataFrame:
    """One row per trading day inside [start, end): equity at its start and end (ledger, exact)."""
    bounds = [b for b in sorted(day_eq) if start <= b <= end]
    rows = []
    for a, b in itertools.pairwise(bounds):
        e0, e1 = day_eq[a], day_eq[b]
        rows.append(
            {
                "day": trading_day(a, hour),
                "equity_start": float(e0),
                "equity_end": float(e1),
                "pnl": float(e1 - e0),
                "ret": float((e1 - e0) / e0 * 100) if e0 else 0.0,
            }
        )
    return pd.DataFrame(rows, columns=["day", "equity_start", "equity_end", "pnl", "ret"])


def period_metrics(
    period: str,
    start: int,
    end: int,
    inputs: ReportInputs,
    rp: Replay,
    book: PriceBook,
    curve: pd.DataFrame,
    day_eq: dict[int, Decimal],
    hour: int,
    initial_equity: Decimal,
    exits: list[ExitRow] | None = None,
) -> PeriodMetrics:
    st0, st1 = rp.state_at(start), rp.state_at(end)
    eq0, eq1 = st0.equity(marks(book, st0, start)), st1.equity(marks(book, st1, end))
    lo = int(np.searchsorted(rp.fill_ts, start, "left"))
    hi = int(np.searchsorted(rp.fill_ts, end, "left"))
    fills, realized = rp.fills[lo:hi], rp.realized[lo:hi]
    sells = [(f, r) for f, r in zip(fills, realized, strict=True) if r is not None]
    trips = [t for t in rp.trips if t.exit_ts is not None and start <= t.exit_ts < end]
    bounds = [b for b in day_eq if start <= b <= end]
    fig = figures(
        closed=trips,
        trips=rp.trips,
        fills=fills,
        start_ms=start,
        end_ms=end,
        start_equity=eq0,
        end_equity=eq1,
        curve=_curve_in(curve, start, end, float(eq0), float(eq1)),
        day_equity=[float(day_eq[b]) for b in sorted(bounds)],
    )
    st = fig.trades

    # main market: the one traded most in the period, else overall, else the first priced one
    counts: dict[str, int] = {}
    for f in fills or rp.fills:
        counts[f.market] = counts.get(f.market, 0) + 1
    main = inputs.market or (max(counts, key=counts.__getitem__) if counts else None)
    if main is None and book.markets:
        main = book.markets[0]
    bh = None
    if main is not None:
        p0 = book.at(main, start) or book.first_at_or_after(main, start)
        p1 = book.at(main, end)
        if p0 and p1:
            bh = float((p1 / p0 - 1) * 100)

    end_marks = marks(book, st1, end)
    by_reason: dict[str, list[Any]] = {}
    for f, r in sells:
        row = by_reason.setdefault(f.reason or "?", [0, ZERO, ZERO, ZERO])
        px_end = end_marks.get(f.market, f.price)
        row[0] += 1
        row[1] += f.volume
        row[2] += r
        row[3] += f.funds - f.fee - f.volume * px_end
    positions = []
    for m in st1.markets():
        p = st1.position(m)
        if p.volume <= 0:
            continue
        px = end_marks.get(m)
        positions.append(
            PositionRow(
                market=m,
                volume=p.volume,
                avg_buy_price=p.avg_buy_price,
                price=px,
                value=p.volume * (px if px is not None else p.avg_buy_price),
                unrealized_pnl=st1.unrealized_pnl(m, px) if px is not None else ZERO,
            )
        )
    return PeriodMetrics(
        period=period,
        start_ms=start,
        end_ms=end,
        start_equity=eq0,
        end_equity=eq1,
        pnl=eq1 - eq0,
        return_pct=fig.return_pct,
        cumulative_return_pct=return_pct(initial_equity, eq1),
        realized_pnl=sum((r for _, r in sells), ZERO),
        unrealized_pnl=sum((p.unrealized_pnl for p in positions), ZERO),
        fees=fig.fees,
        n_fills=len(fills),
        n_buys=sum(1 for f in fills if f.side is Side.BID),
        n_sells=len(sells),
        n_trades=st.trades,
        wins=st.wins,
        losses=st.losses,
        win_rate=st.win_rate,
        avg_win=st.avg_win,
        avg_loss=st.avg_loss,
        profit_factor=st.profit_factor,
        expectancy=st.expectancy,
        avg_hold_s=st.avg_hold_s,
        best_trade=st.best,
        worst_trade=st.worst,
        max_drawdown_pct=fig.max_drawdown_pct,
        max_drawdown_krw=Decimal(round(fig.max_drawdown_krw)),
        exposure_pct=fig.exposure_pct,
        sharpe=fig.risk.sharpe,
        sortino=fig.risk.sortino,
        calmar=fig.risk.calmar,
        main_market=main,
        buy_hold_pct=bh,
        krw_end=st1.krw,
        by_reason=[
            ReasonRow(reason, n, vol, pnl, vs)
            for reason, (n, vol, pnl, vs) in sorted(by_reason.items(), key=lambda kv: kv[1][2])
        ],
        exits=[e for e in exits or () if start <= e.ts_ms < end],
        positions=positions,
        daily=_daily(start, end, hour, day_eq),
    )


def data_start_ms(inputs: ReportInputs) -> int | None:
    """The first instant with any record (fill, equity point or price)."""
    candidates = []
    if inputs.fills:
        candidates.append(inputs.fills[0].ts_ms)
    if len(inputs.prices):
        candidates.append(int(inputs.prices["ts_ms"].iloc[0]))
    if len(inputs.equity):
        candidates.append(int(inputs.equity["ts_ms"].iloc[0]))
    return min(candidates) if candidates else None


def compute_metrics(inputs: ReportInputs, *, period: str, day: Any, day_start_hour: int = 9) -> ReportMetrics:
    """Replay once; figures for `period` ending with trading day `day`, and the summary."""
    windows: dict[str, tuple[int, int]] = {}
    first = data_start_ms(inputs)
    for p in PERIODS:
        windows[p] = report_window(day, p, day_start_hour)
    # 'all' starts with the trading day of the first record (and covers at least the month)
    month_start, end = windows["month"]
    s_all = (
        month_start
        if first is None
        else min(month_start, day_start_ms(trading_day(first, day_start_hour), day_start_hour))
    )
    windows["all"] = (s_all, end)
    day_bounds = [int(b) for b in day_boundaries(s_all, end, day_start_hour)]
    bounds = sorted({*day_bounds, *(s for s, _ in windows.values()), end})
    rp = replay(inputs.fills, inputs.starting_equity, bounds, inputs.opening_holdings)
    book = PriceBook(inputs.prices)
    curve = equity_curve(inputs)
    day_eq = {}
    for b in day_bounds:
        st = rp.state_at(b)
        day_eq[b] = st.equity(marks(book, st, b))
    exits = exit_rows(rp, inputs.trigger_prices)
    summary = {
        p: period_metrics(p, s, e, inputs, rp, book, curve, day_eq, day_start_hour, day_eq[s_all], exits)
        for p, (s, e) in windows.items()
    }
    return ReportMetrics(main=summary[period], summary=summary, curve=curve, replay=rp, prices=book)
