"""Backtest results: round trips, equity curve, summary metrics, fingerprint, table/CSV/JSON.

Conventions: equity = KRW + coin marked at the candle close (no prospective sell fee); a round
trip runs from the buy that opens a position to the sell that empties it, its P&L is net of
every fee; buy-and-hold buys the first trade and sells the last one, paying both fees.
The fingerprint is sha256 over every fill (time, side, price, volume, fee, reason, intent id) —
Jesse's guard that a faster engine still makes exactly the same trades.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from trader.backtest.runner import FillRecord, RunOutput
from trader.fingerprint import fingerprint
from trader.timeutil import ms_to_datetime
from trader.upbit.rules import FEE_RATE, format_decimal

KST_OFFSET = timedelta(hours=9)
_ZERO = Decimal(0)


def kst(ts_ms: int) -> str:
    return (ms_to_datetime(ts_ms) + KST_OFFSET).strftime("%Y-%m-%d %H:%M:%S")




@dataclass
class RoundTrip:
    """Entry to flat; `exit_ts` None while still open at the end."""

    no: int
    entry_ts: int
    exit_ts: int | None
    bought: Decimal
    cost: Decimal  # funds + fees of the buys
    proceeds: Decimal  # funds − fees of the sells
    exits: list[str]

    @property
    def pnl(self) -> Decimal:
        return self.proceeds - self.cost

    def to_dict(self) -> dict:
        return {"no": self.no, "entry_ts": self.entry_ts, "entry_kst": kst(self.entry_ts),
                "exit_ts": self.exit_ts, "exit_kst": kst(self.exit_ts) if self.exit_ts else None,
                "volume": format_decimal(self.bought), "cost": format_decimal(self.cost),
                "proceeds": format_decimal(self.proceeds),
                "pnl": format_decimal(self.pnl) if self.exit_ts else None,
                "return_pct": float(self.pnl / self.cost * 100) if self.cost and self.exit_ts else None,
                "exits": self.exits}


def round_trips(fills: list[FillRecord]) -> list[RoundTrip]:
    trips: list[RoundTrip] = []
    cur: RoundTrip | None = None
    for f in fills:
        if f.side == "bid":
            if cur is None:
                cur = RoundTrip(len(trips) + 1, f.ts_ms, None, _ZERO, _ZERO, _ZERO, [])
                trips.append(cur)
            cur.bought += f.volume
            cur.cost += f.funds + f.fee
        elif cur is not None:
            cur.proceeds += f.funds - f.fee
            if not cur.exits or cur.exits[-1] != f.reason:
                cur.exits.append(f.reason)
            if f.volume_after == 0:
                cur.exit_ts = f.ts_ms
                cur = None
    return trips


def equity_curve(out: RunOutput, mark_ts: np.ndarray, mark_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equity and coin volume at each mark (e.g. every candle close), from the fills."""
    k0 = float(out.krw_start)
    if not out.fills:
        return np.full(mark_ts.shape, k0), np.zeros(mark_ts.shape)
    f_ts = np.array([f.ts_ms for f in out.fills], dtype=np.int64)
    f_krw = np.array([float(f.krw_after) for f in out.fills])
    f_vol = np.array([float(f.volume_after) for f in out.fills])
    idx = np.searchsorted(f_ts, mark_ts, side="right") - 1
    has = idx >= 0
    safe = np.maximum(idx, 0)
    krw = np.where(has, f_krw[safe], k0)
    vol = np.where(has, f_vol[safe], 0.0)
    return krw + vol * mark_px, vol


def summarize(out: RunOutput, mark_ts: np.ndarray, mark_px: np.ndarray, *, first_price: float,
              last_price: float, candles: int | None, start_ms: int, end_ms: int) -> dict:
    equity, vol = equity_curve(out, mark_ts, mark_px)
    trips = round_trips(out.fills)
    closed = [t for t in trips if t.exit_ts is not None]
    wins = sum(1 for t in closed if t.pnl > 0)
    k0 = float(out.krw_start)
    end_equity = float(out.final_krw) + float(out.final_volume) * last_price
    peak = np.maximum.accumulate(np.r_[k0, equity])
    dd = 1.0 - np.r_[k0, equity] / peak
    fee = float(FEE_RATE)
    bnh = (last_price / first_price) * (1 - fee) / (1 + fee) - 1.0 if first_price else 0.0
    fees = sum((f.fee for f in out.fills), _ZERO)
    return {
        "market": out.market,
        "from": kst(start_ms), "to": kst(end_ms),
        "candles": candles, "ticks": out.ticks, "ticks_processed": out.processed,
        "krw_start": k0, "equity_end": end_equity,
        "return_pct": (end_equity / k0 - 1.0) * 100,
        "max_drawdown_pct": float(dd.max()) * 100 if dd.size else 0.0,
        "trades": len(closed), "open_trades": len(trips) - len(closed),
        "wins": wins, "win_rate_pct": (wins / len(closed) * 100) if closed else 0.0,
        "fills": len(out.fills), "fees": float(fees),
        "exposure_pct": float((vol > 0).mean() * 100) if vol.size else 0.0,
        "buy_and_hold_pct": bnh * 100,
        "rejected_orders": len(out.rejected),
        "wall_s": out.wall_s,
        "fingerprint": fingerprint(out.fills),
    }


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
        ("max drawdown", f"{s['max_drawdown_pct']:.2f} %"),
        ("trades (round trips)",
         f"{s['trades']}" + (f" (+{s['open_trades']} open)" if s["open_trades"] else "")),
        ("win rate", f"{s['win_rate_pct']:.1f} %"),
        ("fills", f"{s['fills']}"),
        ("fees KRW", f"{s['fees']:,.0f}"),
        ("exposure", f"{s['exposure_pct']:.1f} %"),
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
        ret = float(t.pnl / t.cost * 100) if t.cost else 0.0
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
