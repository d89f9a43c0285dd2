"""The pinned results of every shipped example strategy on every shipped data file
(tests/golden/results.json) still hold; regenerate with `python -m trader golden --update`."""

from __future__ import annotations

import argparse

from trader import golden

PINNED = {"a.yaml on X_15m.parquet": {"fingerprint": "0123456789abcdef", "trades": 3, "fills": 7,
                                       "equity_end_krw": 10_001_234}}


def test_every_pair_gives_its_pinned_figures():
    expected = golden.load()
    actual = golden.compute_all()
    assert golden.differences(expected, actual) == []


def test_the_file_is_in_its_stable_form():
    # sorted keys, two-space indent, final newline: a regenerated file differs only where results moved
    assert golden.GOLDEN_FILE.read_text(encoding="utf-8") == golden.render(golden.load())


def test_a_changed_figure_is_named_with_its_entry():
    moved = {key: {**entry, "fills": 8} for key, entry in PINNED.items()}
    assert golden.differences(PINNED, moved) == ["a.yaml on X_15m.parquet: fills changed 7 -> 8"]


def test_a_missing_pair_and_a_pair_no_longer_shipped_fail():
    new = {"b.yaml on X_15m.parquet": PINNED["a.yaml on X_15m.parquet"]}
    assert golden.differences(PINNED, new) == [
        "b.yaml on X_15m.parquet: missing from the golden file",
        "a.yaml on X_15m.parquet: listed in the golden file but no longer shipped",
    ]


def test_pairs_cover_every_shipped_strategy_and_data_file():
    strategies = sorted(p.name for p in golden.STRATEGY_DIR.glob("*.yaml")
                        if not p.name.endswith(".space.yaml") and not p.name.startswith("portfolio"))
    data = sorted(p.name for p in golden.DATA_DIR.glob("*.parquet"))
    assert len(strategies) >= 2 and len(data) >= 3
    assert {"default.yaml", "demo.yaml"} <= set(strategies)
    assert sorted(golden.pairs()) == sorted(f"{s} on {d}" for s in strategies for d in data)
    assert golden.market_of(golden.DATA_DIR / "KRW-ETH_15m_2024.parquet") == "KRW-ETH"
    # the shipped portfolio is pinned too, on the shipped multi-market data
    assert "portfolio.yaml on portfolio/" in golden.portfolio_pairs()


def test_the_command_exits_1_on_a_difference_and_update_rewrites(tmp_path, capsys, monkeypatch):
    actual = {"a.yaml on X_15m.parquet": PINNED["a.yaml on X_15m.parquet"]}
    monkeypatch.setattr(golden, "compute_all", lambda: actual)
    path = tmp_path / "results.json"
    path.write_text(golden.render({"a.yaml on X_15m.parquet": {**actual["a.yaml on X_15m.parquet"],
                                                               "trades": 4}}))
    parser = argparse.ArgumentParser()
    golden.register(parser.add_subparsers())
    args = parser.parse_args(["golden", "--file", str(path)])
    assert args.func(args) == 1
    out = capsys.readouterr()
    assert "CHANGED" in out.out and "trades changed 4 -> 3" in out.err
    args = parser.parse_args(["golden", "--update", "--file", str(path)])
    assert args.func(args) == 0 and golden.load(path) == actual
    args = parser.parse_args(["golden", "--file", str(path)])
    assert args.func(args) == 0
