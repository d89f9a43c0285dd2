"""Performance figures of a period, from one replay of the fills through the ledger.

Money is `Decimal` and comes from `trader.portfolio.Portfolio`, so realized P&L here is exactly
the ledger's. Ratios (returns, drawdown, exposure) are floats. Definitions:

- equity = KRW + open volume × mark price (the ledger's `equity`, no prospective sell fee);
  P&L of a period = equity at its end − equity at its start; return % = P&L / start equity.
- realized P&L = Σ of the ledger's realized P&L of the sells in the period (net of both fees);
  unrealized P&L = the ledger's `unrealized_pnl` of the open positions at the period end (net
  of the buy fees attached and of the sell fee a sale would pay).
- a round trip ("trade") runs from a market's first buy out of flat to the sell that makes it
  flat again; it counts in the period where it closes. Win rate, average win/loss, profit factor
  (gross wins / gross losses) and best/worst trade are over those round trips.
- max drawdown = the deepest fall of equity below its running peak inside the period.
- exposure = the share of the period's time with at least one open position.
- buy-and-hold = the price change of the main market over the period (start → end mark).
- per exit reason: the realized P&L of the sells with that reason, and "vs hold": what selling
  there made compared with holding the same volume to the period end (proceeds − fee −
  volume × end price): positive means the exit made or saved that much.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from trader.domain import Fill, Side
from trader.portfolio import LedgerError, Portfolio
from trader.reporting.inputs import ReportInputs
from trader.reporting.periods import DAY_MS, PERIODS, day_start_ms, report_window, trading_day

ZERO = Decimal(0)


# --- replay ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RoundTrip:
    market: str
    open_ms: int
    close_ms: int
    pnl: Decimal  # Σ realized P&L of its sells (net of all its fees)
    fees: Decimal
    exit_reason: str
    fills: int


@dataclass
class Replay:
    """The ledger replayed once: per-fill realized P&L, round trips, exposure, boundary states."""

    fills: list[Fill]
    realized: list[Decimal | None]  # aligned with fills
    trips: list[RoundTrip]
    open_changes: list[tuple[int, int]]  # (ts_ms, number of open markets after)
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
    trips: list[RoundTrip] = []
    open_trip: dict[str, list[Any]] = {}  # market → [open_ms, pnl, fees, n]
    open_changes: list[tuple[int, int]] = []
    skipped: list[tuple[Fill, str]] = []
    is_open: dict[str, bool] = {m: pf.position(m).volume > 0 for m in pf.markets()}
    n_open = sum(is_open.values())
    first_ts = min([*bounds[:1], *(f.ts_ms for f in fills[:1])], default=0)
    for m, flag in is_open.items():
        if flag:  # a holding from before the data opens a round trip at the start
            open_trip[m] = [first_ts, ZERO, ZERO, 0]
    if n_open:
        open_changes.append((first_ts, n_open))
    kept: list[Fill] = []
    for f in fills:
        while bi < len(bounds) and bounds[bi] <= f.ts_ms:
            states[bounds[bi]] = _clone_without_history(pf)
            bi += 1
        was_open = is_open.get(f.market, False)
        try:
            effect = pf.apply_fill(f)
        except LedgerError as exc:
            skipped.append((f, str(exc)))
            continue
        if effect is None:  # the same trade twice: the ledger ignores it, so do we
            continue
        kept.append(f)
        realized.append(effect.realized_pnl)
        trip = open_trip.get(f.market)
        if trip is None:
            trip = open_trip[f.market] = [f.ts_ms, ZERO, ZERO, 0]
        trip[2] += f.fee
        trip[3] += 1
        if effect.realized_pnl is not None:
            trip[1] += effect.realized_pnl
        now_open = effect.position.volume > 0
        is_open[f.market] = now_open
        if now_open != was_open:
            n_open += 1 if now_open else -1
            open_changes.append((f.ts_ms, n_open))
        if not now_open and f.side is Side.ASK:
            trips.append(RoundTrip(f.market, trip[0], f.ts_ms, trip[1], trip[2], f.reason, trip[3]))
            del open_trip[f.market]
    while bi < len(bounds):
        states[bounds[bi]] = _clone_without_history(pf)
        bi += 1
    return Replay(
        fills=kept,
        realized=realized,
        trips=trips,
        open_changes=open_changes,
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
    f_ts = np.array([f.ts_ms for f in inputs.fills], dtype="int64")
    cash_delta = np.array(
        [
            -(float(f.funds) + float(f.fee)) if f.side is Side.BID else float(f.funds) - float(f.fee)
            for f in inputs.fills
        ],
        dtype="float64",
    )
    # fills at or before a grid instant count (the fill's own price point shows its effect)
    idx = np.searchsorted(f_ts, grid, side="right") - 1
    cash_cum = np.concatenate([[0.0], np.cumsum(cash_delta)])
    equity = float(inputs.starting_equity) + cash_cum[idx + 1]
    for market in prices["market"].unique():
        sel = [i for i, f in enumerate(inputs.fills) if f.market == market]
        v0 = float(inputs.opening_holdings.get(str(market), (Decimal(0), Decimal(0)))[0])
        if not sel and not v0:
            continue
        m_ts = f_ts[sel]
        m_vol = v0 + np.cumsum(
            [float(inputs.fills[i].volume) * (1 if inputs.fills[i].side is Side.BID else -1) for i in sel]
        )
        vol = np.concatenate([[v0], m_vol])[np.searchsorted(m_ts, grid, side="right")]
        mp = prices[prices["market"] == market]
        p_ts = mp["ts_ms"].to_numpy(dtype="int64")
        p_px = mp["price"].to_numpy(dtype="float64")
        pi = np.searchsorted(p_ts, grid, side="right") - 1
        px = np.where(pi >= 0, p_px[np.clip(pi, 0, None)], 0.0)
        equity = equity + vol * px
    return pd.DataFrame({"ts_ms": grid, "equity": equity})


# --- the figures -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReasonRow:
    reason: str
    fills: int
    volume: Decimal
    realized_pnl: Decimal  # Σ ledger realized P&L of these sells
    vs_hold: Decimal  # proceeds − fee − volume × period-end price


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
    profit_factor: float | None  # inf when there are wins and no losses
    best_trade: Decimal | None
    worst_trade: Decimal | None
    max_drawdown_pct: float  # ≤ 0
    max_drawdown_krw: Decimal  # ≥ 0, rounded to the won
    exposure_pct: float
    main_market: str | None
    buy_hold_pct: float | None
    krw_end: Decimal
    by_reason: list[ReasonRow] = field(default_factory=list)
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


def _ratio(num: Decimal, den: Decimal) -> float:
    return float(num / den * 100) if den else 0.0


def _exposure(open_changes: list[tuple[int, int]], start: int, end: int) -> float:
    if end <= start:
        return 0.0
    ts = [t for t, _ in open_changes]
    i = bisect.bisect_right(ts, start) - 1
    n_open = open_changes[i][1] if i >= 0 else 0
    cursor, covered = start, 0
    for t, n in open_changes[i + 1 :]:
        if t >= end:
            break
        if n_open > 0:
            covered += t - cursor
        cursor, n_open = t, n
    if n_open > 0:
        covered += end - cursor
    return covered / (end - start) * 100


def _drawdown(
    curve: pd.DataFrame, start: int, end: int, start_eq: float, end_eq: float
) -> tuple[float, float]:
    ts = curve["ts_ms"].to_numpy(dtype="int64")
    lo, hi = np.searchsorted(ts, start, "left"), np.searchsorted(ts, end, "left")
    vals = np.concatenate([[start_eq], curve["equity"].to_numpy(dtype="float64")[lo:hi], [end_eq]])
    peak = np.maximum.accumulate(vals)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, vals / peak - 1.0, 0.0)
    return float(dd.min()) * 100, float((peak - vals).max())


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
) -> PeriodMetrics:
    st0, st1 = rp.state_at(start), rp.state_at(end)
    eq0, eq1 = st0.equity(marks(book, st0, start)), st1.equity(marks(book, st1, end))
    lo = int(np.searchsorted(rp.fill_ts, start, "left"))
    hi = int(np.searchsorted(rp.fill_ts, end, "left"))
    fills, realized = rp.fills[lo:hi], rp.realized[lo:hi]
    sells = [(f, r) for f, r in zip(fills, realized, strict=True) if r is not None]
    trips = [t for t in rp.trips if start <= t.close_ms < end]
    wins = [t.pnl for t in trips if t.pnl > 0]
    losses = [t.pnl for t in trips if t.pnl < 0]
    gross_win, gross_loss = sum(wins, ZERO), -sum(losses, ZERO)
    if gross_loss:
        pf_: float | None = float(gross_win / gross_loss)
    else:
        pf_ = float("inf") if gross_win else None

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
    dd_pct, dd_krw = _drawdown(curve, start, end, float(eq0), float(eq1))
    return PeriodMetrics(
        period=period,
        start_ms=start,
        end_ms=end,
        start_equity=eq0,
        end_equity=eq1,
        pnl=eq1 - eq0,
        return_pct=_ratio(eq1 - eq0, eq0),
        cumulative_return_pct=_ratio(eq1 - initial_equity, initial_equity),
        realized_pnl=sum((r for _, r in sells), ZERO),
        unrealized_pnl=sum((p.unrealized_pnl for p in positions), ZERO),
        fees=sum((f.fee for f in fills), ZERO),
        n_fills=len(fills),
        n_buys=sum(1 for f in fills if f.side is Side.BID),
        n_sells=len(sells),
        n_trades=len(trips),
        wins=len(wins),
        losses=len(losses),
        win_rate=(len(wins) / len(trips)) if trips else None,
        avg_win=(gross_win / len(wins)) if wins else None,
        avg_loss=(-gross_loss / len(losses)) if losses else None,
        profit_factor=pf_,
        best_trade=max((t.pnl for t in trips), default=None),
        worst_trade=min((t.pnl for t in trips), default=None),
        max_drawdown_pct=dd_pct,
        max_drawdown_krw=Decimal(round(dd_krw)),
        exposure_pct=_exposure(rp.open_changes, start, end),
        main_market=main,
        buy_hold_pct=bh,
        krw_end=st1.krw,
        by_reason=[
            ReasonRow(reason, n, vol, pnl, vs)
            for reason, (n, vol, pnl, vs) in sorted(by_reason.items(), key=lambda kv: kv[1][2])
        ],
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
    day_bounds = list(range(s_all, end + 1, DAY_MS))
    bounds = sorted({*day_bounds, *(s for s, _ in windows.values()), end})
    rp = replay(inputs.fills, inputs.starting_equity, bounds, inputs.opening_holdings)
    book = PriceBook(inputs.prices)
    curve = equity_curve(inputs)
    day_eq = {}
    for b in day_bounds:
        st = rp.state_at(b)
        day_eq[b] = st.equity(marks(book, st, b))
    summary = {
        p: period_metrics(p, s, e, inputs, rp, book, curve, day_eq, day_start_hour, day_eq[s_all])
        for p, (s, e) in windows.items()
    }
    return ReportMetrics(main=summary[period], summary=summary, curve=curve, replay=rp, prices=book)
