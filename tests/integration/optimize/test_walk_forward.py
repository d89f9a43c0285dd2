"""Walk-forward on shipped data: each window's figures equal plain backtests of that window."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from trader.backtest.api import run_backtest
from trader.cli import main
from trader.optimize import cache
from trader.optimize.space import apply
from trader.strategy.config import parse_strategy

ROOT = Path(__file__).resolve().parents[3]
STRATEGY = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
SPACE = ROOT / "trader" / "strategy" / "examples" / "demo.space.yaml"
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"
FIGURES = ("return_pct", "max_drawdown_pct", "sharpe", "sortino", "calmar", "trades", "fills",
           "equity_end", "buy_and_hold_pct", "fingerprint", "from", "to")


@pytest.fixture(autouse=True)
def var_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("TRADER_DATABASE_URL", raising=False)
    cache.forget()
    yield
    cache.forget()


@pytest.mark.parametrize("anchored", [False, True])
def test_windows_equal_plain_backtests(tmp_path, anchored, capsys):
    out = tmp_path / "wf.json"
    best_yaml = tmp_path / "next.yaml"
    args = ["optimize", "--local", "--strategy", str(STRATEGY), "--space", str(SPACE), "--data", str(DATA),
            "--from", "2024-01-01", "--to", "2024-02-12", "--trials", "4", "--seed", "3", "--min-trades", "1",
            "--walk-forward", "21d:7d", "--storage", f"sqlite:///{tmp_path}/wf.db", "--json", str(out),
            "--best-yaml", str(best_yaml)]
    assert main(args + (["--anchored"] if anchored else [])) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    rows = doc["windows"]
    # 42 days, train 21, test 7, step 7: tests start on day 21, 28, 35
    assert [(r["train"]["start"], r["test"]["start"], r["test"]["end"]) for r in rows] == [
        ("2024-01-01T00:00:00+09:00" if anchored or i == 0 else start, test, end)
        for i, (start, test, end) in enumerate([
            ("2024-01-01T00:00:00+09:00", "2024-01-22T00:00:00+09:00", "2024-01-29T00:00:00+09:00"),
            ("2024-01-08T00:00:00+09:00", "2024-01-29T00:00:00+09:00", "2024-02-05T00:00:00+09:00"),
            ("2024-01-15T00:00:00+09:00", "2024-02-05T00:00:00+09:00", "2024-02-12T00:00:00+09:00"),
        ])]
    assert all(r["train"]["end"] == r["test"]["start"] for r in rows)
    strategy = yaml.safe_load(STRATEGY.read_text(encoding="utf-8"))
    equity = 10_000_000.0
    for r in rows:
        config = parse_strategy(apply(strategy, r["best_params"]))
        for part, key in (("test", "out_of_sample"), ("train", "in_sample")):
            plain = run_backtest(config, DATA, start=r[part]["start"], end=r[part]["end"], seed=3).summary
            assert {k: r[key][k] for k in FIGURES} == {k: plain[k] for k in FIGURES}, (r["index"], part)
        assert r["in_sample"]["value"] == r["in_sample"]["return_pct"]
        # the winner is the best of the window's trials, which are listed with it
        scored = [t["value"] for t in r["trials"] if t["value"] is not None]
        assert r["in_sample"]["value"] == max(scored)
        assert len(r["trials"]) == 4
        dsr = r["overfitting"]["dsr"]
        assert dsr is None or 0.0 <= dsr <= 1.0
        equity *= 1 + r["out_of_sample"]["return_pct"] / 100
    # the out-of-sample results compound into one curve
    chained = (equity / 10_000_000 - 1) * 100
    assert doc["summary"]["out_of_sample_return_pct"] == pytest.approx(chained, rel=1e-9)
    assert math.isclose(doc["equity"]["krw"][-1], equity, rel_tol=1e-3)
    assert doc["equity"]["ts_ms"] == sorted(doc["equity"]["ts_ms"])
    assert set(doc["stability"]) == {p for p in yaml.safe_load(SPACE.read_text())["params"]}
    assert doc["best"]["params"] == rows[-1]["best_params"]
    assert [t["window"] for t in doc["trials"]] == [i for i in range(len(rows)) for _ in range(4)]
    assert "train 2024-01-" in best_yaml.read_text(encoding="utf-8")
    assert "out of sample, chained" in capsys.readouterr().out
