"""Portfolio backtest: several markets, one balance, the risk gate, the one execution policy.

Runs the shipped portfolio (trader/strategy/examples/portfolio.yaml) over the shipped real daily
candles of KRW-BTC, KRW-ETH and KRW-XRP (data/portfolio/) and a few hand-made portfolios."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from trader.backtest.api import run_backtest
from trader.backtest.cli import run as cli_run
from trader.backtest.portfolio import PortfolioBacktest
from trader.backtest.portfolio_api import find_data_files, run_portfolio_backtest
from trader.cli import build_parser
from trader.fingerprint import fingerprint
from trader.marketdata.candles import MarketDataError, infer_interval_ms, load_frame
from trader.marketdata.synth import synthesize_trades
from trader.portfolio_file import PortfolioSpec, parse_portfolio
from trader.strategy.config import load_strategy

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "trader" / "strategy" / "examples"
DATA_DIR = ROOT / "data" / "portfolio"
MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP"]


@pytest.fixture(scope="module")
def shipped():
    return run_portfolio_backtest(EXAMPLES / "portfolio.yaml", DATA_DIR)


def test_the_shipped_portfolio_trades_every_market_within_its_limits(shipped) -> None:
    s, out = shipped.summary, shipped.output
    assert set(s["markets"]) == set(MARKETS)
    assert {f.market for f in out.fills} == set(MARKETS)
    assert all(s["markets"][m]["fills"] > 0 for m in MARKETS)
    assert sum(s["markets"][m]["fills"] for m in MARKETS) == s["fills"] == len(out.fills)
    # never more positions than max_open_positions, and the limit was really reached
    assert out.max_open_seen == s["max_open_positions"] == 2
    # never spends KRW it does not have: the one balance never goes below zero
    assert min(f.krw_after for f in out.fills) >= 0
    # entries beyond the limit were refused by the gate, with the reason recorded
    assert out.refusals and all(r.reason for r in out.refusals)
    assert s["refusals"] == sum(r.repeats for r in out.refusals)


def test_fixed_allocation_sizes_every_entry(shipped) -> None:
    buys = [f for f in shipped.output.fills if f.side == "bid"]
    # fixed_krw 1,000,000: a market buy spends at most that (Upbit's `price` excludes the fee)
    assert buys and all(f.funds <= Decimal(1_000_000) for f in buys)
    by_intent: dict[str, Decimal] = {}
    for f in buys:
        by_intent[f.intent_id] = by_intent.get(f.intent_id, Decimal(0)) + f.funds
    assert max(by_intent.values()) <= Decimal(1_000_000)


def _configs_and_trades(strategy: str):
    base = load_strategy(EXAMPLES / strategy)
    files = find_data_files(DATA_DIR, MARKETS)
    configs, trades = {}, {}
    for m in MARKETS:
        _kind, frame = load_frame(files[m])
        configs[m] = base.model_copy(update={"market": m})
        trades[m] = synthesize_trades(frame, ticks_per_candle=8, seed=0, interval_ms=infer_interval_ms(frame))
    return configs, trades


@pytest.mark.parametrize("strategy", ["volatility_breakout.yaml", "demo.yaml"])
def test_skipping_quiet_trades_across_markets_changes_nothing(strategy: str) -> None:
    configs, trades = _configs_and_trades(strategy)
    fast = PortfolioBacktest(configs, trades, skip=True).run()
    slow = PortfolioBacktest(configs, trades, skip=False).run()
    assert fingerprint(fast.fills) == fingerprint(slow.fills)
    assert fast.final_krw == slow.final_krw and fast.final_volumes == slow.final_volumes
    assert slow.processed == slow.ticks and fast.processed <= fast.ticks


def test_a_strategy_as_a_portfolio_of_one_is_the_single_market_backtest() -> None:
    config = load_strategy(EXAMPLES / "volatility_breakout.yaml")
    single = run_backtest(config, DATA_DIR / "KRW-BTC_day_2017-2022.parquet")
    port = run_portfolio_backtest(PortfolioSpec.from_strategy(config), DATA_DIR)
    assert port.fingerprint == single.fingerprint
    assert port.summary["fills"] == single.summary["fills"]
    assert round(port.summary["equity_end"]) == round(single.summary["equity_end"])


def test_one_balance_two_markets_never_spend_the_same_won(tmp_path: Path) -> None:
    # 10,000,000 KRW and entries of 6,000,000: while one market holds its position the other's
    # entry gets only what is free (the gate shrinks it), never the first market's won
    spec = parse_portfolio({"markets": ["KRW-BTC", "KRW-ETH"], "strategy": "volatility_breakout.yaml",
                            "allocation": {"mode": "fixed_krw", "krw": 6_000_000},
                            "risk": {"max_open_positions": 2}}, EXAMPLES)
    res = run_portfolio_backtest(spec, DATA_DIR, start="2020-10-01", end="2021-01-01")
    fills = res.output.fills
    assert {f.market for f in fills} == {"KRW-BTC", "KRW-ETH"}
    assert min(f.krw_after for f in fills) >= 0
    held: dict[str, Decimal] = {}
    krw = Decimal(10_000_000)
    shrunk = 0
    for f in fills:
        others = [m for m, v in held.items() if v > 0 and m != f.market]
        if f.side == "bid" and not held.get(f.market) and others:
            # an entry while the other market is in: it cost no more than the KRW left
            assert f.funds + f.fee <= krw, (f, krw)
            shrunk += f.funds < Decimal(6_000_000)
        held[f.market] = f.volume_after
        krw = f.krw_after
    assert shrunk > 0, "no entry ever met a balance already committed to the other market"


def _cli(argv: list[str]) -> int:
    return cli_run(build_parser().parse_args(argv))


def test_cli_json_has_markets_fills_with_market_and_refusals(tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.json"
    assert _cli(["backtest", "--portfolio", str(EXAMPLES / "portfolio.yaml"), "--data-dir", str(DATA_DIR),
                 "--from", "2021-01-01", "--to", "2021-04-01", "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert set(data["summary"]["markets"]) == set(MARKETS)
    assert data["fills"] and all(row["market"] in MARKETS for row in data["fills"])
    assert {"return_pct", "max_drawdown_pct", "trades", "fingerprint"} <= set(data["summary"])
    assert all({"market", "reason", "time_kst"} <= set(r) for r in data["refusals"])
    text = capsys.readouterr().out
    assert "KRW-XRP" in text and "fingerprint" in text


def test_cli_errors_name_what_is_wrong(tmp_path: Path, capsys) -> None:
    assert _cli(["backtest", "--portfolio", str(EXAMPLES / "portfolio.yaml")]) == 2
    assert "--data-dir" in capsys.readouterr().err
    (tmp_path / "KRW-BTC_day.parquet").write_bytes((DATA_DIR / "KRW-BTC_day_2017-2022.parquet").read_bytes())
    portfolio = str(EXAMPLES / "portfolio.yaml")
    assert _cli(["backtest", "--portfolio", portfolio, "--data-dir", str(tmp_path)]) == 2
    assert "no data file for KRW-ETH" in capsys.readouterr().err
    with pytest.raises(MarketDataError, match="several data files for KRW-BTC"):
        (tmp_path / "KRW-BTC.csv").write_text("x")
        find_data_files(tmp_path, ["KRW-BTC"])
