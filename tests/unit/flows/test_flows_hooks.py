"""Failure hooks: which exception a state carries, what the alert says, and that hooks never raise."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from flows import hooks


def _state(data: Any, name: str = "Failed", message: str = "boom") -> SimpleNamespace:
    return SimpleNamespace(data=data, name=name, message=message)


def test_state_exception_reads_the_exception_or_its_result_record() -> None:
    exc = ValueError("bad")
    assert hooks.state_exception(_state(exc)) is exc
    assert hooks.state_exception(_state(SimpleNamespace(result=exc))) is exc
    fallback = hooks.state_exception(_state(None, "Crashed", "worker killed"))
    assert isinstance(fallback, RuntimeError) and "Crashed: worker killed" in str(fallback)


def test_alert_context_names_the_run_and_its_parameters() -> None:
    run = SimpleNamespace(
        name="brave-fox",
        id="abc",
        run_count=2,
        deployment_id=None,
        tags=["paper"],
        parameters={"paper": True},
    )
    ctx = hooks.alert_context("trading", run, "Failed", "loop died")
    assert ctx["flow"] == "trading" and ctx["flow_run"] == "brave-fox" and ctx["attempt"] == 2
    assert ctx["state"] == "Failed: loop died" and ctx["parameters"] == {"paper": True}


def test_hook_mails_with_the_last_position_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import trader.reporting.alerts as alerts

    sent: list[dict[str, Any]] = []

    def fake_send(exc: BaseException, *, context: dict, position: dict | None = None, **_: Any) -> bool:
        sent.append({"exc": exc, "context": context, "position": position})
        return True

    monkeypatch.setattr(alerts, "send_failure_alert", fake_send)
    hooks.LAST_POSITION["run-1"] = {"market": "KRW-ETH", "volume": "0.5"}
    run = SimpleNamespace(name="r", id="run-1", parameters={})
    exc = RuntimeError("loop died")
    hooks.mail_failure_alert(SimpleNamespace(name="trading"), run, _state(exc))
    assert sent[0]["exc"] is exc and sent[0]["position"] == {"market": "KRW-ETH", "volume": "0.5"}

    def broken(*_: Any, **__: Any) -> bool:
        raise OSError("smtp down")

    monkeypatch.setattr(alerts, "send_failure_alert", broken)
    hooks.mail_failure_alert(SimpleNamespace(name="trading"), run, _state(exc))  # must not raise


def test_a_crash_without_an_exception_is_named_a_crash() -> None:
    """A run killed under a live worker reaches the hook as a bare Crashed state: the alert's
    subject must say RunCrashed (as notify-failure's does), not a generic RuntimeError."""
    exc = hooks.state_exception(_state(None, "Crashed", "Process exited with status code: -9"))
    assert type(exc) is hooks.RunCrashed and "-9" in str(exc)
    assert type(hooks.state_exception(_state(None, "Failed", "x"))) is RuntimeError


def test_hook_tags_the_run_only_after_the_mail_went_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tag silences notify-failure for this run: set it only for a mail that really left."""
    import trader.reporting.alerts as alerts

    tagged: list[str] = []
    monkeypatch.setattr(hooks, "mark_alerted", tagged.append)
    outcome = {"sent": False}
    monkeypatch.setattr(alerts, "send_failure_alert", lambda *a, **k: outcome["sent"])
    run = SimpleNamespace(name="r", id="run-2", parameters={})
    state = _state(None, "Crashed", "killed")
    hooks.mail_failure_alert(SimpleNamespace(name="trading"), run, state)
    assert tagged == []
    outcome["sent"] = True
    hooks.mail_failure_alert(SimpleNamespace(name="trading"), run, state)
    assert tagged == ["run-2"]

    def broken(_: str) -> None:
        raise OSError("api down")

    monkeypatch.setattr(hooks, "mark_alerted", broken)
    hooks.mail_failure_alert(SimpleNamespace(name="trading"), run, state)  # must not raise


def test_mark_alerted_needs_no_server_when_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        hooks.mark_alerted("run-3")  # returns at once: no ephemeral server for a tag
