"""The report's charts as phone-sized PNGs (1080 px wide), drawn headless.

Uses matplotlib's object API (`Figure` + Agg canvas) rather than pyplot: no global figure state,
no GUI backend, safe in a worker thread. Seaborn supplies the style and the bar plots. Korean
labels need the Hangul font from `fonts.py`; without one the labels fall back to English.
Colours follow the reader: in Korean, red means up and blue down (Upbit's convention).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from trader.reporting.fonts import chart_rc, quiet_glyph_warnings
from trader.reporting.i18n import pct, reason_label, t
from trader.reporting.metrics import PeriodMetrics, ReportMetrics

WIDTH_IN, DPI = 4.5, 240  # 1080 px wide; 9–11 pt text stays readable when a phone scales it down
MAX_PLOT_POINTS = 2_000  # equity/price lines are decimated to this many min/max buckets
MAX_MARKERS = 2_000  # buy/sell markers drawn on the price chart at most (an even sample)
KST_MS = 9 * 3_600_000

REASON_COLOURS = {
    "entry": "#7f7f7f",
    "take_profit": "#2ca02c",
    "take_profit_1": "#98df8a",
    "take_profit_2": "#2ca02c",
    "take_profit_3": "#006d2c",
    "stop_loss": "#d62728",
    "trailing_stop": "#ff7f0e",
    "sharp_drop": "#9467bd",
    "max_hold": "#8c564b",
    "reversal": "#1f77b4",
}


@dataclass(frozen=True)
class Palette:
    up: str
    down: str


def palette(lang: str) -> Palette:
    return Palette(up="#d62728", down="#1f5fbf") if lang == "ko" else Palette(up="#2ca02c", down="#d62728")


def _kst_times(ts_ms: np.ndarray) -> np.ndarray:
    """UTC ms → naive KST datetimes for the x axis (KST has no DST: a fixed offset is exact)."""
    return (np.asarray(ts_ms, dtype="int64") + KST_MS).astype("datetime64[ms]")


def decimate(
    ts: np.ndarray, values: np.ndarray, max_points: int = MAX_PLOT_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most ~max_points points keeping each bucket's min and max (peaks and troughs survive,
    so a drawdown drawn from the decimated line is as deep as the real one)."""
    n = len(ts)
    if n <= max_points:
        return ts, values
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    idx = []
    for a, b in itertools.pairwise(edges):
        if b <= a:
            continue
        seg = values[a:b]
        i_min, i_max = a + int(np.argmin(seg)), a + int(np.argmax(seg))
        idx.extend(sorted({i_min, i_max}))
    idx_arr = np.array(idx, dtype=int)
    return ts[idx_arr], values[idx_arr]


def _short(v: float, unit: float, suffix: str) -> str:
    # up to 2 decimals, trailing zeros dropped: ticks 1,015,000 and 1,020,000 read 101.5만 and 102만
    text = f"{v / unit:,.2f}".rstrip("0").rstrip(".")
    return f"{text}{suffix}"


def _krw_formatter(lang: str) -> FuncFormatter:
    def fmt(v: float, _pos: object) -> str:
        a = abs(v)
        if lang == "ko":
            if a >= 1e8:
                return _short(v, 1e8, "억")
            if a >= 1e4:
                return _short(v, 1e4, "만")
            return f"{v:,.0f}"
        if a >= 1e9:
            return _short(v, 1e9, "B")
        if a >= 1e6:
            return _short(v, 1e6, "M")
        if a >= 1e3:
            return _short(v, 1e3, "k")
        return f"{v:,.0f}"

    return FuncFormatter(fmt)


# numeric dates read the same in both languages (no English month names in a Korean chart)
_DATE_FORMATS = ["%Y", "%Y-%m", "%m-%d", "%H:%M", "%H:%M", "%S.%f"]
_DATE_OFFSETS = ["", "%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]


def _date_formatter(locator: object) -> object:
    import matplotlib.dates as mdates

    return mdates.ConciseDateFormatter(locator, formats=_DATE_FORMATS, offset_formats=_DATE_OFFSETS)


def _new_figure(
    height_in: float, rows: int = 1, ratios: tuple[float, ...] | None = None
) -> tuple[Figure, list]:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    if rows == 1:
        return fig, [fig.add_subplot(1, 1, 1)]
    axes = fig.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": list(ratios or [1] * rows)})
    return fig, list(axes)


def _date_axis(ax: object, start: int, end: int) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)  # type: ignore[attr-defined]
    ax.xaxis.set_major_formatter(_date_formatter(locator))  # type: ignore[attr-defined]
    ax.set_xlim(_kst_times(np.array([start]))[0], _kst_times(np.array([end]))[0])  # type: ignore[attr-defined]


def _empty_note(ax: object, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="#555")  # type: ignore[attr-defined]


def _window_curve(metrics: ReportMetrics, pm: PeriodMetrics) -> tuple[np.ndarray, np.ndarray]:
    """Equity points inside the window, framed by the exact ledger values at its two ends."""
    c = metrics.curve
    ts = c["ts_ms"].to_numpy(dtype="int64")
    lo, hi = np.searchsorted(ts, pm.start_ms, "left"), np.searchsorted(ts, pm.end_ms, "left")
    t_all = np.concatenate([[pm.start_ms], ts[lo:hi], [pm.end_ms - 1]])
    v_all = np.concatenate(
        [[float(pm.start_equity)], c["equity"].to_numpy(dtype="float64")[lo:hi], [float(pm.end_equity)]]
    )
    return t_all, v_all


def chart_equity(metrics: ReportMetrics, pm: PeriodMetrics, lang: str, path: Path) -> Path:
    ts, eq = _window_curve(metrics, pm)
    ts, eq = decimate(ts, eq)
    peak = np.maximum.accumulate(eq)
    dd = np.where(peak > 0, eq / peak - 1.0, 0.0) * 100
    fig, (ax, ax_dd) = _new_figure(3.6, rows=2, ratios=(2.6, 1))
    x = _kst_times(ts)
    ax.plot(x, eq, color="#1f3b73", lw=1.2, drawstyle="steps-post")
    ax.axhline(float(pm.start_equity), color="#999", lw=0.7, ls="--")
    ax.yaxis.set_major_formatter(_krw_formatter(lang))
    ax.set_title(t("chart_equity", lang), fontsize=11, loc="left")
    ax.set_ylabel(t("equity", lang), fontsize=9)
    if not pm.has_trades:
        ax.text(
            0.02, 0.06, t("no_trades", lang).split(".")[0], transform=ax.transAxes, fontsize=8, color="#555"
        )
    ax_dd.fill_between(x, dd, 0, color=palette(lang).down, alpha=0.35, step="post", lw=0)
    ax_dd.plot(x, dd, color=palette(lang).down, lw=0.8, drawstyle="steps-post")
    ax_dd.set_ylabel(t("drawdown", lang) + " %", fontsize=9)
    ax_dd.set_ylim(min(float(dd.min()) * 1.15, -0.5), 0.05)
    _date_axis(ax_dd, pm.start_ms, pm.end_ms)
    return _save(fig, path)


def chart_price(metrics: ReportMetrics, pm: PeriodMetrics, lang: str, path: Path) -> Path:
    fig, (ax,) = _new_figure(3.2)
    market = pm.main_market
    ax.set_title(t("chart_price", lang) + (f" · {market}" if market else ""), fontsize=11, loc="left")
    if market is None:
        _empty_note(ax, t("no_data", lang))
        ax.set_yticks([])
        _date_axis(ax, pm.start_ms, pm.end_ms)
        return _save(fig, path)
    p_ts, p_px = metrics.prices.series(market)
    lo, hi = np.searchsorted(p_ts, pm.start_ms, "left"), np.searchsorted(p_ts, pm.end_ms, "left")
    ts, px = decimate(p_ts[lo:hi], p_px[lo:hi])
    if len(ts):
        ax.plot(_kst_times(ts), px, color="#444", lw=0.9)
    else:
        _empty_note(ax, t("no_data", lang))
    rp = metrics.replay
    a, b = np.searchsorted(rp.fill_ts, pm.start_ms, "left"), np.searchsorted(rp.fill_ts, pm.end_ms, "left")
    fills = [f for f in rp.fills[a:b] if f.market == market]
    if fills:
        df = pd.DataFrame(
            {
                "ts": [f.ts_ms for f in fills],
                "price": [float(f.price) for f in fills],
                "reason": [f.reason or "?" for f in fills],
                "buy": [f.side.value == "bid" for f in fills],
            }
        )
        n_total = len(df)
        for (reason, is_buy), g in df.groupby(["reason", "buy"], sort=True):
            # a year holds ~100k fills: draw an even sample (each group keeps its share, at least
            # 50) — unreadable on a phone otherwise, and seconds of drawing
            cap = max(50, MAX_MARKERS * len(g) // n_total)
            if len(g) > cap:
                g = g.iloc[np.linspace(0, len(g) - 1, cap).astype(int)]
            ax.scatter(
                _kst_times(g["ts"].to_numpy()),
                g["price"],
                marker="^" if is_buy else "v",
                s=26 if n_total < 200 else 8,
                color=REASON_COLOURS.get(str(reason), "#17becf"),
                edgecolor="white",
                linewidth=0.4,
                zorder=3,
                label=f"{reason_label(str(reason), lang)} ({t('buy' if is_buy else 'sell', lang)})",
            )
        # below the plot: never covers the price line, and no costly "best" placement search
        ax.legend(
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            frameon=False,
            ncol=2,
            markerscale=1.5 if n_total >= 200 else 1.0,
        )
    ax.yaxis.set_major_formatter(_krw_formatter(lang))
    _date_axis(ax, pm.start_ms, pm.end_ms)
    return _save(fig, path)


def chart_daily(metrics: ReportMetrics, pm: PeriodMetrics, lang: str, path: Path) -> Path:
    # a single day is one bar: show the month to date around it instead
    ctx = metrics.summary["month"] if pm.period == "day" else pm
    daily = ctx.daily
    fig, (ax,) = _new_figure(2.8)
    ax.set_title(t("chart_weekly" if len(daily) > 120 else "chart_daily", lang), fontsize=11, loc="left")
    if len(daily) == 0:
        _empty_note(ax, t("no_data", lang))
        return _save(fig, path)
    weekly = len(daily) > 120
    if weekly:  # a long history: weekly bars stay legible on a phone
        d = daily.copy()
        d["week"] = pd.to_datetime(d["day"]).dt.to_period("W").dt.start_time
        g = d.groupby("week").agg(equity_start=("equity_start", "first"), equity_end=("equity_end", "last"))
        daily = pd.DataFrame(
            {"day": g.index.date, "ret": (g["equity_end"] / g["equity_start"] - 1).to_numpy() * 100}
        )
    pal = palette(lang)
    x = list(pd.to_datetime(daily["day"]).dt.to_pydatetime())
    ret = daily["ret"].to_numpy(dtype="float64")
    colours = [pal.up if r > 0 else pal.down if r < 0 else "#aaa" for r in ret]
    # explicit timedeltas: a float width is read in the axis' own date unit, which varies
    width = timedelta(days=5) if weekly else timedelta(hours=19)
    ax.bar(x, ret, color=colours, width=width, edgecolor="none")
    ax.axhline(0, color="#666", lw=0.6)
    if pm.period == "day":  # the report's day is the month's last bar: outline it
        ax.bar([x[-1]], [ret[-1]], color=colours[-1], width=width, edgecolor="black", linewidth=1.0)
    span = float(np.abs(ret).max()) if len(ret) else 0.0
    digits = 2 if span < 1 else 1  # small moves need the second decimal or ticks repeat
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: pct(v, digits=digits)))
    import matplotlib.dates as mdates

    n_days = max(1, (x[-1] - x[0]).days)
    if weekly:
        locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(_date_formatter(locator))
    else:  # plain day ticks: no month-start label crowding its neighbour
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, -(-n_days // 5))))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    pad_ = width * 0.8
    ax.set_xlim(x[0] - pad_, x[-1] + pad_)
    return _save(fig, path)


def chart_reasons(metrics: ReportMetrics, pm: PeriodMetrics, lang: str, path: Path) -> Path:
    rows = [r for r in pm.by_reason if r.reason != "entry"]
    fig, (ax,) = _new_figure(max(2.2, 0.9 + 0.45 * len(rows)))
    ax.set_title(t("chart_reasons", lang), fontsize=11, loc="left")
    if not rows:
        _empty_note(ax, t("no_sells", lang))
        ax.set_xticks([])
        ax.set_yticks([])
        return _save(fig, path)
    df = pd.DataFrame(
        {
            "reason": [reason_label(r.reason, lang) for r in rows] * 2,
            "krw": [float(r.realized_pnl) for r in rows] + [float(r.vs_hold) for r in rows],
            "kind": [t("realized", lang)] * len(rows) + [t("vs_hold", lang)] * len(rows),
        }
    )
    sns.barplot(data=df, y="reason", x="krw", hue="kind", ax=ax, palette=["#1f3b73", "#9ecae1"], orient="h")
    ax.axvline(0, color="#666", lw=0.6)
    ax.xaxis.set_major_formatter(_krw_formatter(lang))
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.legend(fontsize=7, loc="best", title=None)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


CHARTS = (
    ("equity", chart_equity),
    ("price", chart_price),
    ("daily", chart_daily),
    ("reasons", chart_reasons),
)


def render_charts(
    metrics: ReportMetrics, out_dir: Path, lang: str, *, font_path: str | None = None
) -> tuple[dict[str, Path], str]:
    """Draw every chart of the main period into out_dir; ({name: png path}, label language)."""
    rc, eff_lang = chart_rc(lang, font_path)
    style = dict(sns.axes_style("whitegrid"))
    style.update(rc)
    style.update({"xtick.labelsize": 8, "ytick.labelsize": 8})
    out: dict[str, Path] = {}
    with mpl.rc_context(style), quiet_glyph_warnings():
        for name, fn in CHARTS:
            out[name] = fn(metrics, metrics.main, eff_lang, out_dir / f"{name}.png")
    return out, eff_lang
