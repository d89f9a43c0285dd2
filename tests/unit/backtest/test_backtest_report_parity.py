"""The backtest summary and the e-mailed report take their figures from one module: for the same
fills (and the same equity points) they show the same round trips, drawdown, win rate, profit
factor, expectancy and fees — with one sign convention (drawdown ≤ 0)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from tests.unit.backtest.helpers import backtest, ticks
from trader.domain import Fill, Side
from trader.metrics import RoundTrip
from trader.reporting.inputs import ReportInputs
from trader.reporting.metrics import compute_metrics

M = 1_000_000
EXITS = {"stop_loss": 0.01, "take_profit": [{"gain": 0.006, "sell": 0.5}, {"gain": 0.012, "sell": 0.5}]}


def _prices() -> list[float]:
    rng = np.random.default_rng(5)
    return list(np.round(100 * M * np.exp(np.cumsum(rng.normal(0, 0.002, 4000))), -3))


def _as_report_inputs(res, prices: list[float], step_ms: int) -> ReportInputs:  # type: ignore[no-untyped-def]
    fills = [
        Fill(f"t{i}", f"o{i}", res.output.market, Side(f.side), f.price, f.volume, f.funds, f.fee, f.ts_ms,
             f.reason, identifier=f"at-{i}")
        for i, f in enumerate(res.output.fills)
    ]
    frame = ticks(prices, step_ms=step_ms)
    return ReportInputs(
        fills=fills,
        equity=pd.DataFrame({"ts_ms": res.equity_ts, "equity": res.equity}),
        prices=pd.DataFrame({"ts_ms": frame["ts_ms"], "market": res.output.market, "price": frame["price"]}),
        starting_equity=res.output.krw_start,
        market=res.output.market,
    )


def test_same_fills_same_round_trips_drawdown_and_win_rate() -> None:
    prices = _prices()
    res = backtest(prices, exits=EXITS, step_ms=10_000)  # 4,000 trades in 11 h of one trading day
    s = res.summary
    assert s["trades"] > 50 and 0 < s["wins"] < s["trades"]  # wins and losses both occur
    metrics = compute_metrics(_as_report_inputs(res, prices, 10_000), period="day", day=date(2024, 1, 1))
    pm = metrics.main

    assert all(type(t) is RoundTrip for t in [*metrics.replay.trips, *res.trips])  # one type
    assert [(t.entry_ts, t.exit_ts, t.pnl, t.exits) for t in metrics.replay.trips] == [
        (t.entry_ts, t.exit_ts, t.pnl, t.exits) for t in res.trips
    ]
    assert pm.n_trades == s["trades"] and pm.wins == s["wins"]
    assert pm.win_rate is not None and pm.win_rate * 100 == pytest.approx(s["win_rate_pct"])
    assert s["max_drawdown_pct"] < 0 and pm.max_drawdown_pct == pytest.approx(s["max_drawdown_pct"], rel=1e-9)
    assert pm.profit_factor == pytest.approx(s["profit_factor"])
    assert float(pm.expectancy) == pytest.approx(s["expectancy_krw"])  # type: ignore[arg-type]
    assert pm.avg_hold_s == pytest.approx(s["avg_hold_s"])
    assert float(pm.fees) == pytest.approx(s["fees"])
