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


def test_backtest_reads_pyupbit_csv_and_tick_csv(tmp_path, capsys):
    import pandas as pd

    from trader.marketdata.candles import load_candles
    from trader.marketdata.synth import synthesize_trades

    everything = load_candles(DATA)
    candles = everything.iloc[:2000]
    next_start = int(everything["ts_ms"].iloc[2000])
    first_after = pd.Timestamp(next_start, unit="ms", tz="UTC").tz_convert("Asia/Seoul")
    utc = pd.to_datetime(candles["ts_ms"], unit="ms", utc=True)
    kst = utc.dt.tz_convert("Asia/Seoul").dt.tz_localize(None)
    pyupbit = candles.drop(columns="ts_ms").set_index(kst.rename(None))
    csv_path = tmp_path / "eth.csv"
    pyupbit.to_csv(csv_path)
    assert main(["backtest", "--strategy", str(DEMO), "--data", str(csv_path), "--json", "-"]) == 0
    from_csv = json.loads(capsys.readouterr().out)["summary"]
    assert main(["backtest", "--strategy", str(DEMO), "--data", str(DATA),
                 "--to", first_after.strftime("%Y-%m-%d %H:%M"), "--json", "-"]) == 0
    from_parquet = json.loads(capsys.readouterr().out)["summary"]
    assert from_csv["candles"] == 2000 and from_csv["fingerprint"] == from_parquet["fingerprint"]

    trades = synthesize_trades(candles, ticks_per_candle=8).to_frame()
    ticks = pd.DataFrame({"timestamp": trades["ts_ms"], "price": trades["price"], "volume": trades["volume"]})
    tick_path = tmp_path / "ticks.csv"
    ticks.to_csv(tick_path, index=False)
    assert main(["backtest", "--strategy", str(DEMO), "--data", str(tick_path), "--json", "-"]) == 0
    from_ticks = json.loads(capsys.readouterr().out)["summary"]
    assert from_ticks["candles"] is None and from_ticks["ticks"] == 16_000 and from_ticks["fills"] > 5
