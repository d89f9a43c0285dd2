"""`python -m trader golden`: the pinned results of every shipped example strategy on every shipped
data file, checked (exit 1 on a difference) or regenerated (`--update`).

Each strategy in trader/strategy/examples/*.yaml runs, with its `market` replaced by the data's
(the file name's prefix: KRW-ETH_15m_2024.parquet → KRW-ETH), over each whole data/*.parquet file
with `run_backtest`'s default settings. The figures kept per pair are the fingerprint (first 16
hex of trader/fingerprint.py's digest), the round trips, the fills and the final equity in whole
KRW; every shipped portfolio file (examples/portfolio*.yaml) on data/portfolio/ is pinned the same
way. They live in tests/golden/results.json (sorted keys, two-space indent). A change of results
that is intended is committed with the regenerated file and says why they moved.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trader import cli_types

ROOT = Path(__file__).resolve().parent.parent
STRATEGY_DIR = ROOT / "trader" / "strategy" / "examples"
DATA_DIR = ROOT / "data"
GOLDEN_FILE = ROOT / "tests" / "golden" / "results.json"
# run_backtest's defaults, spelled out so the file says what produced it
SETTINGS = {"krw": 10_000_000, "seed": 0, "ticks_per_candle": 8}
FIGURES = ("fingerprint", "trades", "fills", "equity_end_krw")

Entry = dict[str, Any]


def pair_key(strategy: Path, data: Path) -> str:
    return f"{strategy.name} on {data.name}"


def shipped_strategies() -> list[Path]:
    """The example strategy files: every examples/*.yaml but the other kinds of file shipped beside
    them (parameter spaces `*.space.yaml`, portfolio files `portfolio*.yaml`)."""
    return [p for p in sorted(STRATEGY_DIR.glob("*.yaml"))
            if not p.name.endswith(".space.yaml") and not p.name.startswith("portfolio")]


def pairs() -> dict[str, tuple[Path, Path]]:
    """Every shipped strategy × data file, by its key in the golden file."""
    out = {}
    for strategy in shipped_strategies():
        for data in sorted(DATA_DIR.glob("*.parquet")):
            out[pair_key(strategy, data)] = (strategy, data)
    return out


def market_of(data: Path) -> str:
    """The data file's market (trader/marketdata/candles.py), which replaces each strategy's."""
    from trader.marketdata.candles import market_of_file

    market = market_of_file(data)
    if market is None:
        raise ValueError(f"{data}: its name does not start with a market (KRW-ETH_15m_2024.parquet)")
    return market


def compute(strategy: Path, data: Path) -> Entry:
    """Backtest one pair over the whole file and return its pinned figures."""
    from decimal import Decimal

    import yaml

    from trader.backtest.api import run_backtest
    from trader.strategy.config import parse_strategy

    raw = yaml.safe_load(strategy.read_text(encoding="utf-8"))
    raw["market"] = market_of(data)
    config = parse_strategy(raw, str(strategy))
    res = run_backtest(config, data, krw=Decimal(SETTINGS["krw"]), seed=SETTINGS["seed"],
                       ticks_per_candle=SETTINGS["ticks_per_candle"])
    s = res.summary
    return {"fingerprint": s["fingerprint"][:16], "trades": int(s["trades"]), "fills": int(s["fills"]),
            "equity_end_krw": round(s["equity_end"])}


PORTFOLIO_DATA_DIR = DATA_DIR / "portfolio"


def portfolio_pairs() -> dict[str, tuple[Path, Path]]:
    """Every shipped portfolio file (examples/portfolio*.yaml) on the shipped portfolio data."""
    return {f"{p.name} on {PORTFOLIO_DATA_DIR.name}/": (p, PORTFOLIO_DATA_DIR)
            for p in sorted(STRATEGY_DIR.glob("portfolio*.yaml"))}


def compute_portfolio(portfolio: Path, data_dir: Path) -> Entry:
    """Backtest one portfolio over its data folder (whole files) and return its pinned figures."""
    from decimal import Decimal

    from trader.backtest.portfolio_api import run_portfolio_backtest

    res = run_portfolio_backtest(portfolio, data_dir, krw=Decimal(SETTINGS["krw"]), seed=SETTINGS["seed"],
                                 ticks_per_candle=SETTINGS["ticks_per_candle"])
    s = res.summary
    return {"fingerprint": s["fingerprint"][:16], "trades": int(s["trades"]), "fills": int(s["fills"]),
            "equity_end_krw": round(s["equity_end"])}


def compute_all() -> dict[str, Entry]:
    out = {key: compute(strategy, data) for key, (strategy, data) in pairs().items()}
    out.update({key: compute_portfolio(p, d) for key, (p, d) in portfolio_pairs().items()})
    return out


def render(results: dict[str, Entry]) -> str:
    """The golden file's text: stable, so a regenerated file differs only where results moved."""
    body = {"settings": SETTINGS, "results": results}
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load(path: Path = GOLDEN_FILE) -> dict[str, Entry]:
    """The pinned results; a file made with other settings is refused (its figures mean other runs)."""
    body = json.loads(path.read_text(encoding="utf-8"))
    if body.get("settings") != SETTINGS:
        raise ValueError(f"{path}: settings {body.get('settings')} are not {SETTINGS}; "
                         "regenerate with `python -m trader golden --update`")
    return body["results"]


def differences(expected: dict[str, Entry], actual: dict[str, Entry]) -> list[str]:
    """One line per problem: a pair missing from the file, a pair the file lists that no longer
    exists, or a figure that changed (named, with its pinned and its new value)."""
    problems = [f"{key}: missing from the golden file" for key in sorted(actual.keys() - expected.keys())]
    problems += [f"{key}: listed in the golden file but no longer shipped"
                 for key in sorted(expected.keys() - actual.keys())]
    for key in sorted(expected.keys() & actual.keys()):
        for fig in FIGURES:
            old, new = expected[key].get(fig), actual[key].get(fig)
            if old != new:
                problems.append(f"{key}: {fig} changed {old!r} -> {new!r}")
    return problems


def table(expected: dict[str, Entry], actual: dict[str, Entry]) -> str:
    rows = [("pair", "fingerprint", "trades", "fills", "equity KRW", "")]
    for key in sorted(actual.keys() | expected.keys()):
        a, e = actual.get(key), expected.get(key)
        shown = a or e or {}
        status = "ok" if a == e else ("new" if e is None else "gone" if a is None else "CHANGED")
        rows.append((key, str(shown.get("fingerprint", "")), str(shown.get("trades", "")),
                     str(shown.get("fills", "")), f"{shown.get('equity_end_krw', 0):,}", status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) if i < 5 else c
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
                     for r in rows)


def main(args: argparse.Namespace) -> int:
    actual = compute_all()
    path = Path(args.file)
    if args.update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(actual), encoding="utf-8")
        print(table(actual, actual))
        print(f"wrote {path} ({len(actual)} pairs)")
        return 0
    try:
        expected = load(path)
    except (OSError, ValueError) as exc:
        print(f"golden: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    print(table(expected, actual))
    problems = differences(expected, actual)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print("results moved: if intended, run `python -m trader golden --update` and say why in the commit",
              file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "golden", help="check (or --update) the pinned backtest results of the shipped examples",
        description="Backtest every trader/strategy/examples/*.yaml on every data/*.parquet and compare "
                    "fingerprint, round trips, fills and final equity with tests/golden/results.json.")
    parser.add_argument("--update", action="store_true", help="rewrite the file with the current results")
    parser.add_argument("--file", type=cli_types.out_file, default=str(GOLDEN_FILE),
                        help="the golden results file")
    parser.set_defaults(func=main)
