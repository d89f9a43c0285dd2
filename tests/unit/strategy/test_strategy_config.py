"""Strategy YAML validation: good files load, bad ones name the field path and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trader.strategy.config import StrategyConfigError, interval_ms, load_strategy

EXAMPLES = Path(__file__).resolve().parents[3] / "trader" / "strategy" / "examples"


@pytest.mark.parametrize("name", ["default.yaml", "demo.yaml"])
def test_examples_load(name):
    cfg = load_strategy(EXAMPLES / name)
    assert cfg.market.startswith("KRW-")


def test_default_example_is_the_issue_example():
    cfg = load_strategy(EXAMPLES / "default.yaml")
    assert cfg.market == "KRW-BTC" and cfg.entry.volatility_breakout.k == 0.5
    assert [(s.gain, s.sell) for s in cfg.exits.take_profit] == [(0.03, 0.3), (0.06, 0.3)]
    assert cfg.exits.trailing_stop.trail == 0.015 and cfg.cooldown.max_entries_per_day == 5
    assert cfg.exits.reversal.interval_ms == 60_000


def _write(tmp_path, data) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _base() -> dict:
    return {"market": "KRW-BTC", "order_krw": 100000, "entry": {"immediate": True},
            "exits": {"take_profit": [{"gain": 0.03, "sell": 0.3}, {"gain": 0.06, "sell": 0.3}]}}


@pytest.mark.parametrize(("patch", "path_text"), [
    (lambda d: d["exits"]["take_profit"][1].update(sell=1.5), "exits.take_profit.1.sell"),
    (lambda d: d["exits"]["take_profit"][0].update(sell=0), "exits.take_profit.0.sell"),
    (lambda d: d["exits"].update(stop_loss=-0.1), "exits.stop_loss"),
    (lambda d: d["exits"].update(stop_los=0.1), "exits.stop_los"),
    (lambda d: d.update(market="BTC"), "market"),
    (lambda d: d.update(order_fraction=0.5), "<root>: give exactly one of order_krw or order_fraction"),
    (lambda d: d.update(entry={}), "entry: at least one entry rule"),
    (lambda d: d["exits"].update(reversal={"fast_ma": 20, "slow_ma": 5}), "exits.reversal"),
    (lambda d: d["exits"].update(reversal={"fast_ma": 2, "slow_ma": 5, "interval": "5x"}),
     "exits.reversal.interval: bad interval"),
    (lambda d: d.update(limit_orders={"use_for": ["stop_loss"]}), "limit_orders.use_for.0"),
    (lambda d: d["exits"]["take_profit"].reverse(), "exits.take_profit: take-profit gains"),
])
def test_bad_file_names_field_and_file(tmp_path, patch, path_text):
    data = _base()
    patch(data)
    path = _write(tmp_path, data)
    with pytest.raises(StrategyConfigError) as err:
        load_strategy(path)
    assert path_text in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(StrategyConfigError, match="cannot read"):
        load_strategy(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("market: [unclosed")
    with pytest.raises(StrategyConfigError, match="not valid YAML"):
        load_strategy(bad)


def test_intervals():
    assert interval_ms("1m") == 60_000 and interval_ms("60m") == 3_600_000
    assert interval_ms("4h") == 14_400_000 and interval_ms("1d") == 86_400_000
    with pytest.raises(ValueError):
        interval_ms("0m")
