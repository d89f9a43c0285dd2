"""The shared argparse types (trader/cli_types.py): what each accepts, converts and refuses."""

from __future__ import annotations

import argparse
import socket
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from trader import cli_types as t
from trader.cli import main


@pytest.mark.parametrize("text", ["2024-03-01", "2024-03-01T09:00", "2024-03-01 09:00:00+09:00",
                                  "2024-03-01T00:00Z"])
def test_kst_time_accepts_iso_and_returns_it_as_typed(text: str) -> None:
    assert t.kst_time(text) == text


@pytest.mark.parametrize("text", ["2024-13-01", "2024-02-30", "garbage", "", "2024-03-01T25:00"])
def test_kst_time_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a date/time"):
        t.kst_time(text)


def test_krw_converts_with_separators() -> None:
    assert t.krw("10,000,000") == Decimal(10_000_000)
    assert t.krw("5_000") == Decimal(5000)
    assert t.krw_or_zero("0") == 0


@pytest.mark.parametrize(("text", "why"), [("0", "more than 0"), ("-5", "more than 0"), ("nan", "finite"),
                                           ("inf", "finite"), ("1e30", "more than"), ("ten", "not a KRW")])
def test_krw_refuses(text: str, why: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        t.krw(text)


def test_speed() -> None:
    assert t.speed("max") is None and t.speed("MAX") is None
    assert t.speed("600") == 600.0
    assert t.speed_text("2.5") == "2.5"
    for bad in ("0", "-1", "nan", "inf", "1e9", "fast"):
        with pytest.raises(argparse.ArgumentTypeError):
            t.speed(bad)


def test_positive_float_and_int_range() -> None:
    days = t.positive_float(3650)
    assert days("21") == 21.0
    for bad in ("0", "nan", "1e9", "-1", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            days(bad)
    assert t.port("0") == 0 and t.port("65535") == 65535
    for bad in ("70000", "-1", "80.5", "http"):
        with pytest.raises(argparse.ArgumentTypeError):
            t.port(bad)


@pytest.mark.parametrize("text", ["127.0.0.1", "0.0.0.0", "::1", "localhost", "sim.example.com"])
def test_host_accepts(text: str) -> None:
    assert t.host(text) == text


@pytest.mark.parametrize("text", ["256.1.1.1", "1.2.3", "-bad.com", "a b", "", "x" * 300, "under_score"])
def test_host_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not an IP address or host name"):
        t.host(text)


def test_db_url() -> None:
    assert t.db_url("sqlite:///var/t.db") == "sqlite:///var/t.db"
    assert t.db_url("postgresql+psycopg://u@h/db")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown database kind 'mysqlx'"):
        t.db_url("mysqlx://u@h/db")
    with pytest.raises(argparse.ArgumentTypeError, match="database"):
        t.db_url("garbage://")
    with pytest.raises(argparse.ArgumentTypeError, match="not a database URL"):
        t.db_url("just words")


def test_out_file(tmp_path: Path) -> None:
    assert t.out_file("-") == "-"
    assert t.out_file(str(tmp_path / "a.json")) == str(tmp_path / "a.json")
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        t.out_file(str(tmp_path / "missing" / "a.json"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        t.out_file(str(tmp_path / "f" / "a.json"))  # under a file
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        t.out_file(str(tmp_path))


def test_out_file_unwritable_folder() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="folder '/proc/self' is not writable"):
        t.out_file("/proc/self/x")


def test_out_dir_and_existing_dir(tmp_path: Path) -> None:
    assert t.out_dir(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    (tmp_path / "f").write_text("x")
    with pytest.raises(argparse.ArgumentTypeError, match="is a file"):
        t.out_dir(str(tmp_path / "f"))
    with pytest.raises(argparse.ArgumentTypeError, match="is a file"):
        t.out_dir(str(tmp_path / "f" / "sub"))
    assert t.existing_dir(str(tmp_path)) == tmp_path
    with pytest.raises(argparse.ArgumentTypeError, match="not an existing folder"):
        t.existing_dir(str(tmp_path / "nope"))


def test_iso_date_and_market() -> None:
    assert t.iso_date("2024-03-01") == date(2024, 3, 1)
    with pytest.raises(argparse.ArgumentTypeError, match="YYYY-MM-DD"):
        t.iso_date("2024-13-01")
    assert t.market("KRW-BTC") == "KRW-BTC"
    for bad in ("krw-btc", "BTC", "USDT-BTC", "KRW-"):
        with pytest.raises(argparse.ArgumentTypeError):
            t.market(bad)


def test_sim_help_shows_no_none_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in out
    assert "(default: 8765)" in out  # real defaults still shown


def test_sim_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    try:
        port = held.getsockname()[1]
        assert main(["sim", "--port", str(port), "--speed", "max"]) == 2
    finally:
        held.close()
    out = capsys.readouterr().out
    assert f"cannot listen on 127.0.0.1:{port}" in out and "Traceback" not in out
