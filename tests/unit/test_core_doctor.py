"""The doctor command reports every check and never prints a secret."""

import pytest

from trader.cli import main


def test_doctor_lists_checks_and_hides_keys(monkeypatch: pytest.MonkeyPatch, capsys, tmp_path) -> None:
    monkeypatch.setenv("UPBIT_ACCESS_KEY", "AK-very-secret-value-123")
    monkeypatch.setenv("UPBIT_SECRET_KEY", "SK-very-secret-value-456")
    monkeypatch.setenv("TRADER_DATABASE_URL", f"sqlite:///{tmp_path}/t.db")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("python", "packages", "data", "database", "upbit keys"):
        assert name in out
    assert "secret-value" not in out


def test_doctor_fails_on_unreachable_database(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TRADER_DATABASE_URL", "postgresql+psycopg2://nobody:hunter2@127.0.0.1:1/none")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "hunter2" not in out
