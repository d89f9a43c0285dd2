"""`run_portfolio_backtest`: a portfolio file + a folder of candle files → one result.

The folder holds one candle file per market, found by the file name starting with the market
code (`KRW-XRP.csv`, `KRW-XRP_15m_2024.parquet`). Each market's candles are synthesized into
trades exactly as the single-market backtest does; the figures come from `trader.metrics` (the
one metrics module), for the portfolio and per market; the fingerprint is `trader.fingerprint`'s
over every fill of every market, in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from trader.backtest.portfolio import PortfolioBacktest, PortfolioRunOutput
from trader.backtest.report import fill_rows, kst
from trader.backtest.runner import TICKS_PER_CANDLE, FillRecord, ProgressFn
from trader.fingerprint import fingerprint
from trader.marketdata.candles import MarketDataError, infer_interval_ms, load_frame, slice_time
from trader.marketdata.synth import TradeArrays, synthesize_trades
from trader.metrics import day_boundaries, figures, step_at, trade_stats
from trader.metrics import round_trips as metric_trips

DATA_SUFFIXES = (".csv", ".parquet")


def find_data_files(data_dir: str | Path, markets: list[str]) -> dict[str, Path]:
    """One data file per market in `data_dir` (name starts with the code); MarketDataError naming
    the market when none or several match."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise MarketDataError(f"--data-dir {folder}: not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix in DATA_SUFFIXES)
    found: dict[str, Path] = {}
    for m in markets:
        hits = [p for p in files if p.name == f"{m}{p.suffix}" or p.name.startswith(f"{m}_")]
        if not hits:
            raise MarketDataError(f"no data file for {m} in {folder} (expected {m}.csv or {m}_*.parquet)")
        if len(hits) > 1:
            names = ", ".join(p.name for p in hits)
            raise MarketDataError(f"several data files for {m} in {folder}: {names}")
        found[m] = hits[0]
    return found


@dataclass
class Marks:
    """Per-market candle closes on one time grid (the union of every market's closes)."""

    ts: np.ndarray
    close: dict[str, np.ndarray]  # forward-filled; NaN before a market's first close


def _marks(frames: dict[str, tuple[np.ndarray, np.ndarray]]) -> Marks:
    grid = np.unique(np.concatenate([ts for ts, _ in frames.values()]))
    closes = {}
    for m, (ts, px) in frames.items():
        idx = np.searchsorted(ts, grid, side="right") - 1
        closes[m] = np.where(idx >= 0, px[np.maximum(idx, 0)], np.nan)
    return Marks(grid, closes)


def _equity(out: PortfolioRunOutput, marks: Marks) -> np.ndarray:
    """Equity at each mark: KRW after the last fill + every market's volume at its close."""
    fills = out.fills
    f_ts = np.array([f.ts_ms for f in fills], dtype=np.int64)
    krw = step_at(f_ts, np.array([float(f.krw_after) for f in fills]), marks.ts, float(out.krw_start))
    total = krw.copy()
    for m in out.markets:
        mine = [f for f in fills if f.market == m]
        ts = np.array([f.ts_ms for f in mine], dtype=np.int64)
        vol = step_at(ts, np.array([float(f.volume_after) for f in mine]), marks.ts, 0.0)
        total += np.nan_to_num(vol * marks.close[m])
    return total


def _market_figures(m: str, fills: list[FillRecord], out: PortfolioRunOutput) -> dict[str, Any]:
    trips = metric_trips(fills, market=m)
    closed = [t for t in trips if t.exit_ts is not None]
    stats = trade_stats(closed)
    pnl = sum((t.pnl for t in closed), Decimal(0))
    return {
        "fills": len(fills), "trades": stats.trades, "open_trades": len(trips) - len(closed),
        "wins": stats.wins, "win_rate_pct": stats.win_rate * 100 if stats.win_rate is not None else 0.0,
        "pnl_krw": float(pnl), "fees": float(sum((f.fee for f in fills), Decimal(0))),
        "profit_factor": stats.profit_factor,
        "volume_end": str(out.final_volumes.get(m, Decimal(0))),
    }


@dataclass
class PortfolioResult:
    summary: dict
    output: PortfolioRunOutput
    equity_ts: np.ndarray
    equity: np.ndarray

    @property
    def fingerprint(self) -> str:
        return self.summary["fingerprint"]

    def to_json(self) -> dict:
        rows = fill_rows(self.output.fills)
        for row, f in zip(rows, self.output.fills, strict=True):
            row["market"] = f.market
        return {"summary": self.summary, "fills": rows,
                "equity": {"ts_ms": self.equity_ts.tolist(), "krw": self.equity.tolist()},
                "refusals": [{"ts_ms": r.ts_ms, "time_kst": kst(r.ts_ms), "market": r.market,
                              "reason": r.reason, "repeats": r.repeats} for r in self.output.refusals],
                "rejected_orders": self.output.rejected}


def run_portfolio_backtest(portfolio: str | Path | Any, data_dir: str | Path, *, start: str | None = None,
                           end: str | None = None, krw: Decimal = Decimal(10_000_000), seed: int = 0,
                           ticks_per_candle: int = TICKS_PER_CANDLE,
                           progress: ProgressFn | None = None) -> PortfolioResult:
    """Backtest a portfolio file (or a loaded PortfolioSpec) over the candle files in `data_dir`."""
    from trader.portfolio_file import PortfolioSpec, load_portfolio
    from trader.risk import RiskGate

    spec = portfolio if isinstance(portfolio, PortfolioSpec) else load_portfolio(portfolio)
    if spec.is_dynamic:
        raise MarketDataError(f"{spec.source}: markets: a dynamic selection needs live quotes; list the "
                              "markets to backtest (markets: [KRW-BTC, KRW-ETH, ...])")
    markets = list(spec.markets)
    files = find_data_files(data_dir, markets)
    trades: dict[str, TradeArrays] = {}
    closes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    bounds: list[tuple[int, int]] = []
    for m in markets:
        kind, frame = load_frame(files[m])
        if kind != "candles":
            raise MarketDataError(f"{files[m]}: the portfolio backtest reads candles")
        interval = infer_interval_ms(frame)
        frame = slice_time(frame, start, end)
        if len(frame) == 0:
            raise MarketDataError(f"{files[m]}: no candles of {m} in the chosen period")
        trades[m] = synthesize_trades(frame, ticks_per_candle=ticks_per_candle, seed=seed,
                                      interval_ms=interval)
        ts = frame["ts_ms"].to_numpy(np.int64)
        closes[m] = (ts + interval, frame["close"].to_numpy(np.float64))
        bounds.append((int(ts[0]), int(ts[-1] + interval)))
    gate = RiskGate(spec.risk, spec.allocation)
    configs = {m: spec.strategy_for(m) for m in markets}
    bt = PortfolioBacktest(configs, trades, krw=krw, seed=seed, gate=gate, risk_view=risk_view,
                           progress=progress)
    out = bt.run()
    marks = _marks(closes)
    equity = _equity(out, marks)
    start_ms, end_ms = min(b[0] for b in bounds), max(b[1] for b in bounds)
    k0 = float(out.krw_start)
    end_equity = float(out.final_krw) + sum(float(out.final_volumes[m]) * out.last_prices.get(m, 0.0)
                                            for m in markets)
    trips = metric_trips(out.fills)
    closed = [t for t in trips if t.exit_ts is not None]
    fig = figures(closed=closed, trips=trips, fills=out.fills, start_ms=start_ms, end_ms=end_ms,
                  start_equity=k0, end_equity=end_equity, curve=np.r_[k0, equity],
                  day_equity=step_at(marks.ts, equity, day_boundaries(start_ms, end_ms), k0))
    st, risk = fig.trades, fig.risk
    summary = {
        "portfolio": spec.name, "source": spec.source, "markets": {},
        "from": kst(start_ms), "to": kst(end_ms), "ticks": out.ticks,
        "krw_start": k0, "equity_end": end_equity, "return_pct": fig.return_pct,
        "max_drawdown_pct": fig.max_drawdown_pct,
        "trades": st.trades, "open_trades": len(trips) - len(closed),
        "wins": st.wins, "win_rate_pct": st.win_rate * 100 if st.win_rate is not None else 0.0,
        "fills": len(out.fills), "fees": float(fig.fees), "exposure_pct": fig.exposure_pct,
        "sharpe": risk.sharpe, "sortino": risk.sortino, "calmar": risk.calmar,
        "profit_factor": st.profit_factor,
        "max_open_positions": spec.risk.max_open_positions, "max_open_seen": out.max_open_seen,
        "refusals": sum(r.repeats for r in out.refusals), "rejected_orders": len(out.rejected),
        "seed": seed, "ticks_per_candle": ticks_per_candle,
        "wall_s": out.wall_s, "fingerprint": fingerprint(out.fills),
    }
    for m in markets:
        summary["markets"][m] = _market_figures(m, [f for f in out.fills if f.market == m], out)
    return PortfolioResult(summary, out, marks.ts, equity)


def risk_view(bt: PortfolioBacktest, ts: int) -> Any:
    """What the risk gate sees of a portfolio backtest's ledger at market time `ts`."""
    from trader.risk import RiskView

    equity = bt.equity()
    positions = {}
    for m in bt.markets:
        px = bt.last_prices.get(m)
        vol = bt.portfolio.position(m).volume
        if px is not None and vol:
            positions[m] = vol * Decimal(repr(px))
    krw_free = bt.portfolio.krw - bt.execution.reserved_krw()
    gate = bt.gate
    on_equity = getattr(gate, "on_equity", None)
    if on_equity is not None:
        on_equity(ts, equity)
    return RiskView(ts_ms=ts, equity=equity, krw_free=krw_free, positions=positions,
                    open_positions=bt.open_positions())


def render_portfolio_table(summary: dict) -> str:
    """The portfolio's figures, then one line per market."""
    s = summary
    dd = s["max_drawdown_pct"]
    lines = [
        f"period (KST)      {s['from']} → {s['to']}",
        f"markets           {', '.join(s['markets'])}",
        f"start KRW         {s['krw_start']:,.0f}",
        f"end equity KRW    {s['equity_end']:,.0f}",
        f"return            {s['return_pct']:+.2f} %",
        f"max drawdown      {dd:.2f} %",
        f"trades            {s['trades']}" + (f" (+{s['open_trades']} open)" if s["open_trades"] else ""),
        f"win rate          {s['win_rate_pct']:.1f} %",
        f"fills             {s['fills']}",
        f"fees KRW          {s['fees']:,.0f}",
        f"open positions    at most {s['max_open_seen']} (limit {s['max_open_positions']})",
        f"refused entries   {s['refusals']}",
        f"synthetic fills   seed {s['seed']}, {s['ticks_per_candle']} trades per candle",
        f"fingerprint       {s['fingerprint'][:16]}",
        "",
        f"{'market':10} {'trades':>6} {'win %':>6} {'P&L KRW':>12} {'fees KRW':>10} {'fills':>6}",
    ]
    for m, r in s["markets"].items():
        lines.append(f"{m:10} {r['trades']:>6} {r['win_rate_pct']:>6.1f} {r['pnl_krw']:>12,.0f} "
                     f"{r['fees']:>10,.0f} {r['fills']:>6}")
    return "\n".join(lines)
