"""`python -m trader run/reconcile` argument handling that needs no exchange."""

from pathlib import Path

from trader.cli import main
from trader.run_cli import parse_ts

EXAMPLE = Path(__file__).resolve().parents[3] / "trader" / "strategy" / "examples" / "default.yaml"


def test_live_run_without_keys_is_refused_with_a_clear_message(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"TRADER_{name}", raising=False)
    assert main(["run", "--strategy", str(EXAMPLE), "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    err = capsys.readouterr().err
    assert "UPBIT_ACCESS_KEY" in err and "--paper" in err
    assert not (tmp_path / "x.db").exists()  # refused before touching anything


def test_bad_strategy_file_names_the_problem(tmp_path, capsys):
    bad = tmp_path / "s.yaml"
    bad.write_text("market: KRW-BTC\norder_krw: 10\nentry: {immediate: true}\n")
    assert main(["run", "--paper", "--strategy", str(bad)]) == 2
    assert "order_krw" in capsys.readouterr().err


def test_reconcile_paper_needs_a_simulator_url(tmp_path, capsys):
    assert main(["reconcile", "--paper", "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    assert "--sim-url" in capsys.readouterr().err


def test_until_ts_parsing():
    # a time a user types is KST unless it carries an offset (2024-01-01 00:00 UTC = 09:00 KST)
    assert parse_ts("2024-01-01T09:00:00") == 1704067200000
    assert parse_ts("2024-01-01T09:00:00+09:00") == 1704067200000
    assert parse_ts("2024-01-01T00:00:00Z") == 1704067200000
