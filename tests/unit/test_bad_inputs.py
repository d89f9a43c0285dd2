"""Bad inputs, table-driven: each is refused with exit code 2 (or the loader's error type) and a
message that names the field, column or option — never a traceback (issue 15, items 5–8).

Strategy files and candle files go through their loaders and through `trader backtest`; command
lines go through `trader.cli.main` in-process. A hypothesis fuzz feeds the strategy loader random
YAML-ish text and random mappings: only StrategyConfigError may come out.
"""

from __future__ import annotations

import contextlib
import json
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.cli import main
from trader.marketdata.candles import MarketDataError, load_frame
from trader.strategy.config import StrategyConfigError, load_strategy, parse_strategy

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
ETH_DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"

GOOD = """market: KRW-ETH
order_krw: 100000
entry:
  immediate: true
exits:
  stop_loss: 0.02
  max_hold_s: 3600
"""


def _with(**changes: object) -> str:
    """GOOD with top-level/dotted keys replaced (None deletes), as YAML text."""
    data = yaml.safe_load(GOOD)
    for dotted, value in changes.items():
        keys = dotted.split("__")
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is None:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    return yaml.safe_dump(data)


# ---- strategy files: (id, file bytes, what the message must name) ----------------------------
STRATEGY_CASES: list[tuple[str, bytes, str]] = [
    ("non-utf8 byte", b"market: KRW-\xff\n", "not UTF-8"),
    ("bad utf8 in value", GOOD.encode() + b"# \xc3\x28\n", "line 8"),
    ("latin-1 file", "market: KRW-ETH # é\n".encode("latin-1"), "not UTF-8"),
    ("utf-16", GOOD.encode("utf-16"), "not UTF-8"),
    ("duplicate market", (GOOD + "market: KRW-BTC\n").encode(), "market: key given twice"),
    ("duplicate nested", b"market: KRW-ETH\norder_krw: 10000\nentry: {immediate: true, immediate: false}\n",
     "immediate: key given twice"),
    ("duplicate exits key", (GOOD + "  stop_loss: 0.05\n").encode(), "stop_loss: key given twice"),
    ("deep list nesting", ("a: " + "[" * 5000 + "]" * 5000).encode(), "nested more than"),
    ("deep map nesting", ("a: " + "{b: " * 40 + "1" + "}" * 40).encode(), "nested more than"),
    ("order_krw 1e30", _with(order_krw="1e30").encode(), "order_krw"),
    ("order_krw inf", GOOD.replace("100000", ".inf").encode(), "order_krw"),
    ("order_krw nan", GOOD.replace("100000", ".nan").encode(), "order_krw"),
    ("order_krw above Upbit max", _with(order_krw=1_000_000_001).encode(), "order_krw"),
    ("order_krw below min", _with(order_krw=4999).encode(), "order_krw"),
    ("order_krw text", _with(order_krw="lots").encode(), "order_krw"),
    ("order_krw negative", _with(order_krw=-5).encode(), "order_krw"),
    ("both sizings", _with(order_fraction=0.1).encode(), "order_krw or order_fraction"),
    ("no sizing", _with(order_krw=None).encode(), "order_krw or order_fraction"),
    ("order_fraction percent", _with(order_krw=None, order_fraction=50).encode(), "write 0.5 for 50 %"),
    ("stop_loss 3 percent", _with(exits__stop_loss=3).encode(), "write 0.03 for 3 %"),
    ("stop_loss 1", _with(exits__stop_loss=1).encode(), "exits.stop_loss"),
    ("stop_loss bool", _with(exits__stop_loss=True).encode(), "exits.stop_loss"),
    ("max_hold_s inf", GOOD.replace("3600", ".inf").encode(), "exits.max_hold_s"),
    ("max_hold_s huge", _with(exits__max_hold_s=1e300).encode(), "exits.max_hold_s"),
    ("max_hold_s 20 years", _with(exits__max_hold_s=20 * 365 * 86400).encode(), "exits.max_hold_s"),
    ("max_hold_s negative", _with(exits__max_hold_s=-1).encode(), "exits.max_hold_s"),
    ("lookback_s inf", _with(entry__dip={"drop": 0.01, "lookback_s": float("inf")}).encode(),
     "entry.dip.lookback_s"),
    ("dip drop percent", _with(entry__dip={"drop": 5, "lookback_s": 60}).encode(), "write 0.05 for 5 %"),
    ("interval overflow", _with(entry__trend_filter={"ma": 3, "interval": "99999999999999999999d"}).encode(),
     "entry.trend_filter.interval"),
    ("interval two years", _with(entry__trend_filter={"ma": 3, "interval": "730d"}).encode(),
     "entry.trend_filter.interval"),
    ("interval unit", _with(entry__trend_filter={"ma": 3, "interval": "5w"}).encode(),
     "entry.trend_filter.interval"),
    ("timeout_s inf", _with(limit_orders={"use_for": ["entry"], "timeout_s": float("inf")}).encode(),
     "limit_orders.timeout_s"),
    ("cooldown huge", _with(cooldown={"after_sell_s": 1e20}).encode(), "cooldown.after_sell_s"),
    ("trail percent", _with(exits__trailing_stop={"activate_at": 0.01, "trail": 2}).encode(),
     "write 0.02 for 2 %"),
    ("sharp drop percent", _with(exits__sharp_drop={"drop": 10, "within_s": 60}).encode(),
     "write 0.1 for 10 %"),
    ("take-profit sell percent", _with(exits__take_profit=[{"gain": 0.01, "sell": 30}]).encode(),
     "write 0.3 for 30 %"),
    ("unknown key", (GOOD + "stoploss: 0.02\n").encode(), "stoploss"),
    ("bad market", _with(market="BTC").encode(), "market"),
    ("impossible date value", (GOOD + "note: 2024-13-45\n").encode(), "2024-13-45"),
    ("not a mapping", b"- a\n- b\n", "must be a YAML mapping"),
    ("empty file", b"", "must be a YAML mapping"),
    ("yaml syntax", b"market: [KRW-ETH\n", "not valid YAML"),
    ("tab indentation", b"market: KRW-ETH\nentry:\n\timmediate: true\n", "not valid YAML"),
    ("python tag", b"market: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("over 1 MiB", b"# " + b"x" * (1 << 20) + b"\n" + GOOD.encode(), "1 MiB"),
]


@pytest.mark.parametrize(("content", "names"), [c[1:] for c in STRATEGY_CASES],
                         ids=[c[0] for c in STRATEGY_CASES])
def test_bad_strategy_file(tmp_path: Path, content: bytes, names: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    with pytest.raises(StrategyConfigError) as err:
        load_strategy(path)
    assert names in str(err.value)


def test_good_strategy_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    assert load_strategy(path).exits.max_hold_s == 3600


def test_a_50_mib_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as fh:
        fh.truncate(50 << 20)  # sparse: refused by size, never read
    with pytest.raises(StrategyConfigError, match="52,428,800 bytes"):
        load_strategy(path)


@pytest.mark.parametrize(("content", "names"), [STRATEGY_CASES[i][1:] for i in (0, 4, 9, 19, 22)],
                         ids=[STRATEGY_CASES[i][0] for i in (0, 4, 9, 19, 22)])
def test_bad_strategy_file_in_backtest_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              content: bytes, names: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    assert main(["backtest", "--strategy", str(path), "--data", str(ETH_DATA)]) == 2
    err = capsys.readouterr().err
    assert names in err and "Traceback" not in err


# ---- candle and tick files: (id, CSV text, what the message must name) ------------------------
HEAD = "ts_ms,open,high,low,close,volume,value\n"
ROW = "1704067200000,100,110,90,105,1,105\n"
ROW2 = "1704068100000,105,112,100,108,1,108\n"
REST_HEAD = "candle_date_time_kst,opening_price,high_price,low_price,trade_price,candle_acc_trade_volume\n"
PYUPBIT_HEAD = ",open,high,low,close,volume,value\n"

CANDLE_CASES: list[tuple[str, str, str]] = [
    ("nan open", HEAD + ROW + "1704068100000,nan,112,100,108,1,108\n", "line 3: column open"),
    ("empty high", HEAD + ROW + "1704068100000,105,,100,108,1,108\n", "line 3: column high"),
    ("text close", HEAD + "1704067200000,100,110,90,abc,1,105\n", "line 2: column close"),
    ("negative low", HEAD + ROW + "1704068100000,105,112,-1,108,1,108\n", "line 3: column low"),
    ("zero open", HEAD + "1704067200000,0,110,0,105,1,105\n", "column open"),
    ("inf high", HEAD + "1704067200000,100,inf,90,105,1,105\n", "line 2: column high"),
    ("negative volume", HEAD + "1704067200000,100,110,90,105,-3,105\n", "line 2: column volume"),
    ("nan volume", HEAD + "1704067200000,100,110,90,105,nan,105\n", "column volume"),
    ("text value", HEAD + "1704067200000,100,110,90,105,1,lots\n", "column value"),
    ("high below close", HEAD + ROW + "1704068100000,105,106,100,108,1,108\n", "line 3: column high"),
    ("low above open", HEAD + ROW + "1704068100000,105,112,106,108,1,108\n", "line 3: column low"),
    ("inverted high low", HEAD + "1704067200000,100,90,110,105,1,105\n", "line 2: column high"),
    ("text ts_ms", HEAD + "yesterday,100,110,90,105,1,105\n", "line 2: column ts_ms"),
    ("fraction ts_ms", HEAD + "1704067200000.5,100,110,90,105,1,105\n", "column ts_ms"),
    ("bad kst date", REST_HEAD + "2024-13-01T09:00:00,100,110,90,105,1\n",
     "line 2: column candle_date_time_kst"),
    ("text kst date", REST_HEAD + "2024-01-01T09:00:00,100,110,90,105,1\nsoon,100,110,90,105,1\n",
     "line 3: column candle_date_time_kst"),
    ("bad pyupbit date", PYUPBIT_HEAD + "2024-02-30 09:00:00,100,110,90,105,1,105\n", "line 2"),
    ("text rest price", REST_HEAD + "2024-01-01T09:00:00,100,110,ninety,105,1\n", "column low"),
    ("missing column", "ts_ms,open,high,close\n1,2,3,4\n", "missing columns ['low']"),
    ("unknown layout", "a,b,c\n1,2,3\n", "unknown candle layout"),
    ("no rows", HEAD, "no rows"),
    ("nan tick price", "timestamp,price,volume\n1704067200000,100,1\n1704067201000,nan,1\n",
     "line 3: column price"),
    ("negative tick price", "timestamp,price,volume\n1704067200000,-100,1\n", "line 2: column price"),
    ("text tick volume", "timestamp,price,volume\n1704067200000,100,some\n", "line 2: column volume"),
    ("bad tick date", "timestamp,price,volume\n2024-01-01T00:00:00Z,100,1\n2024-99-01T00:00:00Z,100,1\n",
     "line 3: column timestamp"),
]


@pytest.mark.parametrize(("text", "names"), [c[1:] for c in CANDLE_CASES], ids=[c[0] for c in CANDLE_CASES])
def test_bad_candle_file(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "KRW-ETH_15m.csv"
    path.write_text(text)
    with pytest.raises(MarketDataError) as err:
        load_frame(path)
    assert names in str(err.value)
    assert str(path) in str(err.value)


def test_bad_parquet_row_is_named(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"ts_ms": [1_704_067_200_000, 1_704_068_100_000], "open": [100.0, float("nan")],
                          "high": [110.0, 112.0], "low": [90.0, 100.0], "close": [105.0, 108.0]})
    path = tmp_path / "KRW-ETH_15m.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(MarketDataError, match=r"row 2: column open"):
        load_frame(path)


def test_good_csv_layouts_still_load(tmp_path: Path) -> None:
    for name, text in (("a.csv", HEAD + ROW + ROW2),
                       ("b.csv", REST_HEAD + "2024-01-01T09:00:00,100,110,90,105,1\n"),
                       ("c.csv", PYUPBIT_HEAD + "2024-01-01 09:00:00,100,110,90,105,1,105\n")):
        (tmp_path / name).write_text(text)
        kind, frame = load_frame(tmp_path / name)
        assert kind == "candles" and int(frame["ts_ms"].iloc[0]) == 1_704_067_200_000


@pytest.mark.parametrize(("text", "names"), [CANDLE_CASES[i][1:] for i in (0, 2, 9, 14)],
                         ids=[CANDLE_CASES[i][0] for i in (0, 2, 9, 14)])
def test_bad_candle_file_in_backtest_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            text: str, names: str) -> None:
    path = tmp_path / "KRW-ETH_15m.csv"
    path.write_text(text)
    assert main(["backtest", "--strategy", str(DEMO), "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert names in err and "Traceback" not in err


# ---- command lines: (id, argv, the option the message names) ---------------------------------
BT = ["backtest", "--strategy", str(DEMO), "--data", str(ETH_DATA)]
RUN = ["run", "--paper", "--strategy", str(DEMO)]
OPT = ["optimize", "--strategy", str(DEMO), "--space", "s.yaml", "--data", str(ETH_DATA), "--trials", "2"]

CLI_CASES: list[tuple[str, list[str], str]] = [
    ("backtest from month 13", [*BT, "--from", "2024-13-01"], "--from"),
    ("backtest to garbage", [*BT, "--to", "garbage"], "--to"),
    ("backtest from feb 30", [*BT, "--from", "2024-02-30"], "--from"),
    ("backtest krw 0", [*BT, "--krw", "0"], "--krw"),
    ("backtest krw nan", [*BT, "--krw", "nan"], "--krw"),
    ("backtest krw 1e30", [*BT, "--krw", "1e30"], "--krw"),
    ("backtest krw negative", [*BT, "--krw=-5"], "--krw"),
    ("backtest krw text", [*BT, "--krw", "many"], "--krw"),
    ("backtest seed text", [*BT, "--seed", "x"], "--seed"),
    ("backtest seed negative", [*BT, "--seed=-1"], "--seed"),
    ("backtest ticks 0", [*BT, "--ticks-per-candle", "0"], "--ticks-per-candle"),
    ("backtest ticks huge", [*BT, "--ticks-per-candle", "1000000"], "--ticks-per-candle"),
    ("backtest json in proc", [*BT, "--json", "/proc/self/x"], "--json"),
    ("backtest json in missing dir", [*BT, "--json", "/nonexistent/x.json"], "--json"),
    ("backtest json is a dir", [*BT, "--json", "/tmp"], "--json"),
    ("backtest trades under a file", [*BT, "--trades", str(DEMO / "x.csv")], "--trades"),
    ("backtest equity missing dir", [*BT, "--equity", "/nonexistent/e.csv"], "--equity"),
    ("backtest data-dir missing", ["backtest", "--portfolio", "p.yaml", "--data-dir", "/nonexistent"],
     "--data-dir"),
    ("sim port 70000", ["sim", "--port", "70000"], "--port"),
    ("sim port negative", ["sim", "--port=-1"], "--port"),
    ("sim port text", ["sim", "--port", "http"], "--port"),
    ("sim host 256", ["sim", "--host", "256.1.1.1"], "--host"),
    ("sim host spaces", ["sim", "--host", "my host"], "--host"),
    ("sim speed nan", ["sim", "--speed", "nan"], "--speed"),
    ("sim speed inf", ["sim", "--speed", "inf"], "--speed"),
    ("sim speed 0", ["sim", "--speed", "0"], "--speed"),
    ("sim speed negative", ["sim", "--speed=-2"], "--speed"),
    ("sim speed word", ["sim", "--speed", "fast"], "--speed"),
    ("sim krw negative", ["sim", "--krw=-1"], "--krw"),
    ("sim krw nan", ["sim", "--krw", "nan"], "--krw"),
    ("sim krw inf", ["sim", "--krw", "inf"], "--krw"),
    ("sim start month 13", ["sim", "--start", "2024-13-45"], "--start"),
    ("sim market lowercase", ["sim", "--market", "krw-btc"], "--market"),
    ("sim ticks 0", ["sim", "--ticks-per-candle", "0"], "--ticks-per-candle"),
    ("sim ack timeout nan", ["sim", "--ack-timeout-s", "nan"], "--ack-timeout-s"),
    ("sim ack timeout 0", ["sim", "--ack-timeout-s", "0"], "--ack-timeout-s"),
    ("sim seed text", ["sim", "--seed", "one"], "--seed"),
    ("run until garbage", [*RUN, "--until-ts", "garbage"], "--until-ts"),
    ("run sim-start month 13", [*RUN, "--sim-start", "2024-13-01"], "--sim-start"),
    ("run sim-end bad", [*RUN, "--sim-end", "2024-01-32"], "--sim-end"),
    ("run db garbage", [*RUN, "--db", "garbage://"], "--db"),
    ("run db mysql", [*RUN, "--db", "mysql://u@h/db"], "--db"),
    ("run db words", [*RUN, "--db", "my database"], "--db"),
    ("run krw 0", [*RUN, "--krw", "0"], "--krw"),
    ("run krw 1e30", [*RUN, "--krw", "1e30"], "--krw"),
    ("run sim-speed nan", [*RUN, "--sim-speed", "nan"], "--sim-speed"),
    ("run sim-speed inf", [*RUN, "--sim-speed", "inf"], "--sim-speed"),
    ("run max-runtime nan", [*RUN, "--max-runtime-s", "nan"], "--max-runtime-s"),
    ("run max-runtime 0", [*RUN, "--max-runtime-s", "0"], "--max-runtime-s"),
    ("run max-runtime huge", [*RUN, "--max-runtime-s", "1e300"], "--max-runtime-s"),
    ("run sim-seed text", [*RUN, "--sim-seed", "x"], "--sim-seed"),
    ("run log level", [*RUN, "--log-level", "LOUD"], "--log-level"),
    ("reconcile market", ["reconcile", "--paper", "--sim-url", "http://127.0.0.1:1", "--market", "BTC"],
     "--market"),
    ("reconcile db", ["reconcile", "--paper", "--sim-url", "http://127.0.0.1:1", "--db", "nope://"], "--db"),
    ("report date month 13", ["report", "--date", "2024-13-01"], "--date"),
    ("report date words", ["report", "--date", "yesterday"], "--date"),
    ("report db garbage", ["report", "--db", "garbage://"], "--db"),
    ("report snapshots missing", ["report", "--snapshots", "/nonexistent/snaps"], "--snapshots"),
    ("report market lowercase", ["report", "--market", "krw-btc"], "--market"),
    ("report out under a file", ["report", "--out", str(DEMO / "out")], "--out"),
    ("report starting krw nan", ["report", "--starting-krw", "nan"], "--starting-krw"),
    ("report starting krw negative", ["report", "--starting-krw=-1"], "--starting-krw"),
    ("report period", ["report", "--period", "year"], "--period"),
    ("demo start 2024-13", ["demo", "--start", "2024-13-01"], "--start"),
    ("demo days 1e9", ["demo", "--days", "1e9"], "--days"),
    ("demo days nan", ["demo", "--days", "nan"], "--days"),
    ("demo days 0", ["demo", "--days", "0"], "--days"),
    ("demo speed nan", ["demo", "--speed", "nan"], "--speed"),
    ("demo speed inf", ["demo", "--speed", "inf"], "--speed"),
    ("optimize trials 0", [*OPT[:-1], "0"], "--trials"),
    ("optimize trials text", [*OPT[:-1], "many"], "--trials"),
    ("optimize from bad", [*OPT, "--from", "2024-13-01"], "--from"),
    ("optimize krw nan", [*OPT, "--krw", "nan"], "--krw"),
    ("optimize json missing dir", [*OPT, "--json", "/nonexistent/o.json"], "--json"),
    ("optimize best-yaml dir", [*OPT, "--best-yaml", "/tmp"], "--best-yaml"),
    ("optimize storage garbage", [*OPT, "--storage", "garbage://"], "--storage"),
    ("optimize workers 0", [*OPT, "--workers", "0"], "--workers"),
    ("optimize top 0", [*OPT, "--top", "0"], "--top"),
    ("optimize seed negative", [*OPT, "--seed=-3"], "--seed"),
    ("golden file is a dir", ["golden", "--file", "/tmp"], "--file"),
]


@pytest.mark.parametrize("argv, option", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_command_line(capsys: pytest.CaptureFixture[str], argv: list[str], option: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "Traceback" not in err


def test_there_are_at_least_100_bad_inputs() -> None:
    assert len(STRATEGY_CASES) + len(CANDLE_CASES) + len(CLI_CASES) >= 100


# ---- report: a missing database, snapshots folder or market is refused ------------------------
@pytest.fixture
def report_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRADER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TRADER_MAIL_TO", json.dumps(["me@example.com"]))
    return tmp_path


def test_report_on_a_missing_database_is_refused(report_env: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    missing = report_env / "typo.db"
    rc = main(["report", "--db", f"sqlite:///{missing}", "--date", "2024-03-05", "--send"])
    err = capsys.readouterr().err
    assert rc == 2 and "--db" in err and str(missing) in err
    assert not missing.exists()  # no fresh database made
    assert not (report_env / "var" / "reports").exists()  # nothing rendered, nothing mailed


def test_report_on_an_unknown_market_is_refused(report_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trader.storage.db import Database

    url = f"sqlite:///{report_env / 'trader.db'}"
    Database.open(url).close()
    rc = main(["report", "--db", url, "--date", "2024-03-05", "--market", "KRW-NOPE"])
    err = capsys.readouterr().err
    assert rc == 2 and "--market KRW-NOPE" in err


def test_report_on_a_missing_snapshots_folder_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--snapshots", "/nonexistent/snapshots"])
    assert exit_.value.code == 2 and "--snapshots" in capsys.readouterr().err


# ---- fuzz: the strategy loader raises only StrategyConfigError -------------------------------
YAMLISH = st.text(alphabet=string.printable + "é한\x00\ufeff", max_size=300)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                    st.decimals(allow_nan=True, allow_infinity=True))
KEYS = st.sampled_from(["market", "order_krw", "order_fraction", "entry", "exits", "limit_orders",
                        "cooldown", "immediate", "dip", "stop_loss", "take_profit", "interval", "ma",
                        "drop", "lookback_s", "max_hold_s", "gain", "sell", "x"])
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(KEYS, inner, max_size=5)),
                      max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=YAMLISH)
def test_fuzz_strategy_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    with contextlib.suppress(StrategyConfigError):
        load_strategy(path)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(KEYS, VALUES, max_size=8))
def test_fuzz_strategy_mapping(data: dict) -> None:
    with contextlib.suppress(StrategyConfigError):
        parse_strategy(data, "<fuzz>")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(KEYS, VALUES, max_size=8))
def test_fuzz_strategy_mapping_as_yaml_file(tmp_path: Path, data: dict) -> None:
    path = tmp_path / "fuzz.yaml"
    try:
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
    except yaml.YAMLError:
        return  # not representable (a Decimal): nothing to load
    with contextlib.suppress(StrategyConfigError):
        load_strategy(path)


def test_demo_start_past_the_data_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--start", "2030-01-01"]) == 2  # before: idled 120 s with 0 ticks, exit 0
    err = capsys.readouterr().err
    assert "--start 2030-01-01" in err and "KRW-ETH_15m_2024.parquet ends at 2024-12-31" in err


TYPED_OPTIONS = [("backtest", "--from"), ("backtest", "--krw"), ("backtest", "--json"), ("sim", "--port"),
                 ("sim", "--host"), ("sim", "--speed"), ("sim", "--krw"), ("sim", "--start"), ("run", "--db"),
                 ("run", "--until-ts"), ("run", "--max-runtime-s"), ("run", "--sim-speed"),
                 ("report", "--date"),
                 ("report", "--out"), ("report", "--market"), ("demo", "--days"), ("optimize", "--trials"),
                 ("optimize", "--storage")]
REQUIRED = {"run": ["--strategy", "s.yaml"], "optimize": ["--strategy", "s", "--space", "p", "--data", "d",
                                                          "--trials", "1"]}


@settings(max_examples=300, deadline=None)
@given(which=st.sampled_from(TYPED_OPTIONS), value=st.text(max_size=40))
def test_fuzz_command_line_values(which: tuple[str, str], value: str) -> None:
    """Any text for a typed option parses or is a usage error (exit 2): never another exception."""
    from trader.cli import build_parser

    command, option = which
    try:
        build_parser().parse_args([command, *REQUIRED.get(command, []), f"{option}={value}"])
    except SystemExit as exc:
        assert exc.code == 2


def test_paper_run_on_a_bad_sim_data_file_is_refused(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "KRW-ETH_15m.csv"
    path.write_text(HEAD + "1704067200000,100,110,90,,1,105\n")
    assert main(["run", "--paper", "--strategy", str(DEMO), "--sim-data", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path} line 2: column close: an empty cell or NaN" in err and "Traceback" not in err


@pytest.mark.parametrize("url", ["ftp://h", "http://", "garbage", "http://h:99999"])
def test_bad_sim_url(capsys: pytest.CaptureFixture[str], url: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--paper", "--strategy", str(DEMO), "--sim-url", url])
    assert exit_.value.code == 2 and "argument --sim-url" in capsys.readouterr().err
