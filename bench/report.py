"""Benchmark of the report: a year of synthetic activity → metrics, charts and HTML.

Builds 25,000 round trips (100,000 fills: an entry, two take-profits or stops, a final exit)
on the 2024 KRW-ETH 15-minute closes in data/ (padded to 35,040 points, one per 15 minutes),
plus one equity point per price point, then times each stage of a day report and of a
since-start report (the heaviest: 100,000 markers and 35,000 equity points on the charts).
Prints wall seconds per stage; the target is < 10 s for the whole since-start report.

    .venv/bin/python bench/report.py
    .venv/bin/python bench/report.py --sample docs/sample-report.png   # the README's picture
"""

from __future__ import annotations

import sys
import tempfile
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trader.domain import Fill, Side  # noqa: E402
from trader.reporting.charts import render_charts  # noqa: E402
from trader.reporting.inputs import ReportInputs  # noqa: E402
from trader.reporting.metrics import compute_metrics  # noqa: E402
from trader.reporting.periods import trading_day  # noqa: E402
from trader.reporting.render import render_html, render_text  # noqa: E402

MARKET = "KRW-ETH"
ROUND_TRIPS = 25_000
POINTS = 35_040  # 365 days × 96 quarter hours
FEE = Decimal("0.0005")
EXITS = ("take_profit_1", "take_profit_2", "stop_loss", "trailing_stop", "sharp_drop", "reversal")


def prices() -> pd.DataFrame:
    candles = pd.read_parquet(ROOT / "data" / "KRW-ETH_15m_2024.parquet", columns=["ts_ms", "close"])
    ts = candles["ts_ms"].to_numpy("int64")
    close = candles["close"].to_numpy("float64")
    grid = ts[0] + np.arange(POINTS, dtype="int64") * 900_000  # regular grid; gaps take the last close
    idx = np.clip(np.searchsorted(ts, grid, side="right") - 1, 0, len(ts) - 1)
    return pd.DataFrame({"ts_ms": grid, "market": MARKET, "price": close[idx]})


def fills(px: pd.DataFrame, seed: int = 7, round_trips: int = ROUND_TRIPS) -> list[Fill]:
    rng = np.random.default_rng(seed)
    grid, close = px["ts_ms"].to_numpy(), px["price"].to_numpy()
    slot = (grid[-1] - grid[0]) // round_trips
    out: list[Fill] = []
    n = 0

    def add(side: Side, volume: Decimal, ts: int, reason: str, drift: float) -> None:
        nonlocal n
        i = min(int(np.searchsorted(grid, ts, side="right")) - 1, len(grid) - 1)
        price = Decimal(int(close[i] * (1 + drift)) // 1000 * 1000)  # on ETH's 1,000-won tick
        funds = price * volume
        out.append(Fill(f"t{n}", f"o{n}", MARKET, side, price, volume, funds, funds * FEE, ts, reason))
        n += 1

    for k in range(round_trips):
        t0 = int(grid[0] + k * slot)
        offs = np.sort(rng.integers(1, slot, size=4))
        price0 = close[min(int(np.searchsorted(grid, t0, side="right")) - 1, len(grid) - 1)]
        vol = (Decimal(100_000) / Decimal(int(price0))).quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)
        part = (vol / 3).quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)
        add(Side.BID, vol, t0 + int(offs[0]), "entry", 0.0)
        reasons = rng.choice(EXITS, size=3)
        drifts = rng.normal(0.002, 0.01, size=3)
        add(Side.ASK, part, t0 + int(offs[1]), str(reasons[0]), float(drifts[0]))
        add(Side.ASK, part, t0 + int(offs[2]), str(reasons[1]), float(drifts[1]))
        add(Side.ASK, vol - 2 * part, t0 + int(offs[3]), str(reasons[2]), float(drifts[2]))
    return out


def equity_points(px: pd.DataFrame, fl: list[Fill], start_krw: Decimal) -> pd.DataFrame:
    """What the engine would have recorded: KRW + volume × price at each price point."""
    f_ts = np.array([f.ts_ms for f in fl], dtype="int64")
    cash = np.cumsum(
        [-(float(f.funds + f.fee)) if f.side is Side.BID else float(f.funds - f.fee) for f in fl]
    )
    vol = np.cumsum([float(f.volume) if f.side is Side.BID else -float(f.volume) for f in fl])
    grid = px["ts_ms"].to_numpy()
    i = np.searchsorted(f_ts, grid, side="right") - 1
    krw = float(start_krw) + np.where(i >= 0, cash[np.clip(i, 0, None)], 0.0)
    coin = np.where(i >= 0, vol[np.clip(i, 0, None)], 0.0)
    return pd.DataFrame(
        {
            "ts_ms": grid,
            "market": MARKET,
            "price": px["price"],
            "krw": krw,
            "coin_volume": coin,
            "equity": krw + coin * px["price"].to_numpy(),
        }
    )


def timed(label: str, fn, results: dict[str, float]):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - t0
    return value


def run_period(period, fl, eq, px, start_krw, day, out: Path) -> float:  # type: ignore[no-untyped-def]
    r: dict[str, float] = {}
    inputs = timed(
        "inputs", lambda: ReportInputs(fills=fl, equity=eq, prices=px, starting_equity=start_krw), r
    )
    m = timed("metrics", lambda: compute_metrics(inputs, period=period, day=day), r)
    timed("charts", lambda: render_charts(m, out, "ko"), r)
    timed(
        "html+text",
        lambda: (
            render_html(m, lang="ko", day=day, image_src={"equity": "cid:x"}),
            render_text(m, lang="ko", day=day),
        ),
        r,
    )
    total = sum(r.values())
    stages = "  ".join(f"{k} {v:.2f}s" for k, v in r.items())
    print(
        f"period={period:4s} total {total:.2f} s  |  {stages}  "
        f"| {m.main.n_fills:,} fills, {m.main.n_trades:,} trades, P&L {m.main.pnl:,.0f} KRW"
    )
    if total >= 10:
        print("WARNING: above the 10 s target")
    return total


def sample_png(dest: Path) -> None:
    """docs/sample-report.png: the header and the four charts of a sample month-to-date report."""
    from PIL import Image, ImageDraw, ImageFont

    from trader.reporting.fonts import BUNDLED_FONT
    from trader.reporting.i18n import pct, won
    from trader.reporting.report import build_report

    px = prices()
    fl = fills(px, seed=3, round_trips=1_500)
    start_krw = Decimal(10_000_000)
    inputs = ReportInputs(
        fills=fl, equity=equity_points(px, fl, start_krw), prices=px, starting_equity=start_krw
    )
    day = trading_day(int(px["ts_ms"].iloc[0]) + 75 * 86_400_000)
    with tempfile.TemporaryDirectory() as tmp:
        rep = build_report(inputs, period="month", day=day, lang="ko", out_dir=Path(tmp))
        tiles = [Image.open(rep.paths[n]).convert("RGB") for n in ("equity", "price", "daily", "reasons")]
        half = [t.resize((540, round(t.height * 540 / t.width)), Image.Resampling.LANCZOS) for t in tiles]
        header_h = 120
        row1 = max(half[0].height, half[1].height)
        row2 = max(half[2].height, half[3].height)
        canvas = Image.new("RGB", (1080, header_h + row1 + row2 + 10), "white")
        draw = ImageDraw.Draw(canvas)
        big = ImageFont.truetype(str(BUNDLED_FONT), 34)
        small = ImageFont.truetype(str(BUNDLED_FONT), 22)
        m = rep.metrics.main
        colour = "#d62728" if m.pnl > 0 else "#1f5fbf"
        draw.text((20, 14), rep.subject, font=small, fill="#52606d")
        draw.text((20, 48), f"{won(m.pnl, 'ko', sign=True)}  {pct(m.return_pct)}", font=big, fill=colour)
        draw.text(
            (560, 56),
            f"승률 {m.win_rate * 100:.0f}% · 거래 {m.n_trades} · 최대 낙폭 {pct(m.max_drawdown_pct)}",
            font=small,
            fill="#52606d",
        )
        canvas.paste(half[0], (0, header_h))
        canvas.paste(half[1], (540, header_h))
        canvas.paste(half[2], (0, header_h + row1))
        canvas.paste(half[3], (540, header_h + row1))
        dest.parent.mkdir(parents=True, exist_ok=True)
        canvas.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)
    print(f"wrote {dest} ({dest.stat().st_size / 1024:.0f} KB)")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--sample":
        sample_png(Path(sys.argv[2]))
        return 0
    t_setup = time.perf_counter()
    px = prices()
    fl = fills(px)
    start_krw = Decimal(10_000_000)
    eq = equity_points(px, fl, start_krw)
    setup = time.perf_counter() - t_setup
    last_day = trading_day(int(px["ts_ms"].iloc[-1]) - 1)
    print(
        f"synthetic year: {len(fl):,} fills, {len(eq):,} equity points, {len(px):,} prices "
        f"(built in {setup:.2f} s); report day {last_day}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for period in ("day", "all"):
            run_period(period, fl, eq, px, start_krw, last_day, Path(tmp) / period)
    return 0


if __name__ == "__main__":
    sys.exit(main())
