"""The report as mobile-friendly HTML (single column, inline CSS) and as plain text.

Mail clients strip <style> blocks and ignore most layout CSS, so every style is inline and the
layout is one 600 px column of two-column tables that still fit a 375 px phone screen. Numbers
go through `i18n`'s formatters, the same ones the tests use.
"""

from __future__ import annotations

from datetime import date, datetime
from html import escape

from trader.reporting.charts import palette
from trader.reporting.i18n import (
    display_width,
    duration,
    pad,
    pct,
    price,
    qty,
    ratio,
    reason_label,
    t,
    won,
)
from trader.reporting.metrics import ExitRow, PeriodMetrics, ReportMetrics
from trader.reporting.periods import fmt_kst, period_first_day

FONT = (
    "-apple-system,'Apple SD Gothic Neo','Malgun Gothic','Noto Sans KR',NanumGothic,Roboto,Arial,sans-serif"
)
CHART_ORDER = ("equity", "price", "daily", "reasons")
MAX_EXIT_ROWS = 20  # the latest exits of the period; a month of a busy strategy would fill pages


def period_label(pm: PeriodMetrics, lang: str, day: date) -> str:
    first = period_first_day(day, pm.period)
    return t(f"label_{pm.period}", lang, day=day.isoformat(), first=first.isoformat() if first else "")


def subject(metrics: ReportMetrics, lang: str, day: date) -> str:
    pm = metrics.main
    return t(
        "subject",
        lang,
        label=period_label(pm, lang, day),
        pnl=won(pm.pnl, lang, sign=True),
        ret=pct(pm.return_pct),
    )


def _title(pm: PeriodMetrics, lang: str) -> str:
    return t("title", lang, market=pm.main_market) if pm.main_market else t("title_nomarket", lang)


def key_figures(pm: PeriodMetrics, lang: str) -> list[tuple[str, str]]:
    """(label, value) rows of the main period, shared by the HTML and the text part."""
    rows = [
        (t("start_equity", lang), won(pm.start_equity, lang)),
        (t("end_equity", lang), won(pm.end_equity, lang)),
        (t("pnl", lang), won(pm.pnl, lang, sign=True)),
        (t("return", lang), pct(pm.return_pct)),
        (t("cum_return", lang), pct(pm.cumulative_return_pct)),
        (t("realized", lang), won(pm.realized_pnl, lang, sign=True)),
        (t("unrealized", lang), won(pm.unrealized_pnl, lang, sign=True)),
        (t("fees", lang), won(pm.fees, lang)),
        (t("mdd", lang), f"{pct(pm.max_drawdown_pct)} ({won(-pm.max_drawdown_krw, lang)})"),
        (t("trades", lang), str(pm.n_trades)),
        (t("fills", lang), f"{pm.n_fills} ({t('fills_detail', lang, b=pm.n_buys, s=pm.n_sells)})"),
        (t("win_rate", lang), "-" if pm.win_rate is None else pct(pm.win_rate * 100, sign=False, digits=1)),
        (t("avg_win", lang), won(pm.avg_win, lang, sign=True) if pm.avg_win is not None else "-"),
        (t("avg_loss", lang), won(pm.avg_loss, lang, sign=True) if pm.avg_loss is not None else "-"),
        (t("profit_factor", lang), ratio(pm.profit_factor, lang)),
        (t("expectancy", lang), won(pm.expectancy, lang, sign=True) if pm.expectancy is not None else "-"),
        (t("avg_hold", lang), duration(pm.avg_hold_s, lang)),
        (t("best", lang), won(pm.best_trade, lang, sign=True) if pm.best_trade is not None else "-"),
        (t("worst", lang), won(pm.worst_trade, lang, sign=True) if pm.worst_trade is not None else "-"),
        (t("exposure", lang), pct(pm.exposure_pct, sign=False, digits=1)),
        (t("sharpe", lang), ratio(pm.sharpe, lang)),
        (t("sortino", lang), ratio(pm.sortino, lang)),
        (t("calmar", lang), ratio(pm.calmar, lang)),
    ]
    if pm.main_market:
        rows.append((t("buy_hold", lang, market=pm.main_market), pct(pm.buy_hold_pct)))
    rows.append((t("krw", lang), won(pm.krw_end, lang)))
    return rows


# --- HTML --------------------------------------------------------------------------------------
_TD = "padding:6px 4px;border-bottom:1px solid #eceef1;font-size:14px;"
_TDR = _TD + "text-align:right;white-space:nowrap;"
_TH = "padding:6px 4px;border-bottom:2px solid #d9dde3;font-size:12px;color:#666;text-align:left;"
_THR = _TH + "text-align:right;"
_TABLE = "width:100%;border-collapse:collapse;table-layout:auto;margin:0 0 8px 0;"
_H2 = "font-size:16px;margin:22px 0 8px 0;color:#1f2933;"
_PAGE = (
    f"max-width:600px;margin:0 auto;background:#ffffff;padding:16px 14px;font-family:{FONT};color:#1f2933;"
)


def _signed_colour(value: float, lang: str) -> str:
    pal = palette(lang)
    return pal.up if value > 0 else pal.down if value < 0 else "#1f2933"


def _kv_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(
        f'<tr><td style="{_TD}color:#52606d;">{escape(k)}</td><td style="{_TDR}">{escape(v)}</td></tr>'
        for k, v in rows
    )
    return f'<table role="presentation" style="{_TABLE}">{body}</table>'


def _head(keys: list[str], lang: str) -> str:
    """Header row: the first column left-aligned, the figures right-aligned."""
    cells = [f'<th style="{_TH if i == 0 else _THR}">{escape(t(k, lang))}</th>' for i, k in enumerate(keys)]
    return f"<tr>{''.join(cells)}</tr>"


def _periods_table(metrics: ReportMetrics, lang: str) -> str:
    head = _head(["period", "pnl", "return", "mdd"], lang)
    rows = []
    for key in ("day", "week", "month", "all"):
        pm = metrics.summary[key]
        colour = _signed_colour(float(pm.pnl), lang)
        rows.append(
            f'<tr><td style="{_TD}">{escape(t(key, lang))}</td>'
            f'<td style="{_TDR}color:{colour};">{escape(won(pm.pnl, lang, sign=True))}</td>'
            f'<td style="{_TDR}color:{colour};">{escape(pct(pm.return_pct))}</td>'
            f'<td style="{_TDR}">{escape(pct(pm.max_drawdown_pct))}</td></tr>'
        )
    return f'<table style="{_TABLE}">{head}{"".join(rows)}</table>'


def _reasons_table(pm: PeriodMetrics, lang: str) -> str:
    rows = [r for r in pm.by_reason if r.reason != "entry"]
    if not rows:
        return f'<p style="font-size:14px;color:#52606d;">{escape(t("no_sells", lang))}</p>'
    head = _head(["reason", "count", "realized", "vs_hold"], lang)
    body = "".join(
        f'<tr><td style="{_TD}">{escape(reason_label(r.reason, lang))}</td><td style="{_TDR}">{r.fills}</td>'
        f'<td style="{_TDR}color:{_signed_colour(float(r.realized_pnl), lang)};">'
        f"{escape(won(r.realized_pnl, lang, sign=True))}</td>"
        f'<td style="{_TDR}">{escape(won(r.vs_hold, lang, sign=True))}</td></tr>'
        for r in rows
    )
    note = f'<p style="font-size:12px;color:#7b8794;margin:4px 0;">{escape(t("vs_hold_note", lang))}</p>'
    return f'<table style="{_TABLE}">{head}{body}</table>{note}'


def exit_prices(e: ExitRow, lang: str) -> str:
    """'3,050,000 (발동가 2,952,000, 슬리피지 +3.32%)': the fill price, and the trigger when known."""
    text = price(e.fill_price)
    if e.trigger_price is not None:
        text += (
            f" ({t('trigger_price', lang)} {price(e.trigger_price)}, "
            f"{t('slippage', lang)} {pct(e.slippage_pct)})"
        )
    return text


def _shown_exits(pm: PeriodMetrics) -> tuple[list[ExitRow], int]:
    rows = pm.exits[-MAX_EXIT_ROWS:]
    return rows, len(pm.exits) - len(rows)


def _exits_html(pm: PeriodMetrics, lang: str) -> str:
    rows, hidden = _shown_exits(pm)
    if not rows:
        return f'<p style="font-size:14px;color:#52606d;">{escape(t("no_sells", lang))}</p>'
    small = "font-size:12px;color:#7b8794;"
    head = _head(["time", "fill_price", "realized"], lang)
    body = []
    for e in rows:
        trigger = ""
        if e.trigger_price is not None:
            trigger = (
                f'<br><span style="{small}">{escape(t("trigger_price", lang))} '
                f"{escape(price(e.trigger_price))} · {escape(t('slippage', lang))} "
                f"{escape(pct(e.slippage_pct))}</span>"
            )
        body.append(
            f'<tr><td style="{_TD}">{escape(fmt_kst(e.ts_ms))}<br><span style="{small}">'
            f"{escape(e.market)} · {escape(reason_label(e.reason, lang))}</span></td>"
            f'<td style="{_TDR}">{escape(price(e.fill_price))}{trigger}</td>'
            f'<td style="{_TDR}color:{_signed_colour(float(e.realized_pnl), lang)};">'
            f"{escape(won(e.realized_pnl, lang, sign=True))}</td></tr>"
        )
    note = ""
    if hidden:
        note = f'<p style="{small}margin:4px 0;">{escape(t("exits_more", lang, n=hidden))}</p>'
    return f'<table style="{_TABLE}">{head}{"".join(body)}</table>{note}'


def _positions_html(pm: PeriodMetrics, lang: str) -> str:
    if not pm.positions:
        return f'<p style="font-size:14px;color:#52606d;">{escape(t("no_positions", lang))}</p>'
    parts = []
    for p in pm.positions:
        parts.append(
            f'<p style="font-size:14px;font-weight:bold;margin:10px 0 2px 0;">{escape(p.market)}</p>'
            + _kv_table(
                [
                    (t("volume", lang), qty(p.volume)),
                    (t("avg_price", lang), price(p.avg_buy_price)),
                    (t("price", lang), price(p.price)),
                    (t("value", lang), won(p.value, lang)),
                    (t("unrealized", lang), won(p.unrealized_pnl, lang, sign=True)),
                ]
            )
        )
    return "".join(parts)


def skipped_note(metrics: ReportMetrics, lang: str) -> str | None:
    """The warning shown when the ledger refused fills (the figures then leave them out)."""
    skipped = metrics.replay.skipped
    if not skipped:
        return None
    ids = ", ".join(f.trade_uuid for f, _ in skipped[:5]) + (" …" if len(skipped) > 5 else "")
    return t("skipped", lang, n=len(skipped), ids=ids)


def render_html(
    metrics: ReportMetrics,
    *,
    lang: str,
    day: date,
    image_src: dict[str, str],
    day_start_hour: int = 9,
    generated: datetime | None = None,
) -> str:
    """The HTML report; `image_src` maps chart name → src ("cid:equity" for mail, a file name on disk)."""
    pm = metrics.main
    colour = _signed_colour(float(pm.pnl), lang)
    window = f"{fmt_kst(pm.start_ms)} – {fmt_kst(pm.end_ms)}"
    notice = ""
    if not pm.has_trades:
        notice = (
            '<p style="background:#fff8e1;border-left:4px solid #f0b429;padding:8px 10px;font-size:14px;'
            f'margin:12px 0;">{escape(t("no_trades", lang))}</p>'
        )
    warning = skipped_note(metrics, lang)
    if warning:
        notice += (
            '<p style="background:#fdecea;border-left:4px solid #b42318;padding:8px 10px;font-size:14px;'
            f'margin:12px 0;">{escape(warning)}</p>'
        )
    charts = "".join(
        f'<p style="font-size:13px;color:#52606d;margin:14px 0 4px 0;">{escape(t("chart_" + name, lang))}</p>'
        f'<img src="{escape(image_src[name])}" alt="{escape(t("chart_" + name, lang))}" width="100%" '
        'style="display:block;width:100%;max-width:600px;height:auto;border:0;">'
        for name in CHART_ORDER
        if name in image_src
    )
    when = (generated or datetime.now()).strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(subject(metrics, lang, day))}</title></head>
<body style="margin:0;padding:0;background:#f4f5f7;">
<div style="{_PAGE}">
<h1 style="font-size:19px;margin:0 0 4px 0;">{escape(_title(pm, lang))}</h1>
<p style="font-size:13px;color:#7b8794;margin:0 0 12px 0;">{escape(period_label(pm, lang, day))}
 · {escape(window)}</p>
<p style="font-size:28px;font-weight:bold;margin:0;color:{colour};">{escape(won(pm.pnl, lang, sign=True))}</p>
<p style="font-size:16px;margin:2px 0 0 0;color:{colour};">{escape(pct(pm.return_pct))}
<span style="color:#7b8794;font-size:13px;"> · {escape(t("end_equity", lang))}
 {escape(won(pm.end_equity, lang))}</span></p>
{notice}
<h2 style="{_H2}">{escape(t("summary", lang))}</h2>
{_kv_table(key_figures(pm, lang))}
<h2 style="{_H2}">{escape(t("period", lang))}</h2>
{_periods_table(metrics, lang)}
<h2 style="{_H2}">{escape(t("reasons", lang))}</h2>
{_reasons_table(pm, lang)}
<h2 style="{_H2}">{escape(t("exits", lang))}</h2>
{_exits_html(pm, lang)}
<h2 style="{_H2}">{escape(t("positions", lang))}</h2>
{_positions_html(pm, lang)}
<h2 style="{_H2}">{escape(t("charts", lang))}</h2>
{charts}
<p style="font-size:11px;color:#9aa5b1;margin:18px 0 0 0;">{escape(t("generated", lang, when=when))}<br>
{escape(t("day_note", lang, h=day_start_hour))}<br>
{escape(t("ratios_note", lang, h=day_start_hour))}</p>
</div></body></html>
"""


# --- text --------------------------------------------------------------------------------------
def _text_rows(rows: list[tuple[str, str]]) -> list[str]:
    width = max((display_width(k) for k, _ in rows), default=0)
    return [f"  {pad(k, width)}  {v}" for k, v in rows]


def render_text(
    metrics: ReportMetrics,
    *,
    lang: str,
    day: date,
    day_start_hour: int = 9,
    generated: datetime | None = None,
) -> str:
    pm = metrics.main
    lines = [
        _title(pm, lang),
        f"{period_label(pm, lang, day)} · {fmt_kst(pm.start_ms)} – {fmt_kst(pm.end_ms)}",
        "",
        f"{t('pnl', lang)}: {won(pm.pnl, lang, sign=True)} ({pct(pm.return_pct)})",
    ]
    if not pm.has_trades:
        lines += ["", t("no_trades", lang)]
    if warning := skipped_note(metrics, lang):
        lines += ["", warning]
    lines += ["", f"[{t('summary', lang)}]", *_text_rows(key_figures(pm, lang))]
    lines += ["", f"[{t('period', lang)}]"]
    lines += _text_rows(
        [
            (
                t(k, lang),
                f"{won(metrics.summary[k].pnl, lang, sign=True)}  {pct(metrics.summary[k].return_pct)}  "
                f"{t('mdd', lang)} {pct(metrics.summary[k].max_drawdown_pct)}",
            )
            for k in ("day", "week", "month", "all")
        ]
    )
    lines += ["", f"[{t('reasons', lang)}]"]
    reasons = [r for r in pm.by_reason if r.reason != "entry"]
    if reasons:
        lines += _text_rows(
            [
                (
                    reason_label(r.reason, lang),
                    f"{r.fills}x  {t('realized', lang)} {won(r.realized_pnl, lang, sign=True)}  "
                    f"{t('vs_hold', lang)} {won(r.vs_hold, lang, sign=True)}",
                )
                for r in reasons
            ]
        )
        lines.append("  " + t("vs_hold_note", lang))
    else:
        lines.append("  " + t("no_sells", lang))
    lines += ["", f"[{t('exits', lang)}]"]
    shown, hidden = _shown_exits(pm)
    if hidden:
        lines.append("  " + t("exits_more", lang, n=hidden))
    for e in shown:
        lines.append(
            f"  {fmt_kst(e.ts_ms)}  {e.market}  {reason_label(e.reason, lang)}  "
            f"{t('fill_price', lang)} {exit_prices(e, lang)}  "
            f"{t('realized', lang)} {won(e.realized_pnl, lang, sign=True)}"
        )
    if not shown:
        lines.append("  " + t("no_sells", lang))
    lines += ["", f"[{t('positions', lang)}]"]
    if pm.positions:
        for p in pm.positions:
            lines.append(
                f"  {p.market}  {t('volume', lang)} {qty(p.volume)}"
                f"  {t('avg_price', lang)} {price(p.avg_buy_price)}  {t('price', lang)} {price(p.price)}"
                f"  {t('unrealized', lang)} {won(p.unrealized_pnl, lang, sign=True)}"
            )
    else:
        lines.append("  " + t("no_positions", lang))
    when = (generated or datetime.now()).strftime("%Y-%m-%d %H:%M")
    lines += [
        "",
        t("generated", lang, when=when),
        t("day_note", lang, h=day_start_hour),
        t("ratios_note", lang, h=day_start_hour),
        "",
    ]
    return "\n".join(lines)
