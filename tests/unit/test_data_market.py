"""A data file's market (its `market` column, else its name) is checked against the strategy's and
the simulator's: backtest, `run --paper` and `sim --market` refuse a mismatch naming both."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trader.backtest.api import run_backtest
from trader.cli import main
from trader.marketdata.candles import MarketDataError, check_data_market, market_of_file
from trader.sim.app import DEFAULT_DATA, SimConfig, Simulator
from trader.strategy.config import load_strategy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "trader" / "strategy" / "examples"
BTC_DATA = ROOT / "data" / "KRW-BTC_day_2024-2025.parquet"


def _candles(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({"ts_ms": [1_704_067_200_000 + i * 900_000 for i in range(n)],
                         "open": 100.0, "high": 110.0, "low": 90.0, "close": 105.0, "volume": 1.0,
                         "value": 105.0})


@pytest.mark.parametrize(("name", "market"), [
    ("KRW-ETH_15m_2024.parquet", "KRW-ETH"),
    ("KRW-BTC_day_2024-2025.parquet", "KRW-BTC"),
    ("KRW-XRP.csv", "KRW-XRP"),
    ("candles.csv", None),
    ("krw-eth_15m.csv", None),
    ("KRW-ETHX", None),
])
def test_market_of_file_from_name(tmp_path: Path, name: str, market: str | None) -> None:
    assert market_of_file(tmp_path / name) == market


def test_market_column_wins_over_the_name(tmp_path: Path) -> None:
    path = tmp_path / "KRW-ETH_15m.csv"
    _candles().assign(market="KRW-BTC").to_csv(path, index=False)
    assert market_of_file(path) == "KRW-BTC"
    pq = tmp_path / "data.parquet"
    _candles().assign(market="KRW-SOL").to_parquet(pq, index=False)
    assert market_of_file(pq) == "KRW-SOL"


def test_a_file_of_several_markets_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    _candles(2).assign(market=["KRW-BTC", "KRW-ETH"]).to_csv(path, index=False)
    with pytest.raises(MarketDataError, match="several markets"):
        market_of_file(path)


def test_check_names_both_markets() -> None:
    with pytest.raises(MarketDataError, match=r"KRW-BTC.*KRW-ETH"):
        check_data_market("KRW-BTC", DEFAULT_DATA)
    check_data_market("KRW-ETH", DEFAULT_DATA)
    check_data_market("KRW-BTC", Path("ticks.csv"))  # says nothing: allowed


def test_backtest_refuses_another_markets_data() -> None:
    with pytest.raises(MarketDataError, match=r"KRW-ETH.*KRW-BTC_day"):
        run_backtest(EXAMPLES / "demo.yaml", BTC_DATA)


def test_backtest_cli_refuses_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["backtest", "--strategy", str(EXAMPLES / "demo.yaml"), "--data", str(BTC_DATA)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "KRW-ETH" in err and "KRW-BTC" in err and "Traceback" not in err


def test_backtest_of_the_files_market_still_runs() -> None:
    config = load_strategy(EXAMPLES / "default.yaml")
    assert config.market == "KRW-BTC"
    res = run_backtest(config, BTC_DATA, start="2024-01-01", end="2024-03-01")
    assert res.summary["market"] == "KRW-BTC"


def test_golden_replaces_the_market_by_the_files() -> None:
    from trader import golden

    entry = golden.compute(EXAMPLES / "default.yaml", ROOT / "data" / "KRW-ETH_60m_2024.parquet")
    assert entry["fills"] >= 0 and len(entry["fingerprint"]) == 16


def test_simulator_refuses_another_market() -> None:
    with pytest.raises(MarketDataError, match=r"--market is KRW-BTC.*holds KRW-ETH"):
        Simulator(SimConfig(market="KRW-BTC", data=DEFAULT_DATA))
    assert Simulator(SimConfig(market="KRW-ETH", data=DEFAULT_DATA)).market == "KRW-ETH"
    assert Simulator(SimConfig(data=BTC_DATA)).market == "KRW-BTC"


def test_sim_cli_refuses_another_market(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--market", "KRW-BTC", "--port", "0"]) == 2
    out = capsys.readouterr().out
    assert "KRW-BTC" in out and "KRW-ETH" in out


def test_paper_run_of_a_btc_strategy_on_the_eth_default_is_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["run", "--paper", "--strategy", str(EXAMPLES / "default.yaml")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "KRW-BTC" in err and "KRW-ETH" in err and "--sim-data" in err
