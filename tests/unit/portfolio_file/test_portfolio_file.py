"""Portfolio file validation: good files load, every bad field is named, paths are relative."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from trader.portfolio_file import PortfolioConfigError, PortfolioSpec, load_portfolio, parse_portfolio
from trader.risk import TradingState
from trader.strategy.config import StrategyConfigError, load_strategy

EXAMPLES = Path(__file__).resolve().parents[3] / "trader" / "strategy" / "examples"


def _strategy(tmp_path: Path, name: str = "s.yaml", **patch) -> Path:
    data = {"market": "KRW-DOGE", "order_krw": 100000, "entry": {"immediate": True}, **patch}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _base() -> dict:
    return {"markets": ["KRW-BTC", "KRW-ETH"], "strategy": "s.yaml",
            "risk": {"max_open_positions": 2}}


@pytest.fixture
def sdir(tmp_path: Path) -> Path:
    _strategy(tmp_path)
    return tmp_path


def test_example_loads():
    spec = load_portfolio(EXAMPLES / "portfolio.yaml")
    assert spec.markets == ("KRW-BTC", "KRW-ETH", "KRW-XRP")
    assert spec.risk.max_open_positions == 2
    assert spec.risk.daily_loss_limit is not None and spec.risk.stop_loss_guard is not None
    assert spec.name == "btc-eth-xrp" and not spec.is_dynamic
    default = load_strategy(EXAMPLES / "volatility_breakout.yaml")
    for market in spec.markets:
        cfg = spec.strategy_for(market)
        assert cfg.market == market
        assert cfg.model_copy(update={"market": "KRW-BTC"}) == default


def test_minimal_file_defaults(sdir):
    spec = parse_portfolio(_base(), sdir)
    assert spec.allocation is None and spec.risk.state is TradingState.ACTIVE
    assert spec.risk.max_exposure_total is None and spec.risk.stop_loss_guard is None
    assert spec.name == "portfolio"


def test_strategy_market_key_is_ignored(sdir):
    spec = parse_portfolio(_base(), sdir)
    assert [spec.strategy_for(m).market for m in ("KRW-BTC", "KRW-ETH")] == ["KRW-BTC", "KRW-ETH"]
    assert spec.strategy_for("KRW-BTC").order_krw == 100000


def test_strategy_without_market_key(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"order_krw": 20000, "entry": {"immediate": True}}))
    assert parse_portfolio(_base(), tmp_path).strategy_for("KRW-ETH").order_krw == 20000


def test_paths_are_relative_to_the_portfolio_file(tmp_path):
    (tmp_path / "strats").mkdir()
    (tmp_path / "p").mkdir()
    _strategy(tmp_path / "strats", "a.yaml", order_krw=11000)
    _strategy(tmp_path / "strats", "b.yaml", order_krw=22000)
    data = {**_base(), "strategy": "../strats/a.yaml", "strategies": {"KRW-ETH": "../strats/b.yaml"}}
    path = tmp_path / "p" / "portfolio.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = load_portfolio(path)
    assert spec.strategy_for("KRW-BTC").order_krw == 11000
    assert spec.strategy_for("KRW-ETH").order_krw == 22000
    assert spec.strategy_for("KRW-ETH").market == "KRW-ETH"
    assert spec.name == "portfolio" and spec.strategy_files["KRW-ETH"] == tmp_path / "p" / "../strats/b.yaml"


def test_relative_path_is_not_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "p").mkdir()
    _strategy(tmp_path, "s.yaml")  # beside the working directory, not beside the portfolio
    path = tmp_path / "p" / "portfolio.yaml"
    path.write_text(yaml.safe_dump(_base()))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PortfolioConfigError, match=r"^strategy: cannot read strategy file .*p/s\.yaml"):
        load_portfolio(path)


def test_override_for_unknown_market_is_named(sdir):
    data = {**_base(), "strategies": {"KRW-DOGE": "s.yaml"}}
    with pytest.raises(PortfolioConfigError, match=r"strategies\.KRW-DOGE: not one of markets"):
        parse_portfolio(data, sdir)


def test_override_for_excluded_market_is_named(sdir):
    data = {**_base(), "markets": {"top": 3, "exclude": ["KRW-DOGE"]}, "strategies": {"KRW-DOGE": "s.yaml"}}
    with pytest.raises(PortfolioConfigError, match=r"strategies\.KRW-DOGE: excluded by markets\.exclude"):
        parse_portfolio(data, sdir)


def test_dynamic_markets_take_any_override(sdir):
    data = {**_base(), "markets": {"top": 3}, "strategies": {"KRW-DOGE": "s.yaml"}}
    spec = parse_portfolio(data, sdir)
    assert spec.is_dynamic and spec.markets == () and spec.selection.top == 3
    assert spec.selection.refresh_s == 3600 and spec.selection.exclude_warnings is True
    assert spec.strategy_for("KRW-SOL").market == "KRW-SOL"


def test_static_strategy_for_unlisted_market_is_refused(sdir):
    with pytest.raises(ValueError, match="KRW-SOL is not one of"):
        parse_portfolio(_base(), sdir).strategy_for("KRW-SOL")


def test_bad_strategy_file_is_named_with_its_field(sdir):
    _strategy(sdir, "bad.yaml", order_krw=10)
    data = {**_base(), "strategies": {"KRW-ETH": "bad.yaml"}}
    with pytest.raises(PortfolioConfigError, match=r"strategies\.KRW-ETH: order_krw: Input should be"):
        parse_portfolio(data, sdir)


def test_portfolio_error_is_a_strategy_config_error(sdir):
    with pytest.raises(StrategyConfigError):
        parse_portfolio({}, sdir)


def test_unreadable_and_non_yaml_files(tmp_path):
    with pytest.raises(PortfolioConfigError, match="cannot read portfolio file"):
        load_portfolio(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("markets: [KRW-BTC\n")
    with pytest.raises(PortfolioConfigError, match="not valid YAML"):
        load_portfolio(bad)
    (tmp_path / "list.yaml").write_text("- KRW-BTC\n")
    with pytest.raises(PortfolioConfigError, match="must be a YAML mapping"):
        load_portfolio(tmp_path / "list.yaml")


def test_from_strategy_is_a_portfolio_of_one():
    cfg = load_strategy(EXAMPLES / "demo.yaml")
    spec = PortfolioSpec.from_strategy(cfg)
    assert spec.markets == (cfg.market,) and spec.strategy_for(cfg.market) == cfg
    assert spec.risk.max_open_positions == 1 and spec.allocation is None
    risk = spec.risk
    assert (risk.max_exposure_per_market, risk.max_exposure_total, risk.daily_loss_limit,
            risk.max_drawdown_halt, risk.stop_loss_guard) == (None, None, None, None, None)
    assert risk.state is TradingState.ACTIVE


def _set(data: dict, dotted: str, value) -> dict:
    data = copy.deepcopy(data)
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


_DELETE = object()
_GUARD = {"count": 2, "window_s": 60, "pause_s": 600}

BAD = [
    ("markets", _DELETE, r"^markets: Field required"),
    ("markets", "KRW-BTC", r"^markets: should be a list of market codes or a mapping"),
    ("markets", [], r"^markets: List should have at least 1 item"),
    ("markets", ["KRW-BTC", "btc"], r"^markets\.1: 'btc' is not a KRW market code"),
    ("markets", ["BTC-ETH"], r"^markets\.0: 'BTC-ETH' is not a KRW market code"),
    ("markets", ["KRW-BTC", "KRW-BTC"], r"^markets: KRW-BTC is listed twice"),
    ("markets", {"top": 0}, r"^markets\.top: Input should be greater than or equal to 1"),
    ("markets", {"by": "value_24h"}, r"^markets\.top: Field required"),
    ("markets", {"top": 5, "by": "volume"}, r"^markets\.by: Input should be 'value_24h'"),
    ("markets", {"top": 5, "min_price": -1},
     r"^markets\.min_price: Input should be greater than or equal to 0"),
    ("markets", {"top": 5, "min_value_24h": "lots"},
     r"^markets\.min_value_24h: Input should be a valid decimal"),
    ("markets", {"top": 5, "exclude": ["eth"]}, r"^markets\.exclude\.0: 'eth' is not a KRW market code"),
    ("markets", {"top": 5, "include": ["KRW-A", "KRW-A"]}, r"^markets\.include: KRW-A is listed twice"),
    ("markets", {"top": 5, "include": ["KRW-A"], "exclude": ["KRW-A"]},
     r"^markets: KRW-A is in both include and exclude"),
    ("markets", {"top": 1, "include": ["KRW-A", "KRW-B"]},
     r"^markets: include lists 2 markets, more than top"),
    ("markets", {"top": 5, "refresh_s": 1},
     r"^markets\.refresh_s: Input should be greater than or equal to 60"),
    ("markets", {"top": 5, "toppp": 1}, r"^markets\.toppp: Extra inputs are not permitted"),
    ("strategy", _DELETE, r"^strategy: Field required"),
    ("strategy", "", r"^strategy: String should have at least 1 character"),
    ("strategy", "missing.yaml", r"^strategy: cannot read strategy file"),
    ("strategies", {"btc": "s.yaml"}, r"^strategies\.btc\.\[key\]: 'btc' is not a KRW market code"),
    ("strategies", ["s.yaml"], r"^strategies: Input should be a valid dictionary"),
    ("name", "bad name!", r"^name: String should match pattern"),
    ("allocation", {"mode": "kelly"},
     r"^allocation\.mode: Input should be 'fixed_krw', 'fraction' or 'equal'"),
    ("allocation", {"mode": "fixed_krw"}, r"^allocation: mode fixed_krw needs `krw`"),
    ("allocation", {"mode": "fixed_krw", "krw": 1000},
     r"^allocation\.krw: Input should be greater than or equal to 5000"),
    ("allocation", {"mode": "fraction"}, r"^allocation: mode fraction needs `fraction`"),
    ("allocation", {"mode": "fraction", "fraction": 10},
     r"^allocation\.fraction: 10 looks like a percent: write 0\.1 for 10 %"),
    ("allocation", {"mode": "fraction", "fraction": 0},
     r"^allocation\.fraction: Input should be greater than 0"),
    ("allocation", {"mode": "equal", "krw": 10000}, r"^allocation: mode equal takes no `krw`"),
    ("risk", _DELETE, r"^risk: Field required"),
    ("risk.max_open_positions", _DELETE, r"^risk\.max_open_positions: Field required"),
    ("risk.max_open_positions", 0, r"^risk\.max_open_positions: Input should be greater than or equal to 1"),
    ("risk.max_open_positions", 1.5, r"^risk\.max_open_positions: Input should be a valid integer"),
    ("risk.max_exposure_per_market", 0, r"^risk\.max_exposure_per_market: Input should be greater than 0"),
    ("risk.max_exposure_per_market", 50,
     r"^risk\.max_exposure_per_market: 50 looks like a percent: write 0\.5 for 50 %"),
    ("risk.max_exposure_total", 150, r"^risk\.max_exposure_total: Input should be less than or equal to 1"),
    ("risk.max_exposure_total", True, r"^risk\.max_exposure_total: should be a fraction such as 0\.05"),
    ("risk.daily_loss_limit", 3, r"^risk\.daily_loss_limit: 3 looks like a percent: write 0\.03 for 3 %"),
    ("risk.daily_loss_limit", 1, r"^risk\.daily_loss_limit: Input should be less than 1"),
    ("risk.daily_loss_limit", -0.1, r"^risk\.daily_loss_limit: Input should be greater than 0"),
    ("risk.max_drawdown_halt", 2.5,
     r"^risk\.max_drawdown_halt: 2\.5 looks like a percent: write 0\.025 for 2\.5 %"),
    ("risk.max_exposure_total", 100.0,
     r"^risk\.max_exposure_total: 100 looks like a percent: write 1 for 100 %"),
    ("risk.max_drawdown_halt", 20, r"^risk\.max_drawdown_halt: 20 looks like a percent: write 0\.2 for 20 %"),
    ("risk.stop_loss_guard", {"count": 2}, r"^risk\.stop_loss_guard\.window_s: Field required"),
    ("risk.stop_loss_guard", {**_GUARD, "count": 0},
     r"^risk\.stop_loss_guard\.count: Input should be greater than or equal to 1"),
    ("risk.stop_loss_guard", {**_GUARD, "pause_s": 0},
     r"^risk\.stop_loss_guard\.pause_s: Input should be greater than 0"),
    ("risk.stop_loss_guard", {**_GUARD, "per_market": "maybe"},
     r"^risk\.stop_loss_guard\.per_market: Input should be a valid boolean"),
    ("risk.state", "paused", r"^risk\.state: Input should be 'active', 'reducing' or 'halted'"),
    ("risk.max_positions", 2, r"^risk\.max_positions: Extra inputs are not permitted"),
    ("riks", {}, r"^riks: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("dotted", "value", "pattern"), BAD, ids=[f"{d}={v!r}" for d, v, _ in BAD])
def test_bad_field_is_named(sdir, dotted, value, pattern):
    data = _set(_base(), dotted, value)
    with pytest.raises(PortfolioConfigError, match=pattern) as err:
        parse_portfolio(data, sdir, "p.yaml")
    assert str(err.value).endswith("(in p.yaml)")


def test_several_problems_are_all_listed(sdir):
    data = _set(_set(_base(), "risk.max_open_positions", 0), "markets", ["x"])
    with pytest.raises(PortfolioConfigError) as err:
        parse_portfolio(data, sdir)
    text = str(err.value)
    assert "markets.0:" in text and "risk.max_open_positions:" in text


def test_fractions_are_exact_decimals(sdir):
    data = _set(_base(), "risk.daily_loss_limit", 0.03)
    data = _set(data, "allocation", {"mode": "fraction", "fraction": 0.1})
    spec = parse_portfolio(data, sdir)
    assert str(spec.risk.daily_loss_limit) == "0.03" and str(spec.allocation.fraction) == "0.1"
