"""`python -m trader report` end to end: database → files → mail to a real SMTP server."""

from __future__ import annotations

import json
from email import message_from_bytes, policy

import pytest

from trader.cli import main
from trader.reporting.i18n import won


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    monkeypatch.setenv("TRADER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TRADER_MAIL_TO", json.dumps(["me@example.com"]))
    monkeypatch.setenv("TRADER_MAIL_FROM", "bot@example.com")
    monkeypatch.setenv("TRADER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TRADER_SMTP_TIMEOUT_S", "2")
    return monkeypatch


def test_report_from_db_is_written_and_sent(env, seeded_db, smtp_server, tmp_path, capsys) -> None:
    inbox, port = smtp_server
    env.setenv("TRADER_SMTP_PORT", str(port))
    out = tmp_path / "out"
    rc = main(
        ["report", "--db", seeded_db, "--date", "2024-03-05", "--out", str(out), "--send", "--lang", "en"]
    )
    assert rc == 0, capsys.readouterr().err
    for name in (
        "report.html",
        "report.txt",
        "report.eml",
        "equity.png",
        "price.png",
        "daily.png",
        "reasons.png",
    ):
        assert (out / name).is_file()
    text = (out / "report.txt").read_text(encoding="utf-8")
    # the starting KRW came from the balance snapshot: the figures are the hand-computed ones
    assert "KRW -14,775 (-1.46%)" in text and won(-5977.5, "en", sign=True) in text
    assert 'src="equity.png"' in (out / "report.html").read_text(encoding="utf-8")
    (msg,) = inbox.messages
    assert msg["Subject"] == "[Autotrader] Day 2024-03-05 P&L KRW -14,775 (-1.46%)"
    eml = message_from_bytes((out / "report.eml").read_bytes(), policy=policy.default)
    assert eml["Subject"] == msg["Subject"]


def test_quiet_day_still_reports_balances(env, seeded_db, tmp_path, capsys) -> None:
    out = tmp_path / "quiet"
    assert main(["report", "--db", seeded_db, "--date", "2024-03-07", "--out", str(out)]) == 0
    text = (out / "report.txt").read_text(encoding="utf-8")
    assert "체결된 거래가 없습니다" in text and "994,975원" in text


def test_send_failure_keeps_the_files_and_exits_1(env, seeded_db, refused_port, tmp_path, capsys) -> None:
    env.setenv("TRADER_SMTP_PORT", str(refused_port))
    out = tmp_path / "fail"
    rc = main(["report", "--db", seeded_db, "--date", "2024-03-05", "--out", str(out), "--send"])
    assert rc == 1
    assert "report written but not sent" in capsys.readouterr().err
    assert (out / "report.html").is_file() and (out / "report.eml").is_file()


def test_report_from_parquet_snapshots(env, seeded_db, tmp_path) -> None:
    from trader.storage.db import Database
    from trader.storage.parquet import write_snapshot
    from trader.storage.repository import Repository

    db = Database.open(seeded_db)
    snaps = tmp_path / "snaps"
    write_snapshot(Repository(db), snaps)
    db.close()
    out = tmp_path / "from-parquet"
    rc = main(
        [
            "report",
            "--snapshots",
            str(snaps),
            "--date",
            "2024-03-05",
            "--out",
            str(out),
            "--starting-krw",
            "1000000",
            "--lang",
            "en",
        ]
    )
    assert rc == 0
    assert "KRW -14,775 (-1.46%)" in (out / "report.txt").read_text(encoding="utf-8")
