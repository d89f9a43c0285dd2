"""Report text: every reason the strategy can emit has a Korean label (tables and chart legends
use `reason_label`), and a stop's exit row shows its trigger price next to its fill price."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from tests.unit.reporting.conftest import DAY, case_fills, case_prices
from trader.reporting.i18n import reason_label
from trader.reporting.inputs import ReportInputs
from trader.reporting.metrics import compute_metrics
from trader.reporting.render import render_html, render_text

STRATEGY = Path(__file__).resolve().parents[3] / "trader" / "strategy"
HANGUL = re.compile("[\uac00-\ud7a3]")


def strategy_reasons() -> set[str]:
    """Reasons found in trader/strategy: what the exit rules return, the reason given to every
    Intent(...), the reason tuples of the config, and the ladder's take_profit_<n> f-string."""
    found: set[str] = set()
    ladder = False
    for path in STRATEGY.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant):
                if isinstance(node.value.value, str):
                    found.add(node.value.value)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Intent":
                if len(node.args) > 2 and isinstance(node.args[2], ast.Constant):
                    found.add(node.args[2].value)
            elif isinstance(node, ast.Assign) and any(
                getattr(t, "id", "") in ("LIMITABLE", "MARKET_ONLY_REASONS") for t in node.targets
            ):
                found |= {e.value for e in node.value.elts}  # type: ignore[attr-defined]
            elif isinstance(node, ast.JoinedStr):
                head = node.values[0]
                if isinstance(head, ast.Constant) and head.value == "take_profit_":
                    ladder = True
    assert ladder, "the take-profit ladder's reason f-string was not found"
    return found | {f"take_profit_{n}" for n in range(1, 11)}


def test_the_strategy_reasons_are_found() -> None:
    reasons = strategy_reasons()
    assert {"entry", "stop_loss", "sharp_drop", "trailing_stop", "max_hold", "reversal",
            "take_profit", "take_profit_1", "take_profit_7"} <= reasons


@pytest.mark.parametrize("reason", sorted(strategy_reasons() | {"adopted", "manual", "?", ""}))
def test_every_reason_has_a_korean_label(reason: str) -> None:
    label = reason_label(reason, "ko")
    assert HANGUL.search(label), f"{reason!r} shows as {label!r} in the Korean report"
    assert reason_label(reason, "en") and not HANGUL.search(reason_label(reason, "en"))


def test_take_profit_steps_are_numbered() -> None:
    assert reason_label("take_profit_4", "ko") == "4차 익절"
    assert reason_label("take_profit_4", "en") == "take profit 4"
    assert reason_label("max_hold", "ko") == "보유 기간 만료"


def _stop_inputs() -> ReportInputs:
    fills = [replace(f, identifier=f"at-{f.trade_uuid}") for f in case_fills()]
    # the stop (F3, filled at 49,000,000) was decided by a trade at 49,500,000
    return ReportInputs(fills=fills, prices=case_prices(), starting_equity=Decimal(1_000_000),
                        trigger_prices={"at-t3": Decimal(49_500_000)})


def test_exit_rows_carry_fill_and_trigger_price() -> None:
    m = compute_metrics(_stop_inputs(), period="day", day=DAY).main
    assert [(e.reason, e.fill_price, e.trigger_price) for e in m.exits] == [
        ("take_profit_1", Decimal(52_000_000), None),
        ("stop_loss", Decimal(49_000_000), Decimal(49_500_000)),
        ("trailing_stop", Decimal(47_000_000), None),
    ]
    stop = m.exits[1]
    assert stop.slippage_pct == pytest.approx((49_000_000 / 49_500_000 - 1) * 100)  # −1.01 %
    assert stop.realized_pnl == Decimal("-5247.5")


@pytest.mark.parametrize(
    "lang, words", [("ko", ("손절", "체결가", "발동가")), ("en", ("stop loss", "Fill price", "Trigger"))]
)
def test_stop_loss_row_shows_trigger_next_to_fill(lang: str, words: tuple[str, str, str]) -> None:
    metrics = compute_metrics(_stop_inputs(), period="day", day=DAY)
    text = render_text(metrics, lang=lang, day=DAY)
    row = next(line for line in text.splitlines() if words[0] in line and "49,000,000" in line)
    assert words[1] in row and f"{words[2]} 49,500,000" in row and "-1.01%" in row
    html = render_html(metrics, lang=lang, day=DAY, image_src={})
    assert "49,000,000" in html and f"{words[2]} 49,500,000" in html


def test_korean_report_has_no_untranslated_reason() -> None:
    fills = case_fills()
    fills[4] = replace(fills[4], reason="max_hold")  # the old report printed "max hold" here
    inputs = ReportInputs(fills=fills, prices=case_prices(), starting_equity=Decimal(1_000_000))
    text = render_text(compute_metrics(inputs, period="day", day=DAY), lang="ko", day=DAY)
    assert "보유 기간 만료" in text and "max hold" not in text and "max_hold" not in text
