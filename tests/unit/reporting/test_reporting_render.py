"""HTML and text of a report: the figures are the metrics, Korean and English, phone-sized."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from trader.reporting.i18n import pct, qty, won
from trader.reporting.metrics import compute_metrics
from trader.reporting.render import key_figures, render_html, render_text, subject

from .conftest import DAY, case_inputs

GEN = datetime(2024, 3, 6, 9, 5)


def test_formatters() -> None:
    assert won(Decimal("-14775"), "ko", sign=True) == "-14,775원"
    assert won(Decimal("904.5"), "ko", sign=True) == "+905원"  # half-up to the won
    assert won(Decimal("-5977.5"), "en", sign=True) == "KRW -5,978"
    assert won(Decimal(0), "ko", sign=True) == "0원"
    assert pct(-1.4632) == "-1.46%" and pct(0.0001) == "0.00%" and pct(-0.001) == "0.00%"
    assert qty(Decimal("0.00200000")) == "0.002"


@pytest.fixture(scope="module")
def metrics():
    return compute_metrics(case_inputs(), period="day", day=DAY)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_html_and_text_carry_the_metrics(metrics, lang: str) -> None:
    html = render_html(metrics, lang=lang, day=DAY, image_src={"equity": "cid:chart-equity"}, generated=GEN)
    text = render_text(metrics, lang=lang, day=DAY, generated=GEN)
    m = metrics.main
    for expected in (won(m.pnl, lang, sign=True), won(m.realized_pnl, lang, sign=True), won(m.fees, lang)):
        assert expected in html and expected in text
    for _label, value in key_figures(m, lang):
        assert value in text
    assert 'src="cid:chart-equity"' in html
    assert ("실현 손익" if lang == "ko" else "Realized P&L") in text


def test_subject_names_the_day_and_the_result(metrics) -> None:
    assert subject(metrics, "ko", DAY) == "[자동매매] 2024-03-05 일간 손익 -14,775원 (-1.46%)"
    assert subject(metrics, "en", DAY) == "[Autotrader] Day 2024-03-05 P&L KRW -14,775 (-1.46%)"


def test_html_fits_a_phone(metrics) -> None:
    html = render_html(metrics, lang="ko", day=DAY, image_src={"equity": "equity.png"}, generated=GEN)
    assert 'name="viewport"' in html
    assert "<style" not in html  # inline CSS only (mail clients drop style blocks)
    # no fixed width wider than a 375 px screen, except the column's max-width
    widths = [int(w) for w in re.findall(r"(?<!max-)width:(\d+)px", html)]
    assert all(w <= 375 for w in widths)
    assert "max-width:600px" in html


def test_day_without_trades_says_so(metrics) -> None:
    quiet = compute_metrics(case_inputs(), period="day", day=DAY + timedelta(days=1))
    text = render_text(quiet, lang="ko", day=DAY + timedelta(days=1), generated=GEN)
    assert "체결된 거래가 없습니다" in text
    assert won(quiet.main.end_equity, "ko") in text  # balances are still reported
    html = render_html(quiet, lang="en", day=DAY + timedelta(days=1), image_src={}, generated=GEN)
    assert "No trades in this period" in html
    assert "KRW-BTC" in html  # the open position is listed
    assert "No trades" not in render_text(metrics, lang="en", day=DAY, generated=GEN)
