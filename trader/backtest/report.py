"""Backtest results as a summary dict, a text table, CSV and JSON rows — formatting only.

Every figure (round trips, return, drawdown, win rate, exposure, fees, Sharpe/Sortino/Calmar,
profit factor, expectancy, holding time) comes from `trader.metrics`, the module the e-mailed
report uses too; its docstring defines them (drawdown is a negative percent). Here: equity =
KRW + coin marked at each candle close (no prospective sell fee), the period runs from the first
candle's open (or first trade) to the last close; buy-and-hold buys the first trade and sells
the last one, paying both fees. The fingerprint is `trader.fingerprint`'s.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from trader.backtest.runner import FillRecord, RunOutput
from trader.fingerprint import fingerprint
from trader.metrics import RoundTrip, day_boundaries, figures, step_at
from trader.metrics import round_trips as metric_trips
from trader.reporting.i18n import duration
from trader.timeutil import ms_to_datetime
from trader.upbit.rules import FEE_RATE, format_decimal

KST_OFFSET = timedelta(hours=9)


def kst(ts_ms: int) -> str:
    return (ms_to_datetime(ts_ms) + KST_OFFSET).strftime("%Y-%m-%d %H:%M:%S")


def trip_row(t: RoundTrip) -> dict:
    """A round trip as the backtest's JSON lists it."""
    closed = t.exit_ts is not None
    return {"no": t.no, "entry_ts": t.entry_ts, "entry_kst": kst(t.entry_ts),
            "exit_ts": t.exit_ts, "exit_kst": kst(t.exit_ts) if t.exit_ts is not None else None,
            "volume": format_decimal(t.bought), "cost": format_decimal(t.cost),
            "proceeds": format_decimal(t.proceeds),
            "pnl": format_decimal(t.pnl) if closed else None,
            "return_pct": t.return_pct, "hold_s": t.hold_ms / 1000 if t.hold_ms is not None else None,
            "exits": t.exits}


def round_trips(fills: list[FillRecord], market: str = "") -> list[RoundTrip]:
    """The backtest's fills (one market) as `trader.metrics` round trips."""
    return metric_trips(fills, market=market)


def equity_curve(out: RunOutput, mark_ts: np.ndarray, mark_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equity and coin volume at each mark (e.g. every candle close), from the fills."""
    f_ts = np.array([f.ts_ms for f in out.fills], dtype=np.int64)
    krw = step_at(f_ts, np.array([float(f.krw_after) for f in out.fills]), mark_ts, float(out.krw_start))
    vol = step_at(f_ts, np.array([float(f.volume_after) for f in out.fills]), mark_ts, 0.0)
    return krw + vol * mark_px, vol


def _float(x: Decimal | None) -> float | None:
    return None if x is None else float(x)


def summarize(out: RunOutput, mark_ts: np.ndarray, mark_px: np.ndarray, *, first_price: float,
              last_price: float, candles: int | None, start_ms: int, end_ms: int) -> dict:
    """The summary dict (the JSON's `summary`); every figure comes from `trader.metrics`."""
    equity, _ = equity_curve(out, mark_ts, mark_px)
    trips = round_trips(out.fills, out.market)
    closed = [t for t in trips if t.exit_ts is not None]
    k0 = float(out.krw_start)
    end_equity = float(out.final_krw) + float(out.final_volume) * last_price
    bounds = day_boundaries(start_ms, end_ms)
    fig = figures(closed=closed, trips=trips, fills=out.fills, start_ms=start_ms, end_ms=end_ms,
                  start_equity=k0, end_equity=end_equity, curve=np.r_[k0, equity],
                  day_equity=step_at(mark_ts, equity, bounds, k0))
    st, risk = fig.trades, fig.risk
    fee = float(FEE_RATE)
    bnh = (last_price / first_price) * (1 - fee) / (1 + fee) - 1.0 if first_price else 0.0
    return {
        "market": out.market,
        "from": kst(start_ms), "to": kst(end_ms),
        "candles": candles, "ticks": out.ticks, "ticks_processed": out.processed,
        "krw_start": k0, "equity_end": end_equity,
        "return_pct": fig.return_pct,
        "max_drawdown_pct": fig.max_drawdown_pct,  # ≤ 0
        "trades": st.trades, "open_trades": len(trips) - len(closed),
        "wins": st.wins, "win_rate_pct": st.win_rate * 100 if st.win_rate is not None else 0.0,
        "fills": len(out.fills), "fees": float(fig.fees),
        "exposure_pct": fig.exposure_pct,
        "buy_and_hold_pct": bnh * 100,
        "sharpe": risk.sharpe, "sortino": risk.sortino, "calmar": risk.calmar,
        "profit_factor": st.profit_factor, "expectancy_krw": _float(st.expectancy),
        "avg_hold_s": st.avg_hold_s,
        "rejected_orders": len(out.rejected),
        "wall_s": out.wall_s,
        "fingerprint": fingerprint(out.fills),
    }


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render_table(summary: dict) -> str:
    s = summary
    rows = [
        ("market", s["market"]),
        ("period (KST)", f"{s['from']} → {s['to']}"),
        ("candles / trades replayed", f"{s['candles'] or '-':,} / {s['ticks']:,}"
         if s["candles"] else f"- / {s['ticks']:,}"),
        ("start KRW", f"{s['krw_start']:,.0f}"),
        ("end equity KRW", f"{s['equity_end']:,.0f}"),
        ("return", f"{s['return_pct']:+.2f} %"),
        ("buy & hold", f"{s['buy_and_hold_pct']:+.2f} %"),
        ("max drawdown", f"{s['max_drawdown_pct']:.2f} %"),  # negative: printed with its sign
        ("trades (round trips)",
         f"{s['trades']}" + (f" (+{s['open_trades']} open)" if s["open_trades"] else "")),
        ("win rate", f"{s['win_rate_pct']:.1f} %"),
        ("fills", f"{s['fills']}"),
        ("fees KRW", f"{s['fees']:,.0f}"),
        ("exposure", f"{s['exposure_pct']:.1f} %"),
        ("profit factor", _opt(s["profit_factor"], ".2f")),
        ("expectancy KRW / trade", _opt(s["expectancy_krw"], "+,.0f")),
        ("avg holding time", duration(s["avg_hold_s"], "en")),
        ("Sharpe / Sortino / Calmar", " / ".join(_opt(s[k], ".2f") for k in ("sharpe", "sortino", "calmar"))
         + " (daily at 09:00 KST, 365-day year)"),
        ("wall time", f"{s['wall_s']:.2f} s ({s['ticks_processed']:,} trades through on_tick)"),
        ("fingerprint", s["fingerprint"][:16]),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def render_trips(trips: list[RoundTrip], limit: int = 20) -> str:
    lines = [f"{'#':>4}  {'entry (KST)':19}  {'exit (KST)':19}  {'P&L KRW':>12}  {'ret %':>7}  exits"]
    shown = trips if len(trips) <= limit else trips[-limit:]
    for t in shown:
        if t.exit_ts is None:  # still open at the end: no realised P&L to show
            exits = ",".join(t.exits)
            lines.append(f"{t.no:>4}  {kst(t.entry_ts)}  {'open':19}  {'-':>12}  {'-':>7}  {exits}")
            continue
        ret = t.return_pct or 0.0
        lines.append(f"{t.no:>4}  {kst(t.entry_ts)}  {kst(t.exit_ts):19}  "
                     f"{float(t.pnl):>12,.0f}  {ret:>+7.2f}  {','.join(t.exits)}")
    if len(trips) > limit:
        lines.insert(1, f"  … {len(trips) - limit} earlier trips (see --trades / --json)")
    return "\n".join(lines)


FILL_COLUMNS = ["ts_ms", "time_kst", "side", "reason", "price", "volume", "funds", "fee", "krw_after",
                "volume_after", "intent_id"]


def fill_rows(fills: list[FillRecord]) -> list[dict]:
    return [{"ts_ms": f.ts_ms, "time_kst": kst(f.ts_ms), "side": f.side, "reason": f.reason,
             "price": format_decimal(f.price), "volume": format_decimal(f.volume),
             "funds": format_decimal(f.funds), "fee": format_decimal(f.fee),
             "krw_after": format_decimal(f.krw_after), "volume_after": format_decimal(f.volume_after),
             "intent_id": f.intent_id} for f in fills]


def write_fills_csv(path: str | Path, fills: list[FillRecord]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FILL_COLUMNS)
        writer.writeheader()
        writer.writerows(fill_rows(fills))
