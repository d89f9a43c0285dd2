"""Parameter spaces: every bad entry is a SpaceError naming it, before any trial; apply() on paths."""

from __future__ import annotations

import copy
from pathlib import Path

import optuna
import pytest
import yaml

from trader.optimize.objectives import OBJECTIVES, objective
from trader.optimize.space import SpaceError, apply, base_values, load_space, parse_path, satisfied, suggest

EXAMPLES = Path(__file__).resolve().parents[3] / "trader" / "strategy" / "examples"


@pytest.fixture
def demo() -> dict:
    return yaml.safe_load((EXAMPLES / "demo.yaml").read_text(encoding="utf-8"))


def _raises(space: dict, base: dict, *fragments: str) -> str:
    with pytest.raises(SpaceError) as info:
        load_space(space, base)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, msg
    return msg


def test_shipped_demo_space_loads(demo):
    space = load_space(EXAMPLES / "demo.space.yaml", demo)
    paths = [p.path for p in space.params]
    assert "exits.take_profit[0].gain" in paths and "exits.take_profit[1].gain" in paths
    assert space.constraints == ("exits.take_profit[1].gain > exits.take_profit[0].gain",)
    assert space.param("exits.max_hold_s").integer
    assert space.param("cooldown.max_entries_per_day").choices == (1, 2, 3, 5)
    assert base_values(space, demo)["exits.take_profit[1].gain"] == 0.02


def test_misspelt_field_is_named(demo):
    msg = _raises({"params": {"exits.take_profit[0].gian": {"low": 0.01, "high": 0.02}}}, demo,
                  "params.exits.take_profit[0].gian", "not a strategy field")
    assert msg.startswith("params.exits.take_profit[0].gian:")


def test_unknown_top_level_path_is_named(demo):
    _raises({"params": {"exit.stop_loss": {"low": 0.01, "high": 0.02}}}, demo, "params.exit.stop_loss")


def test_index_past_the_ladder_is_named(demo):
    _raises({"params": {"exits.take_profit[2].gain": {"low": 0.01, "high": 0.02}}}, demo,
            "params.exits.take_profit[2].gain", "no such index")


def test_empty_range_names_low_and_high(demo):
    assert _raises({"params": {"exits.take_profit[0].gain": {"low": 0.03, "high": 0.02}}}, demo) == \
        "params.exits.take_profit[0].gain: low > high (0.03 > 0.02): the range is empty"


def test_value_outside_the_field_is_named(demo):
    # the strategy's own validation answers (here its percent hint: 1.5 meant as 1.5 %)
    _raises({"params": {"exits.stop_loss": {"low": 0.01, "high": 1.5}}}, demo,
            "params.exits.stop_loss", "1.5", "write 0.015 for 1.5 %")
    _raises({"params": {"exits.stop_loss": {"low": 0.01, "high": 150}}}, demo,
            "params.exits.stop_loss", "150")


@pytest.mark.parametrize("entry,error", [
    ({"low": 0.1, "high": 0.5, "log": True, "step": 0.1}, "step and log"),
    ({"low": 0, "high": 0.5, "log": True}, "log range needs low > 0"),
    ({"low": 0.1, "high": 0.5, "step": -0.1}, "step: must be > 0"),
    ({"choices": []}, "non-empty list"),
    ({"low": 0.1}, "needs low and high"),
    ({"low": "a", "high": 0.5}, "low: must be a number"),
    ({"low": 0.1, "high": 0.5, "stepp": 0.1}, "unknown key"),
])
def test_malformed_ranges(demo, entry, error):
    _raises({"params": {"entry.volatility_breakout.k": entry}}, demo,
            "params.entry.volatility_breakout.k", error)


def test_partial_new_rule_is_named(demo):
    # the strategy has no dip rule; tuning only its drop leaves lookback_s missing
    _raises({"params": {"entry.dip.drop": {"low": 0.01, "high": 0.05}}}, demo,
            "params.entry.dip.drop", "entry.dip.lookback_s")


def test_unsatisfiable_constraint_is_named(demo):
    space = {"params": {"exits.take_profit[0].gain": {"low": 0.01, "high": 0.02},
                        "exits.take_profit[1].gain": {"low": 0.005, "high": 0.009}},
             "constraints": ["exits.take_profit[0].gain < 1",
                             "exits.take_profit[1].gain > exits.take_profit[0].gain"]}
    msg = _raises(space, demo, "constraints[1]", "no point of the space satisfies")
    assert "constraints[0]" not in msg


def test_constraint_on_untuned_path_uses_the_strategy(demo):
    # take_profit[1].gain stays 0.02 (the strategy's): tp0 must stay below it
    space = load_space({"params": {"exits.take_profit[0].gain": {"low": 0.01, "high": 0.03}},
                        "constraints": ["exits.take_profit[1].gain > exits.take_profit[0].gain"]}, demo)
    assert satisfied(space, {"exits.take_profit[0].gain": 0.015}, demo)
    assert not satisfied(space, {"exits.take_profit[0].gain": 0.025}, demo)


@pytest.mark.parametrize("expr,fragment", [
    ("__import__('os').system('true')", "unsupported expression"),
    ("exits.take_profit[0].gain >", "cannot parse"),
    ("exits.nothing > 1", "neither tuned nor set"),
])
def test_bad_constraints(demo, expr, fragment):
    _raises({"params": {"exits.take_profit[0].gain": {"low": 0.01, "high": 0.02}}, "constraints": [expr]},
            demo, "constraints[0]", fragment)


def test_unknown_objective_is_a_space_error():
    with pytest.raises(SpaceError, match=r"^objective: unknown name 'profit'"):
        objective("profit")
    assert objective("return_pct")({"return_pct": -1.25}) == -1.25
    assert OBJECTIVES["profit_dd"]({"return_pct": 3.0, "max_drawdown_pct": -1.5}) == 1.5
    summary = {"equity_end": 10_250_000.0, "krw_start": 10_000_000.0}
    assert OBJECTIVES["total_profit_krw"](summary) == 250_000.0
    assert OBJECTIVES["sharpe"]({"sharpe": None}) is None


def test_apply_sets_nested_paths_and_keeps_the_base(demo):
    before = copy.deepcopy(demo)
    out = apply(demo, {"exits.take_profit[1].gain": 0.05, "entry.volatility_breakout.k": 0.7,
                       "exits.trailing_stop.trail": 0.01, "entry.dip.drop": 0.02,
                       "entry.dip.lookback_s": 600})
    assert out["exits"]["take_profit"] == [{"gain": 0.01, "sell": 0.3}, {"gain": 0.05, "sell": 0.3}]
    assert out["entry"]["volatility_breakout"] == {"k": 0.7}
    assert out["exits"]["trailing_stop"] == {"activate_at": 0.015, "trail": 0.01}
    assert out["entry"]["dip"] == {"drop": 0.02, "lookback_s": 600}
    assert demo == before
    with pytest.raises(KeyError, match=r"index \[4\]"):
        apply(demo, {"exits.take_profit[4].gain": 0.1})


def test_parse_path():
    assert parse_path("exits.take_profit[0].gain") == ["exits", "take_profit", 0, "gain"]
    assert parse_path("a[1][2].b") == ["a", 1, 2, "b"]
    with pytest.raises(ValueError):
        parse_path("exits..stop_loss")


def test_suggest_asks_each_kind(demo):
    space = load_space(EXAMPLES / "demo.space.yaml", demo)
    fixed = {"entry.volatility_breakout.k": 0.45000000000000007, "exits.take_profit[0].gain": 0.012,
             "exits.take_profit[1].gain": 0.03, "exits.stop_loss": 0.02, "exits.max_hold_s": 7200,
             "cooldown.max_entries_per_day": 2}
    got = suggest(optuna.trial.FixedTrial(fixed), space)
    assert got["entry.volatility_breakout.k"] == 0.45  # a stepped float keeps the step's digits
    assert got["exits.max_hold_s"] == 7200 and isinstance(got["exits.max_hold_s"], int)
    assert got["cooldown.max_entries_per_day"] == 2
    assert satisfied(space, got, demo)
    assert not satisfied(space, {**got, "exits.take_profit[1].gain": 0.011}, demo)
