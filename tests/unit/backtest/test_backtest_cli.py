"""`python -m trader backtest`: table on stdout, JSON/CSV outputs, clean errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from trader.cli import main

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"


def test_backtest_cli_outputs(tmp_path, capsys):
    out_json, out_csv, out_eq = tmp_path / "r.json", tmp_path / "fills.csv", tmp_path / "eq.csv"
    rc = main(["backtest", "--strategy", str(DEMO), "--data", str(DATA), "--from", "2024-01-01",
               "--to", "2024-01-22", "--krw", "10,000,000", "--json", str(out_json), "--trades", str(out_csv),
               "--equity", str(out_eq)])
    assert rc == 0
    table = capsys.readouterr().out
    for label in ("return", "max drawdown", "win rate", "trades (round trips)", "fees KRW", "exposure",
                  "buy & hold"):
        assert label in table
    doc = json.loads(out_json.read_text())
    assert doc["summary"]["market"] == "KRW-ETH" and doc["summary"]["candles"] == 1988
    reasons = {f["reason"] for f in doc["fills"]}
    assert reasons == {"entry", "take_profit_1", "take_profit_2", "stop_loss", "trailing_stop", "sharp_drop",
                       "reversal", "max_hold"}
    assert len(doc["equity"]["ts_ms"]) == 1988
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == doc["summary"]["fills"] and rows[0]["reason"] == "entry"
    assert out_eq.read_text().startswith("ts_ms,equity_krw\n")


def test_backtest_cli_bad_strategy_names_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("market: KRW-ETH\norder_krw: 100000\nentry: {immediate: true}\n"
                   "exits: {take_profit: [{gain: 0.03, sell: 0.3}, {gain: 0.06, sell: 1.3}]}\n")
    rc = main(["backtest", "--strategy", str(bad), "--data", str(DATA)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "exits.take_profit.1.sell" in err and str(bad) in err


def test_backtest_cli_missing_data(tmp_path, capsys):
    rc = main(["backtest", "--strategy", str(DEMO), "--data", str(tmp_path / "none.csv")])
    assert rc == 2 and "not found" in capsys.readouterr().err
