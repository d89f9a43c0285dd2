"""The optimisation HTML report from a result document: sections, languages, buy-and-hold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.integration.optimize_dask.conftest import ROOT
from trader.optimize.report import buy_and_hold, render_html, write_report

DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"


def _doc(tmp_path) -> dict:
    spec = {"study_name": "report-test", "objective": "return_pct", "data": str(DATA), "krw": "10000000",
            "start": "2024-01-01", "end": "2024-01-15", "storage": f"sqlite:///{tmp_path}/none.db"}
    trials = [{"number": i, "value": v, "params": {"exits.stop_loss": 0.01 * (i + 1)}, "trades": 5,
               "as_given": i == 0, "return_pct": v, "max_drawdown_pct": -1.0} for i, v in
              enumerate([0.5, None, 1.75])]
    board = [{"rank": 1, **trials[2]}, {"rank": 2, **trials[0]}]
    t0 = int(pd.Timestamp("2024-01-08T00:00:00+09:00").value // 1_000_000)
    ts = [t0 + k * 900_000 for k in range(200)]
    windows = [{"index": 0, "study": "report-test.wf00",
                "train": {"start": "2024-01-01T00:00:00+09:00", "end": "2024-01-08T00:00:00+09:00"},
                "test": {"start": "2024-01-08T00:00:00+09:00", "end": "2024-01-15T00:00:00+09:00"},
                "best_params": {"exits.stop_loss": 0.03}, "in_sample": {"value": 1.75, "return_pct": 1.75},
                "out_of_sample": {"return_pct": -0.25, "trades": 4}, "overfitting": {"dsr": 0.42}}]
    return {"spec": spec, "best": {"params": {"exits.stop_loss": 0.03}, "value": 1.75}, "best_trial": 2,
            "leaderboard": board, "trials": trials, "windows": windows,
            "equity": {"ts_ms": ts, "krw": [10_000_000 - 10 * k for k in range(200)]},
            "stability": {"exits.stop_loss": {"values": [0.03], "mean": 0.03, "std": 0.0,
                                              "std_of_range": 0.0}},
            "summary": {"out_of_sample_return_pct": -0.25, "efficiency": -0.142857,
                        "mean_deflated_sharpe": 0.42},
            "cluster": {"trials": 3, "batches": 1, "slots": 2, "overhead_share": 0.031}}


def test_buy_and_hold_uses_the_last_close_known_at_each_time() -> None:
    from trader.optimize.cache import market_file

    mf = market_file(DATA)
    ts, close = mf.frame["ts_ms"].to_numpy(np.int64), mf.frame["close"].to_numpy(np.float64)
    end = ts + mf.interval_ms  # a candle's close is known when the candle ends
    at = np.array([end[10], end[10] + 1, end[20] - 1, end[20]])
    got = buy_and_hold({"data": str(DATA)}, at, 1_000.0)
    assert got.tolist() == [1_000.0, 1_000.0, 1_000.0 * close[19] / close[10],
                            1_000.0 * close[20] / close[10]]


def test_report_has_every_section_in_korean_and_english(tmp_path) -> None:
    doc = _doc(tmp_path)
    ko = render_html(doc, "ko")
    en = render_html(doc, "en")
    assert "파라미터 최적화 리포트" in ko and "표본외 누적 수익률" in ko and "-0.25%" in ko
    for part in ("Parameter optimisation report", "Walk-forward out-of-sample equity vs buy and hold",
                 "In-sample / out-of-sample", "Best trials&#x27; parameters", "Stability of the chosen",
                 "Too few scored trials for importance.", "2024-01-08T00:00 → 2024-01-15T00:00", "+1.75%",
                 "3 trials, 1 batches on 2 slots, overhead 3.10%", "0.42"):
        assert part in en, part
    assert en.count("data:image/png;base64,") == 2  # equity vs hold, IS/OOS bars (no importance)
    path = write_report(tmp_path / "out" / "r.html", doc, lang="en")
    assert path.read_text(encoding="utf-8") == en


def test_a_plain_study_report_shows_the_history_and_the_best_trials_side_by_side(tmp_path) -> None:
    doc = _doc(tmp_path)
    for key in ("windows", "equity", "stability", "summary"):
        doc.pop(key)
    en = render_html(doc, "en")
    assert "Optimisation history" in en and "Walk-forward" not in en
    assert "#2" in en and "#0 (as given)" in en and en.index("#2") < en.index("#0 (as given)")
    assert en.count("data:image/png;base64,") == 1
