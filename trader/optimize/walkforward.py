"""Walk-forward validation: optimise on a train window, run the winner on the test window after it.

Windows are rolling (the train window moves by `step`) or anchored (it always starts at the
period's start and grows). Each window gets its own study (`<study>.wf<NN>`, in the spec's
storage) over its train period; the winner's out-of-sample figures are `evaluate` over the test
window, i.e. exactly a plain backtest of those parameters with `--from/--to` = the test window.
The out-of-sample equity curves are chained: each test window starts flat with the spec's KRW,
and its curve is scaled so that it starts where the previous one ended (returns compound).

Per window the result has in-sample and out-of-sample figures and the deflated Sharpe ratio of
the winner's in-sample daily returns against the window's trials (trader.optimize.overfit);
over all windows, how stable each chosen parameter is.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import numpy as np

from trader.metrics import day_boundaries, step_at
from trader.optimize.cache import market_file
from trader.optimize.overfit import deflated_sharpe, return_moments
from trader.optimize.space import Space
from trader.optimize.study import FINISHED, OptimizeSpec, best, create_study, load_study, run_worker, space_of
from trader.optimize.trial import Evaluation, evaluate, kept, period_ms
from trader.timeutil import ms_to_datetime

_KST = timedelta(hours=9)
_SPAN_RE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
Optimise = Callable[[OptimizeSpec, "Window"], dict]


def kst_text(ts_ms: int) -> str:
    """An instant as an ISO time with the +09:00 offset (exact to the millisecond)."""
    dt = ms_to_datetime(ts_ms) + _KST
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ts_ms % 1000:
        text += f".{ts_ms % 1000:03d}"
    return text + "+09:00"


@dataclass(frozen=True)
class Window:
    index: int
    train_start: int  # UTC epoch ms; each range is start ≤ candle start < end
    train_end: int
    test_start: int
    test_end: int

    @property
    def train(self) -> tuple[int, int]:
        return self.train_start, self.train_end

    @property
    def test(self) -> tuple[int, int]:
        return self.test_start, self.test_end

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index,
                "train": {"start": kst_text(self.train_start), "end": kst_text(self.train_end)},
                "test": {"start": kst_text(self.test_start), "end": kst_text(self.test_end)}}


def parse_span(text: str) -> int:
    """'90d' → seconds (s, m, h, d, w)."""
    m = _SPAN_RE.match(text.strip().lower())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"bad span {text!r}: use e.g. 90d, 30d, 12h, 2w")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def parse_walk_forward(text: str) -> tuple[int, int, int]:
    """'90d:30d[:30d]' → (train_s, test_s, step_s); the step defaults to the test span."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"--walk-forward {text!r}: use TRAIN:TEST[:STEP], e.g. 90d:30d or 90d:30d:15d")
    spans = [parse_span(p) for p in parts]
    return spans[0], spans[1], spans[2] if len(spans) == 3 else spans[1]


def windows(start_ms: int, end_ms: int, train_s: int, test_s: int, step_s: int,
            anchored: bool = False) -> list[Window]:
    """Every (train, test) pair whose test window ends by `end_ms`."""
    if min(train_s, test_s, step_s) <= 0:
        raise ValueError("walk-forward: train, test and step must be positive")
    out: list[Window] = []
    k = 0
    while True:
        train_end = start_ms + train_s * 1000 + k * step_s * 1000
        test_end = train_end + test_s * 1000
        if test_end > end_ms:
            break
        train_start = start_ms if anchored else start_ms + k * step_s * 1000
        out.append(Window(k, train_start, train_end, train_end, test_end))
        k += 1
    if not out:
        raise ValueError(f"walk-forward: the period {kst_text(start_ms)} → {kst_text(end_ms)} is shorter "
                         f"than train + test ({train_s / 86400:g} + {test_s / 86400:g} days)")
    return out


def data_period(spec: OptimizeSpec) -> tuple[int, int]:
    """The spec's period in ms: --from/--to as given (windows start on the user's dates), else the
    data file's first candle open / last candle close."""
    lo, hi = period_ms(spec)
    mf = market_file(spec.data)
    ts = mf.frame["ts_ms"].to_numpy(np.int64)
    first = int(ts[0])
    last = int(ts[-1]) + (mf.interval_ms or 1)
    return (first if lo is None else lo), (last if hi is None else hi)


def window_spec(spec: OptimizeSpec, w: Window) -> OptimizeSpec:
    """The spec of window w's study: its train period, a study name of its own."""
    return replace(spec, start=kst_text(w.train_start), end=kst_text(w.train_end),
                   study_name=f"{spec.study_name}.wf{w.index:02d}")


def optimise_local(spec: OptimizeSpec, w: Window) -> dict:
    """The in-process optimiser: one worker runs the window's study to spec.trials."""
    create_study(spec)
    run_worker(spec, spec.trials)
    return best(load_study(spec))["params"]


def _figures(ev: Evaluation) -> dict[str, Any]:
    return {"value": ev.value, "reason": ev.reason, **kept(ev.summary)}


def _daily_returns(curve: dict, krw0: float) -> np.ndarray:
    """Daily (09:00 KST) returns of an equity curve, as the backtest summary's ratios use them."""
    ts = np.asarray(curve["ts_ms"], dtype=np.int64)
    eq = np.asarray(curve["krw"], dtype=np.float64)
    days = step_at(ts, eq, day_boundaries(curve["start_ms"], curve["end_ms"]), krw0)
    if days.size < 2 or (days <= 0).any():
        return np.empty(0)
    return days[1:] / days[:-1] - 1


def _dsr(wspec: OptimizeSpec, ins: Evaluation, krw0: float) -> dict[str, Any] | None:
    """Deflated Sharpe of the winner's in-sample daily returns against the window's trials."""
    if ins.curve is None:
        return None
    moments = return_moments(_daily_returns(ins.curve, krw0))
    try:
        study = load_study(wspec)
    except Exception:  # the optimiser kept its trials elsewhere: no trial Sharpe values to deflate by
        return None
    done = study.get_trials(deepcopy=False, states=FINISHED)
    annual = [(t.user_attrs.get("figures") or {}).get("sharpe") for t in done]
    per_day = [s / math.sqrt(365) for s in annual if s is not None]
    if moments is None:
        return {"dsr": None, "trials": len(done), "reason": "too few days or flat in-sample equity"}
    value = deflated_sharpe(moments["sharpe"], per_day, moments["n"], moments["skew"], moments["kurtosis"],
                            n_trials=len(done))
    return {"dsr": value, "trials": len(done), "trials_with_sharpe": len(per_day),
            "sharpe_daily": moments["sharpe"], "days": moments["n"], "skew": moments["skew"],
            "kurtosis": moments["kurtosis"]}


def stability(space: Space, chosen: list[dict]) -> dict[str, dict[str, Any]]:
    """Per parameter over the windows: numeric → mean, std, std as a share of the range;
    choices → the most chosen value and its share. Lower spread = more stable."""
    out: dict[str, dict[str, Any]] = {}
    for p in space.params:
        values = [c[p.path] for c in chosen if p.path in c]
        if not values:
            continue
        if p.choices is not None:
            value, count = Counter(map(repr, values)).most_common(1)[0]
            out[p.path] = {"values": values, "mode": values[[repr(v) for v in values].index(value)],
                           "mode_share": count / len(values)}
            continue
        arr = np.asarray(values, dtype=np.float64)
        spread = float(arr.std(ddof=0))
        width = float(p.high - p.low) if p.high != p.low else 0.0
        out[p.path] = {"values": values, "mean": float(arr.mean()), "std": spread,
                       "std_of_range": spread / width if width else 0.0}
    return out


def walk_forward(spec: OptimizeSpec, wins: list[Window], optimise: Optimise = optimise_local) -> dict:
    """Optimise each train window, test its winner on the following window, stitch, summarise.

    `optimise(window_spec, window)` must return the best parameters and keep its trials in the
    study `window_spec` names (storage, study_name), where the deflated Sharpe reads them.
    """
    space = space_of(spec)
    krw0 = float(spec.krw)
    rows: list[dict[str, Any]] = []
    chosen: list[dict] = []
    stitched_ts: list[int] = []
    stitched_krw: list[float] = []
    equity = krw0
    for w in wins:
        wspec = window_spec(spec, w)
        params = optimise(wspec, w)
        ins = evaluate(wspec, params, window=w.train, keep_curve=True)
        oos = evaluate(wspec, params, window=w.test, keep_curve=True)
        chosen.append(params)
        if oos.curve is not None and oos.summary:
            scale = equity / krw0
            stitched_ts.extend(oos.curve["ts_ms"])
            stitched_krw.extend(k * scale for k in oos.curve["krw"])
            equity = float(oos.summary["equity_end"]) * scale
        rows.append({**w.to_dict(), "study": wspec.study_name, "best_params": params,
                     "in_sample": _figures(ins), "out_of_sample": _figures(oos),
                     "overfitting": _dsr(wspec, ins, krw0)})
    ins_ret = [r["in_sample"].get("return_pct") for r in rows]
    oos_ret = [r["out_of_sample"].get("return_pct") for r in rows]
    dsrs = [r["overfitting"]["dsr"] for r in rows if r["overfitting"] and r["overfitting"]["dsr"] is not None]
    mean_is = _mean(ins_ret)
    mean_oos = _mean(oos_ret)
    return {
        "windows": rows,
        "equity": {"ts_ms": stitched_ts, "krw": stitched_krw},
        "stability": stability(space, chosen),
        "summary": {
            "windows": len(rows),
            "out_of_sample_return_pct": (equity / krw0 - 1) * 100,
            "mean_in_sample_return_pct": mean_is,
            "mean_out_of_sample_return_pct": mean_oos,
            # walk-forward efficiency: the share of the in-sample gain that survives out of sample
            "efficiency": (mean_oos / mean_is) if mean_is and mean_oos is not None and mean_is > 0 else None,
            "positive_windows": sum(1 for r in oos_ret if r is not None and r > 0),
            "mean_deflated_sharpe": _mean(dsrs),
        },
    }


def _mean(values: list[float | None]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None
