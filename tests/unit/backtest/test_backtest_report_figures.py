"""The backtest summary's new figures (JSON and text table) over the demo's three weeks: Sharpe,
Sortino, Calmar on the equity at each 09:00 KST boundary, profit factor, expectancy, holding
time; drawdown negative everywhere; no NaN/inf in the JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.backtest.api import run_backtest
from trader.backtest.report import render_table

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"
NEW_KEYS = ("sharpe", "sortino", "calmar", "profit_factor", "expectancy_krw", "avg_hold_s")


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return run_backtest(DEMO, DATA, start="2024-01-01T09:00", end="2024-01-22T09:00")


def test_json_keeps_its_keys_and_gains_the_new_ones(result) -> None:  # type: ignore[no-untyped-def]
    s = result.summary
    for key in ("max_drawdown_pct", "return_pct", "win_rate_pct", "exposure_pct", "fees", "trades",
                "fingerprint", *NEW_KEYS):
        assert key in s
    assert all(isinstance(s[k], float) for k in NEW_KEYS)  # three weeks: every figure is defined
    json.dumps(result.to_json(), allow_nan=False)
    assert s["max_drawdown_pct"] < 0
    assert s["from"] == "2024-01-01 09:00:00" and s["to"] == "2024-01-22 09:00:00"


def test_daily_ratios_follow_their_definitions(result) -> None:  # type: ignore[no-untyped-def]
    # the equity at 2024-01-01 … 2024-01-22 09:00 KST (00:00 UTC): 22 boundaries, 21 returns
    eq = pd.Series(result.equity, index=pd.to_datetime(result.equity_ts, unit="ms"))
    days = pd.date_range("2024-01-01", "2024-01-22", freq="D")
    e = np.array([10_000_000.0 if d < eq.index[0] else eq.asof(d) for d in days])
    r = e[1:] / e[:-1] - 1
    s = result.summary
    assert s["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    downside = math.sqrt((np.minimum(r, 0) ** 2).mean())
    assert s["sortino"] == pytest.approx(r.mean() / downside * math.sqrt(365))
    cagr = (e[-1] / e[0]) ** (365 / 21) - 1
    assert s["calmar"] == pytest.approx(cagr / (abs(s["max_drawdown_pct"]) / 100))


def test_trade_figures_agree_with_the_trade_list(result) -> None:  # type: ignore[no-untyped-def]
    closed = [t for t in result.to_json()["trades"] if t["exit_ts"] is not None]
    pnl = [float(t["pnl"]) for t in closed]
    s = result.summary
    assert s["trades"] == len(closed)
    assert s["expectancy_krw"] == pytest.approx(sum(pnl) / len(pnl))
    assert s["profit_factor"] == pytest.approx(sum(p for p in pnl if p > 0) / -sum(p for p in pnl if p < 0))
    assert s["avg_hold_s"] == pytest.approx(sum(t["hold_s"] for t in closed) / len(closed))


def test_table_prints_the_drawdown_with_its_sign_and_the_new_rows(result) -> None:  # type: ignore[no-untyped-def]
    table = render_table(result.summary)
    row = next(line for line in table.splitlines() if line.startswith("max drawdown"))
    assert f"{result.summary['max_drawdown_pct']:.2f} %" in row and "-" in row
    for label in ("profit factor", "expectancy KRW / trade", "avg holding time", "Sharpe / Sortino / Calmar"):
        assert label in table


def test_undefined_figures_are_null_and_print_as_dash() -> None:
    from tests.unit.backtest.helpers import backtest

    res = backtest([100e6] * 20)  # one entry that never exits, a few seconds of data
    s = res.summary
    assert [s[k] for k in NEW_KEYS] == [None] * 6
    assert json.loads(json.dumps(res.to_json(), allow_nan=False))["summary"]["sharpe"] is None
    assert "- / - / -" in render_table(s)
