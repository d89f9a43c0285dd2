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
