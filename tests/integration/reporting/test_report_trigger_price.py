"""The trigger price travels from the order record to the report: record_order stores it, the
report joins fills to orders by identifier and shows it next to the fill price."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from tests.unit.reporting.conftest import DAY, S, case_fills
from trader.reporting.inputs import load_inputs_from_db
from trader.reporting.metrics import compute_metrics
from trader.reporting.render import render_text
from trader.storage.db import Database
from trader.storage.repository import Repository


def test_stop_trigger_price_from_the_database_reaches_the_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trader.db'}"
    with Database.open(url) as db:
        repo = Repository(db)
        for f in case_fills():
            ident = f"at-{f.trade_uuid}"
            trigger = Decimal(49_500_000) if f.reason == "stop_loss" else None
            repo.record_order(ident, f"i-{f.trade_uuid}", f.market, str(f.side), "market", None, f.volume,
                              None, f.reason, f.ts_ms, trigger)
            repo.record_fill(replace(f, identifier=ident))
    inputs = load_inputs_from_db(url, S, S + 86_400_000, starting_equity=Decimal(1_000_000))
    assert inputs.trigger_prices == {"at-t3": Decimal(49_500_000)}
    metrics = compute_metrics(inputs, period="day", day=DAY)
    stop = next(e for e in metrics.main.exits if e.reason == "stop_loss")
    assert (stop.fill_price, stop.trigger_price) == (Decimal(49_000_000), Decimal(49_500_000))
    text = render_text(metrics, lang="ko", day=DAY)
    assert "체결가 49,000,000 (발동가 49,500,000, 슬리피지 -1.01%)" in text
