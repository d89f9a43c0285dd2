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
