"""Sending the report through prefect-email (tasks/email.py) to a real loopback SMTP server."""

from __future__ import annotations

import io
import os
import socket

import pytest
from PIL import Image

from tasks.email import make_email_credentials, send_report_email
from tests.unit.reporting.conftest import DAY, case_inputs
from trader.config import Settings
from trader.reporting.i18n import won
from trader.reporting.mail import ReportMailError
from trader.reporting.report import build_report


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return build_report(case_inputs(), period="day", day=DAY, lang="en", out_dir=tmp_path_factory.mktemp("p"))


def _creds(port: int):
    return make_email_credentials(Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_mode="insecure"))


def _check_message(msg, report) -> None:
    assert msg["Subject"] == report.subject
    assert msg["From"] == "bot@example.com"
    html = msg.get_body(("html",)).get_content()
    assert won(report.metrics.main.pnl, "en", sign=True) in html
    images = {p["Content-ID"].strip("<>"): p for p in msg.walk() if p.get_content_maintype() == "image"}
    assert set(images) == set(report.images)
    for part in images.values():
        with Image.open(io.BytesIO(part.get_payload(decode=True))) as img:
            img.verify()


def test_credentials_from_settings() -> None:
    from prefect_email import SMTPType

    creds = make_email_credentials(
        Settings(
            smtp_host="mail.local", smtp_port=2525, smtp_mode="starttls", smtp_user="u", smtp_password="p"
        )
    )
    assert (creds.smtp_server, creds.smtp_port, creds.smtp_type) == ("mail.local", 2525, SMTPType.STARTTLS)
    assert creds.username == "u" and creds.password.get_secret_value() == "p"
    assert make_email_credentials(Settings(smtp_user=None)).username is None


def test_send_outside_a_flow(report, smtp_server) -> None:
    inbox, port = smtp_server
    send_report_email(report, _creds(port), "bot@example.com", ["me@example.com"], timeout_s=5)
    (msg,) = inbox.messages
    _check_message(msg, report)


def test_silent_server_gives_a_clear_error_and_restores_the_timeout(report, silent_server) -> None:
    before = socket.getdefaulttimeout()
    with pytest.raises(ReportMailError, match="did not answer within 1 s"):
        send_report_email(report, _creds(silent_server), "bot@example.com", "me@example.com", timeout_s=1)
    assert socket.getdefaulttimeout() == before


@pytest.fixture(scope="session")
def prefect_harness():
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.slow
def test_send_from_a_sync_flow(report, smtp_server, prefect_harness) -> None:
    from prefect import flow

    inbox, port = smtp_server

    @flow
    def mail_report() -> None:
        send_report_email(report, _creds(port), "bot@example.com", "me@example.com", timeout_s=5)

    mail_report()
    (msg,) = inbox.messages
    _check_message(msg, report)
