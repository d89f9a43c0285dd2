"""The optimisation report as one HTML file (charts embedded): what a search found and whether it held.

Written by O2's `flows/optimize.py` (`--html OUT`) from the run's result document — the same
document `--json` writes — and reads the study itself only for parameter importance
(`optuna.importance`, fANOVA). Sections: the optimisation history (each trial's value, the best
so far), parameter importance, the best trials' parameters side by side, and for walk-forward the
out-of-sample equity curve against buy-and-hold over the same test windows and the
in-sample/out-of-sample table. Charts follow the trading report (trader/reporting/charts.py):
matplotlib's object API, Seaborn's whitegrid style, the bundled Hangul font, Korean or English,
red-up/blue-down in Korean. No Prefect here: trader/ never imports it.
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trader.reporting.charts import _date_axis, _krw_formatter, _kst_times, decimate, palette
from trader.reporting.fonts import chart_rc, quiet_glyph_warnings
from trader.reporting.i18n import pct

WIDTH_IN, DPI = 6.0, 160
BEST_ROWS = 5

_WORDS: dict[str, tuple[str, str]] = {
    "title": ("파라미터 최적화 리포트", "Parameter optimisation report"),
    "history": ("최적화 이력", "Optimisation history"),
    "trial": ("시행", "Trial"),
    "value": ("목표값", "Objective"),
    "best_so_far": ("현재까지 최고", "Best so far"),
    "pruned": ("제외(거래 부족 등)", "Pruned (too few trades, ...)"),
    "importance": ("파라미터 중요도", "Parameter importance"),
    "importance_none": ("중요도를 계산할 시행이 부족합니다.", "Too few scored trials for importance."),
    "best_trials": ("상위 시행의 파라미터", "Best trials' parameters"),
    "as_given": ("입력 전략", "as given"),
    "trades": ("거래 수", "Trades"),
    "return": ("수익률", "Return"),
    "mdd": ("최대 낙폭", "Max drawdown"),
    "wf_equity": ("워크포워드 표본외 자산 vs 보유", "Walk-forward out-of-sample equity vs buy and hold"),
    "strategy": ("전략(표본외 연결)", "Strategy (out of sample, chained)"),
    "hold": ("단순 보유", "Buy and hold"),
    "wf_table": ("표본내 / 표본외 성과", "In-sample / out-of-sample"),
    "window": ("구간", "Window"),
    "train": ("학습 (KST)", "Train (KST)"),
    "test": ("검증 (KST)", "Test (KST)"),
    "is_ret": ("표본내 수익률", "IS return"),
    "oos_ret": ("표본외 수익률", "OOS return"),
    "oos_trades": ("표본외 거래", "OOS trades"),
    "dsr": ("디플레이티드 샤프", "Deflated Sharpe"),
    "wf_bars": ("구간별 표본내 vs 표본외 수익률", "Return per window: in vs out of sample"),
    "stability": ("선택된 파라미터의 안정성", "Stability of the chosen parameters"),
    "param": ("파라미터", "Parameter"),
    "chosen": ("선택값", "Chosen values"),
    "spread": ("범위 대비 표준편차 / 최빈 비율", "Std as share of range / mode share"),
    "summary": ("요약", "Summary"),
    "study": ("스터디", "Study"),
    "objective": ("목표", "Objective"),
    "trials_done": ("시행 수", "Trials"),
    "best": ("최고값", "Best value"),
    "data": ("데이터", "Data"),
    "period": ("기간 (KST)", "Period (KST)"),
    "oos_total": ("표본외 누적 수익률", "Out-of-sample return, chained"),
    "efficiency": ("워크포워드 효율", "Walk-forward efficiency"),
    "cluster": ("클러스터", "Cluster"),
    "cluster_line": ("{trials}회 시행, {batches}개 배치, 슬롯 {slots}개, 오버헤드 {share}",
                     "{trials} trials, {batches} batches on {slots} slots, overhead {share}"),
}


def w(key: str, lang: str, **kw: Any) -> str:
    pair = _WORDS[key]
    text = pair[0] if lang == "ko" else pair[1]
    return text.format(**kw) if kw else text


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# --- charts ------------------------------------------------------------------------------------
def _figure(height_in: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chart_history(trials: list[dict], objective: str, lang: str) -> str:
    """Each trial's value in trial order, pruned ones marked on the axis, the running best."""
    fig, ax = _figure(3.2)
    ax.set_title(w("history", lang), fontsize=11, loc="left")
    rows = sorted(trials, key=lambda t: t["number"])
    scored = [(t["number"], t["value"]) for t in rows if t.get("value") is not None]
    if scored:
        x, y = np.array(scored, dtype=float).T
        ax.scatter(x, y, s=10, color="#1f3b73", alpha=0.6, label=w("value", lang), zorder=2)
        ax.plot(x, np.maximum.accumulate(y), color=palette(lang).up, lw=1.4, drawstyle="steps-post",
                label=w("best_so_far", lang), zorder=3)
        pruned = [t["number"] for t in rows if t.get("value") is None]
        if pruned:
            ax.scatter(pruned, [float(y.min())] * len(pruned), marker="x", s=10, color="#999",
                       label=w("pruned", lang), zorder=1)
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel(w("trial", lang), fontsize=9)
    ax.set_ylabel(objective, fontsize=9)
    return _png(fig)


def chart_importance(importance: dict[str, float], lang: str) -> str:
    fig, ax = _figure(max(1.6, 0.6 + 0.35 * len(importance)))
    ax.set_title(w("importance", lang), fontsize=11, loc="left")
    names = list(importance)
    sns.barplot(x=[importance[n] for n in names], y=names, ax=ax, color="#1f3b73", orient="h")
    ax.set_xlabel("")
    ax.set_ylabel("")
    return _png(fig)


def buy_and_hold(spec: dict, ts_ms: np.ndarray, krw0: float) -> np.ndarray:
    """Buy-and-hold equity at ts_ms: krw0 × the last close known at each time (a candle's close is
    known when it ends, as the backtest marks equity) / the first such close."""
    from trader.optimize.cache import market_file

    mf = market_file(spec["data"])
    frame = mf.frame
    known = frame["ts_ms"].to_numpy(np.int64) + (mf.interval_ms or 0)
    close = (frame["close"] if "close" in frame else frame["price"]).to_numpy(np.float64)
    idx = np.clip(np.searchsorted(known, ts_ms, side="right") - 1, 0, len(known) - 1)
    px = close[idx]
    return krw0 * px / px[0]


def chart_wf_equity(doc: dict, lang: str) -> str | None:
    eq = doc.get("equity") or {}
    if not eq.get("ts_ms"):
        return None
    ts = np.asarray(eq["ts_ms"], dtype=np.int64)
    krw = np.asarray(eq["krw"], dtype=np.float64)
    krw0 = float(doc["spec"]["krw"])
    hold = buy_and_hold(doc["spec"], ts, krw0)
    fig, ax = _figure(3.2)
    ax.set_title(w("wf_equity", lang), fontsize=11, loc="left")
    t1, v1 = decimate(ts, krw)
    t2, v2 = decimate(ts, hold)
    ax.plot(_kst_times(t1), v1, color="#1f3b73", lw=1.2, label=w("strategy", lang))
    ax.plot(_kst_times(t2), v2, color="#999", lw=1.0, label=w("hold", lang))
    ax.axhline(krw0, color="#bbb", lw=0.6, ls="--")
    for win in doc.get("windows", [])[1:]:  # where one test window hands over to the next
        start = _window_ms(win["test"]["start"])
        ax.axvline(_kst_times(np.array([start]))[0], color="#ddd", lw=0.6)
    ax.yaxis.set_major_formatter(_krw_formatter(lang))
    ax.legend(fontsize=7, loc="upper left")
    _date_axis(ax, int(ts[0]), int(ts[-1]))
    return _png(fig)


def _window_ms(text: str) -> int:
    from trader.optimize.trial import kst_ms

    return int(kst_ms(text) or 0)


def chart_wf_bars(doc: dict, lang: str) -> str | None:
    rows = doc.get("windows") or []
    if not rows:
        return None
    import pandas as pd

    data = pd.DataFrame({
        "window": [str(r["index"] + 1) for r in rows] * 2,
        "ret": [r["in_sample"].get("return_pct") or 0.0 for r in rows]
        + [r["out_of_sample"].get("return_pct") or 0.0 for r in rows],
        "kind": [w("is_ret", lang)] * len(rows) + [w("oos_ret", lang)] * len(rows),
    })
    fig, ax = _figure(2.8)
    ax.set_title(w("wf_bars", lang), fontsize=11, loc="left")
    sns.barplot(data=data, x="window", y="ret", hue="kind", ax=ax, palette=["#9ecae1", "#1f3b73"])
    ax.axhline(0, color="#666", lw=0.6)
    ax.set_xlabel(w("window", lang), fontsize=9)
    ax.set_ylabel("%", fontsize=9)
    ax.legend(fontsize=7, title=None)
    return _png(fig)


# --- importance --------------------------------------------------------------------------------
def importance(doc: dict) -> dict[str, float]:
    """fANOVA importance over the run's study (walk-forward: averaged over the windows' studies)."""
    import optuna
    from optuna.trial import TrialState

    spec = doc["spec"]
    names = [r["study"] for r in doc.get("windows", [])] or [spec["study_name"]]
    total: dict[str, float] = {}
    used = 0
    for name in names:
        try:
            study = optuna.load_study(study_name=name, storage=spec["storage"])
        except Exception:  # the storage is gone (a temporary file): no importance, the rest stands
            continue
        if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 3:
            continue
        try:
            values = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError):  # e.g. a parameter that never varied
            continue
        used += 1
        for k, v in values.items():
            total[k] = total.get(k, 0.0) + float(v)
    return dict(sorted(((k, v / used) for k, v in total.items()), key=lambda kv: -kv[1])) if used else {}


# --- HTML --------------------------------------------------------------------------------------
_TABLE = "border-collapse:collapse;width:100%;font-size:13px;margin:6px 0 12px 0;"
_TD = "border-bottom:1px solid #e4e7eb;padding:4px 6px;"
_TDR = _TD + "text-align:right;"
_H2 = "font-size:16px;margin:22px 0 6px 0;border-bottom:2px solid #1f3b73;padding-bottom:3px;"


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f'<th style="{_TD if i == 0 else _TDR}background:#f0f2f5;">{escape(h)}</th>'
                 for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td style="{_TD if i == 0 else _TDR}">{escape(c)}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<table style="{_TABLE}"><tr>{th}</tr>{body}</table>'


def _img(src: str | None, alt: str) -> str:
    if not src:
        return ""
    return f'<img src="{src}" alt="{escape(alt)}" style="display:block;width:100%;max-width:900px;">'


def best_table(doc: dict, lang: str, k: int = BEST_ROWS) -> str:
    """The k best trials as columns, one row per parameter (then value, trades, return, MDD)."""
    board = (doc.get("leaderboard") or [])[:k]
    if not board and doc.get("windows"):
        board = [{"number": f"W{r['index'] + 1}", "params": r["best_params"],
                  **{k: r["in_sample"].get(k) for k in ("value", "trades", "return_pct", "max_drawdown_pct")}}
                 for r in doc["windows"]]
    if not board:
        return ""
    names = list(dict.fromkeys(p for row in board for p in row["params"]))
    given = f" ({w('as_given', lang)})"
    head = [w("param", lang)] + [f"#{r['number']}" + (given if r.get("as_given") else "") for r in board]
    rows = [[n, *(_fmt(r["params"].get(n)) for r in board)] for n in names]
    rows.append([w("value", lang), *(_fmt(r.get("value")) for r in board)])
    rows.append([w("trades", lang), *(_fmt(r.get("trades")) for r in board)])
    rows.append([w("return", lang), *(pct(r.get("return_pct")) for r in board)])
    rows.append([w("mdd", lang), *(pct(r.get("max_drawdown_pct")) for r in board)])
    return _table(head, rows)


def windows_table(doc: dict, lang: str) -> str:
    head = [w("window", lang), w("train", lang), w("test", lang), w("is_ret", lang), w("oos_ret", lang),
            w("oos_trades", lang), w("dsr", lang)]
    rows = []
    for r in doc["windows"]:
        dsr = (r.get("overfitting") or {}).get("dsr")
        rows.append([str(r["index"] + 1), f"{r['train']['start'][:16]} → {r['train']['end'][:16]}",
                     f"{r['test']['start'][:16]} → {r['test']['end'][:16]}",
                     pct(r["in_sample"].get("return_pct")), pct(r["out_of_sample"].get("return_pct")),
                     _fmt(r["out_of_sample"].get("trades")), _fmt(dsr)])
    return _table(head, rows)


def stability_table(doc: dict, lang: str) -> str:
    rows = []
    for name, s in (doc.get("stability") or {}).items():
        spread = s.get("std_of_range") if "std_of_range" in s else s.get("mode_share")
        rows.append([name, ", ".join(_fmt(v) for v in s.get("values", [])), _fmt(spread)])
    return _table([w("param", lang), w("chosen", lang), w("spread", lang)], rows) if rows else ""


def summary_rows(doc: dict, lang: str) -> list[list[str]]:
    spec = doc["spec"]
    done = len(doc.get("trials") or []) or sum(len(r.get("trials") or []) for r in doc.get("windows", []))
    rows = [[w("study", lang), spec["study_name"]], [w("objective", lang), spec["objective"]],
            [w("trials_done", lang), str(done)], [w("data", lang), Path(spec["data"]).name],
            [w("period", lang), f"{spec.get('start') or '…'} → {spec.get('end') or '…'}"],
            [w("best", lang), _fmt((doc.get("best") or {}).get("value"))]]
    s = doc.get("summary")
    if s:
        rows.append([w("oos_total", lang), pct(s.get("out_of_sample_return_pct"))])
        rows.append([w("efficiency", lang), _fmt(s.get("efficiency"))])
        rows.append([w("dsr", lang), _fmt(s.get("mean_deflated_sharpe"))])
    c = doc.get("cluster")
    if c:
        share = pct(100 * c["overhead_share"], sign=False)
        rows.append([w("cluster", lang), w("cluster_line", lang, trials=c["trials"], batches=c["batches"],
                                            slots=c["slots"], share=share)])
    return rows


def render_html(doc: dict, lang: str = "ko", *, font_path: str | None = None) -> str:
    """The whole report; charts as embedded PNGs (one file to open or mail)."""
    rc, lang = chart_rc(lang, font_path)
    style = dict(sns.axes_style("whitegrid"))
    style.update(rc)
    style.update({"xtick.labelsize": 8, "ytick.labelsize": 8})
    objective = doc["spec"]["objective"]
    trials = doc.get("trials") or [t for r in doc.get("windows", []) for t in (r.get("trials") or [])]
    parts = [f'<h2 style="{_H2}">{escape(w("summary", lang))}</h2>',
             _table(["", ""], summary_rows(doc, lang))]
    with mpl.rc_context(style), quiet_glyph_warnings():
        if doc.get("windows"):
            parts += [f'<h2 style="{_H2}">{escape(w("wf_equity", lang))}</h2>',
                      _img(chart_wf_equity(doc, lang), w("wf_equity", lang)),
                      f'<h2 style="{_H2}">{escape(w("wf_table", lang))}</h2>', windows_table(doc, lang),
                      _img(chart_wf_bars(doc, lang), w("wf_bars", lang)),
                      f'<h2 style="{_H2}">{escape(w("stability", lang))}</h2>', stability_table(doc, lang)]
        if trials and not doc.get("windows"):
            parts += [f'<h2 style="{_H2}">{escape(w("history", lang))}</h2>',
                      _img(chart_history(trials, objective, lang), w("history", lang))]
        imp = importance(doc)
        parts.append(f'<h2 style="{_H2}">{escape(w("importance", lang))}</h2>')
        parts.append(_img(chart_importance(imp, lang), w("importance", lang)) if imp
                     else f"<p>{escape(w('importance_none', lang))}</p>")
        parts += [f'<h2 style="{_H2}">{escape(w("best_trials", lang))}</h2>', best_table(doc, lang)]
    body = "\n".join(parts)
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(w("title", lang))} · {escape(doc["spec"]["study_name"])}</title></head>
<body style="margin:0;padding:0;background:#f4f5f7;font-family:sans-serif;color:#1f2933;">
<div style="max-width:920px;margin:0 auto;background:#fff;padding:18px 20px;">
<h1 style="font-size:20px;margin:0 0 6px 0;">{escape(w("title", lang))}</h1>
{body}
</div></body></html>
"""


def write_report(path: str | Path, doc: dict, lang: str | None = None) -> Path:
    """Write the HTML report of a result document (the `--json` document) to `path`."""
    from trader.config import load_settings

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(doc, lang or load_settings().report_lang), encoding="utf-8")
    return out
