"""Every figure of the hand-built ledger (see conftest.py) against its hand-computed value."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from trader.domain import Side
from trader.reporting.inputs import ReportInputs
from trader.reporting.metrics import compute_metrics
from trader.reporting.periods import day_start_ms

from .conftest import DAY, H, S, case_fills, case_inputs, case_prices, make_fill


@pytest.fixture(scope="module")
def day_metrics():
    return compute_metrics(case_inputs(), period="day", day=DAY)


def test_equity_pnl_and_returns(day_metrics) -> None:
    m = day_metrics.main
    assert (m.start_ms, m.end_ms) == (S, S + 24 * H)
    assert m.start_equity == Decimal("1009750")
    assert m.end_equity == Decimal("994975")
    assert m.pnl == Decimal("-14775")
    assert m.return_pct == pytest.approx(-14775 / 1009750 * 100)
    assert m.cumulative_return_pct == pytest.approx(-0.5025)
    assert m.krw_end == Decimal("898975")


def test_realized_unrealized_and_fees_are_exact(day_metrics) -> None:
    m = day_metrics.main
    assert m.realized_pnl == Decimal("-5977.5")  # 9,745 − 5,247.5 − 10,475
    # 0.002 × 48,000,000 = 96,000; − sell fee 48 − cost 95,000 − buy fee 47.5
    assert m.unrealized_pnl == Decimal("904.5")
    assert m.fees == Decimal("775")  # 130 + 122.5 + 240 + 235 + 47.5


def test_trade_statistics(day_metrics) -> None:
    m = day_metrics.main
    assert (m.n_fills, m.n_buys, m.n_sells) == (5, 2, 3)
    assert (m.n_trades, m.wins, m.losses) == (2, 1, 1)
    assert m.win_rate == 0.5
    assert m.avg_win == Decimal("4497.5")
    assert m.avg_loss == Decimal("-10475")
    assert m.profit_factor == pytest.approx(4497.5 / 10475)
    assert m.best_trade == Decimal("4497.5")
    assert m.worst_trade == Decimal("-10475")


def test_drawdown_exposure_and_buy_hold(day_metrics) -> None:
    m = day_metrics.main
    # curve peak 1,019,620 after F2 (759,620 + 0.005 × 52M); trough 993,975 after F6
    assert m.max_drawdown_krw == Decimal("25645")
    assert m.max_drawdown_pct == pytest.approx((993975 / 1019620 - 1) * 100)
    # open 0–2 h, 3–5 h and 6–24 h: 22 of 24 hours
    assert m.exposure_pct == pytest.approx(22 / 24 * 100)
    assert m.main_market == "KRW-BTC"
    assert m.buy_hold_pct == pytest.approx((48 / 51 - 1) * 100)


def test_per_reason_breakdown(day_metrics) -> None:
    rows = {r.reason: r for r in day_metrics.main.by_reason}
    assert set(rows) == {"take_profit_1", "stop_loss", "trailing_stop"}
    assert rows["take_profit_1"].realized_pnl == Decimal("9745")
    assert rows["stop_loss"].realized_pnl == Decimal("-5247.5")
    assert rows["trailing_stop"].realized_pnl == Decimal("-10475")
    # vs holding to the end price 48M: proceeds − fee − volume × 48M
    assert rows["take_profit_1"].vs_hold == Decimal("19870")  # 260,000 − 130 − 240,000
    assert rows["stop_loss"].vs_hold == Decimal("4877.5")  # the stop saved 4,877.5 won
    assert rows["trailing_stop"].vs_hold == Decimal("-10235")
    assert rows["stop_loss"].fills == 1 and rows["take_profit_1"].volume == Decimal("0.005")


def test_positions_at_period_end(day_metrics) -> None:
    (p,) = day_metrics.main.positions
    assert p.market == "KRW-BTC"
    assert p.volume == Decimal("0.002")
    assert p.avg_buy_price == Decimal("47500000")
    assert p.value == Decimal("96000")
    assert p.unrealized_pnl == Decimal("904.5")


def test_summary_windows(day_metrics) -> None:
    s = day_metrics.summary
    # week (Mon 03-04 → 03-05) and month/all contain F1: start equity is the starting capital
    for key in ("week", "month", "all"):
        assert s[key].start_equity == Decimal("1000000")
        assert s[key].pnl == Decimal("-5025")
        assert s[key].realized_pnl == Decimal("-5977.5")
        assert s[key].fees == Decimal("1025")
        assert s[key].n_fills == 6
    assert s["month"].start_ms == day_start_ms(date(2024, 3, 1))
    assert s["week"].start_ms == day_start_ms(date(2024, 3, 4))
    daily = s["month"].daily
    assert list(daily["day"]) == [date(2024, 3, d) for d in range(1, 6)]
    assert list(daily["pnl"]) == [0.0, 0.0, 0.0, 9750.0, -14775.0]  # 03-04: 0.01 × (51M − 50M) − 250


def test_day_without_trades_reports_balances() -> None:
    m = compute_metrics(case_inputs(), period="day", day=DAY + timedelta(days=1)).main
    assert (m.n_fills, m.n_trades, m.realized_pnl, m.fees) == (0, 0, Decimal(0), Decimal(0))
    assert not m.has_trades
    assert m.start_equity == m.end_equity == Decimal("994975")
    assert m.pnl == 0 and m.return_pct == 0.0
    assert m.win_rate is None and m.profit_factor is None and m.best_trade is None
    assert m.exposure_pct == pytest.approx(100.0)  # the 0.002 BTC stays open all day
    assert m.by_reason == []
    assert len(m.positions) == 1


def test_empty_history_still_computes() -> None:
    inputs = ReportInputs(fills=[], starting_equity=Decimal(500_000))
    m = compute_metrics(inputs, period="day", day=DAY).main
    assert m.start_equity == m.end_equity == Decimal(500_000)
    assert m.main_market is None and m.buy_hold_pct is None and m.max_drawdown_pct == 0.0


def test_day_start_hour_moves_the_window() -> None:
    # with days starting at 00:00 KST, 2024-03-05 is [03-04 15:00 UTC, 03-05 15:00 UTC)
    m = compute_metrics(case_inputs(), period="day", day=DAY, day_start_hour=0).main
    assert m.start_ms == S - 9 * H
    assert m.n_fills == 5  # F2..F6 fall in it (F6 is at 06:00 UTC)
    m_next = compute_metrics(case_inputs(), period="day", day=DAY - timedelta(days=1), day_start_hour=0).main
    assert m_next.n_fills == 1  # F1 at 03-04 01:00 UTC = 10:00 KST


def test_duplicate_fill_is_counted_once() -> None:
    fills = case_fills()
    inputs = ReportInputs(fills=[*fills, fills[2]], prices=case_prices(), starting_equity=Decimal(1_000_000))
    m = compute_metrics(inputs, period="day", day=DAY).main
    assert m.n_fills == 5 and m.realized_pnl == Decimal("-5977.5")


def test_recorded_equity_curve_is_used_for_drawdown() -> None:
    equity = pd.DataFrame({"ts_ms": [S + 4 * H], "equity": [900_000.0]})
    inputs = ReportInputs(
        fills=case_fills(), equity=equity, prices=case_prices(), starting_equity=Decimal(1_000_000)
    )
    m = compute_metrics(inputs, period="day", day=DAY).main
    assert m.max_drawdown_krw == Decimal(1_009_750 - 900_000)


def test_two_markets_make_separate_round_trips() -> None:
    fills = [
        make_fill(1, Side.BID, "1", "1000", S + H, "entry", "KRW-XRP"),
        make_fill(2, Side.BID, "0.1", "4000000", S + 2 * H, "entry", "KRW-ETH"),
        make_fill(3, Side.ASK, "1", "1100", S + 3 * H, "reversal", "KRW-XRP"),
        make_fill(4, Side.ASK, "0.1", "3900000", S + 4 * H, "sharp_drop", "KRW-ETH"),
    ]
    m = compute_metrics(
        ReportInputs(fills=fills, starting_equity=Decimal(1_000_000)), period="day", day=DAY
    ).main
    # XRP: 1,100 − 0.55 − 1,000 − 0.5 = 98.95 ; ETH: 390,000 − 195 − 400,000 − 200 = −10,395
    assert sorted(r.realized_pnl for r in m.by_reason) == [Decimal("-10395"), Decimal("98.95")]
    assert (m.n_trades, m.wins, m.losses) == (2, 1, 1)
    assert m.exposure_pct == pytest.approx(3 / 24 * 100)  # 1 h → 4 h at least one open
    assert m.end_equity == Decimal(1_000_000) + Decimal("98.95") - Decimal("10395")


def test_opening_holdings_are_valued_and_sold_without_error() -> None:
    # the account held 1 XRP bought at 900 before the bot; the bot sells it at 1,000 (fee 0.5)
    fills = [make_fill(1, Side.ASK, "1", "1000", S + H, "take_profit_1", "KRW-XRP")]
    prices = pd.DataFrame({"ts_ms": [S - H], "market": ["KRW-XRP"], "price": [950.0]})
    inputs = ReportInputs(
        fills=fills,
        prices=prices,
        starting_equity=Decimal(10_000),
        opening_holdings={"KRW-XRP": (Decimal(1), Decimal(900))},
    )
    m = compute_metrics(inputs, period="day", day=DAY).main
    assert m.start_equity == Decimal(10_950)  # 10,000 + 1 × 950
    assert m.end_equity == Decimal("10999.5")  # 10,000 + 1,000 − 0.5
    # adopt_balances attaches an estimated buy fee of 900 × 0.0005 = 0.45 to the holding
    assert m.realized_pnl == Decimal("1000") - Decimal("0.5") - Decimal(900) - Decimal("0.45")
    assert m.n_trades == 1 and m.wins == 1


def test_a_fill_the_ledger_refuses_is_skipped_and_reported() -> None:
    from trader.reporting.render import render_text

    fills = [*case_fills(), make_fill(9, Side.ASK, "5", "47000000", S + 7 * H, "stop_loss")]
    inputs = ReportInputs(fills=fills, prices=case_prices(), starting_equity=Decimal(1_000_000))
    metrics = compute_metrics(inputs, period="day", day=DAY)
    assert [f.trade_uuid for f, _ in metrics.replay.skipped] == ["t9"]
    assert metrics.main.realized_pnl == Decimal("-5977.5")  # the figures of the accepted fills
    assert "t9" in render_text(metrics, lang="en", day=DAY)
