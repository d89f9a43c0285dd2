"""The report mail over real loopback SMTP: what arrives, and how failures behave."""

from __future__ import annotations

import io
import time
from decimal import Decimal
from types import SimpleNamespace

import pytest
from PIL import Image

from tests.unit.reporting.conftest import DAY, case_inputs
from trader.reporting.i18n import pct, won
from trader.reporting.mail import ReportMailError, build_mime, send_smtp
from trader.reporting.report import build_report


def _settings(port: int, timeout: float = 5.0) -> SimpleNamespace:
    return SimpleNamespace(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_mode="insecure",
        smtp_user=None,
        smtp_password=None,
        smtp_timeout_s=timeout,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return build_report(case_inputs(), period="day", day=DAY, lang="ko", out_dir=tmp_path_factory.mktemp("r"))


def test_report_arrives_with_both_parts_and_images(report, smtp_server) -> None:
    inbox, port = smtp_server
    send_smtp(build_mime(report, "bot@example.com", ["me@example.com"]), _settings(port))
    (msg,) = inbox.messages
    assert inbox.envelopes == [("bot@example.com", ["me@example.com"])]
    assert msg["Subject"] == report.subject == "[자동매매] 2024-03-05 일간 손익 -14,775원 (-1.46%)"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    m = report.metrics.main
    assert m.pnl == Decimal("-14775") and m.realized_pnl == Decimal("-5977.5")
    for figure in (
        won(m.pnl, "ko", sign=True),
        won(m.realized_pnl, "ko", sign=True),
        won(m.fees, "ko"),
        won(m.unrealized_pnl, "ko", sign=True),
        pct(m.return_pct),
        won(m.end_equity, "ko"),
    ):
        assert figure in text and figure in html
    images = {p["Content-ID"].strip("<>"): p for p in msg.walk() if p.get_content_maintype() == "image"}
    assert (
        set(images) == set(report.images) == {"chart-equity", "chart-price", "chart-daily", "chart-reasons"}
    )
    for cid, part in images.items():
        assert f"cid:{cid}" in html
        with Image.open(io.BytesIO(part.get_content())) as img:
            assert img.size[0] == 1080


def test_refused_connection_is_a_clear_error(report, refused_port) -> None:
    with pytest.raises(ReportMailError, match=rf"127\.0\.0\.1:{refused_port}.*(refused|Errno)"):
        send_smtp(build_mime(report, "bot@example.com", "me@example.com"), _settings(refused_port))
    assert report.paths["html"].is_file() and report.paths["text"].is_file()  # still on disk


def test_silent_server_times_out(report, silent_server) -> None:
    started = time.monotonic()
    with pytest.raises(ReportMailError, match="did not answer within 1 s"):
        send_smtp(build_mime(report, "bot@example.com", "me@example.com"), _settings(silent_server, 1.0))
    assert time.monotonic() - started < 30  # bounded by the timeout, not a hang (generous bound)


def test_failure_alert_arrives_without_secrets(smtp_server, refused_port, monkeypatch) -> None:
    from pydantic import SecretStr

    from trader.reporting.alerts import send_failure_alert

    inbox, port = smtp_server
    settings = SimpleNamespace(
        **vars(_settings(port)),
        mail_from="bot@example.com",
        mail_to=["me@example.com"],
        report_lang="en",
        upbit_access_key=SecretStr("AKIA-access-0123456789"),
        upbit_secret_key=SecretStr("s3cr3t-upbit-abcdef"),
    )
    settings.smtp_password = SecretStr("mail-pass-987654")
    settings.smtp_user = "bot"
    try:
        raise ConnectionError("upbit said no to key s3cr3t-upbit-abcdef")
    except ConnectionError as exc:
        sent = send_failure_alert(
            exc,
            context={"flow": "trading", "access_key": "AKIA-access-0123456789", "market": "KRW-BTC"},
            position={"market": "KRW-BTC", "volume": "0.5"},
            settings=settings,
        )
    # the server has no AUTH, so the login fails: the alert says so instead of raising
    assert sent is False and inbox.messages == []
    settings.smtp_user = None
    try:
        raise ConnectionError("upbit said no to key s3cr3t-upbit-abcdef")
    except ConnectionError as exc:
        assert send_failure_alert(exc, context={"flow": "trading"}, position=None, settings=settings)
    (msg,) = inbox.messages
    assert msg["Subject"] == "[Autotrader failure] trading: ConnectionError"
    raw = msg.as_string()
    assert "s3cr3t-upbit-abcdef" not in raw and "upbit said no" in msg.get_body(("plain",)).get_content()
    settings.smtp_port = refused_port
    assert send_failure_alert(RuntimeError("x"), settings=settings) is False  # logged, never raised
