"""Failure mail: what, when, the position — and never a secret."""

from __future__ import annotations

from datetime import UTC, datetime

from trader.reporting.alerts import build_failure_alert, scrub

SECRET = "sk-live-9f8e7d6c5b4a39281706"


def _boom() -> BaseException:
    try:
        raise RuntimeError(f"order refused; auth header Bearer eyJhbGciOiJIUzUxMiJ9.abc.def and key {SECRET}")
    except RuntimeError as exc:
        return exc


def test_alert_says_what_when_and_position_without_secrets(monkeypatch) -> None:
    monkeypatch.setenv("TRADER_SMTP_PASSWORD", "hunter2-mail-pass")
    ctx = {
        "flow": "trading",
        "market": "KRW-BTC",
        "upbit_secret_key": SECRET,
        "SMTP_PASSWORD": "x",
        "api_token": "y",
        "db": "postgresql://trader:pw-db-123456@127.0.0.1/test",
        "note": "mail pass hunter2-mail-pass leaked",
    }
    pos = {"market": "KRW-BTC", "volume": "0.002", "avg_buy_price": "47500000"}
    when = datetime(2024, 3, 5, 3, 4, 5, tzinfo=UTC)
    subject, html, text = build_failure_alert(
        _boom(), context=ctx, position=pos, when=when, secrets=[SECRET, "hunter2-mail-pass"]
    )
    assert "trading" in subject and "RuntimeError" in subject
    for part in (html, text):
        assert "2024-03-05 12:04:05 KST" in part
        assert "KRW-BTC" in part and "0.002" in part and "47500000" in part
        assert SECRET not in part and "eyJhbGciOiJIUzUxMiJ9" not in part
        assert "hunter2-mail-pass" not in part and "pw-db-123456" not in part
        assert "upbit_secret_key" not in part and "SMTP_PASSWORD" not in part and "api_token" not in part
        assert "order refused" in part  # the cause itself survives redaction
    assert "_boom" in text  # the traceback is there


def test_alert_without_position(monkeypatch) -> None:
    _s, html, text = build_failure_alert(
        ValueError("x"), context={"task": "snapshot"}, position=None, when=datetime(2024, 1, 1), lang="en"
    )
    assert "flat or unknown" in text and "snapshot" in html


def test_scrub_nested() -> None:
    out = scrub({"a": [{"password": 1, "ok": "Bearer abc.def.ghi"}], "accessKey": "z"})
    assert out == {"a": [{"ok": "Bearer ***"}]}
