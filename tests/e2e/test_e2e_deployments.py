"""End to end with a real Prefect server: set-up, deploy, a worker runs the deployments.

1. `python -m deployments.setup` (pool, blocks, variable, `prefect deploy --all`, automations);
2. a trading run against the simulator that fails on purpose (`fail_after_ticks`): Prefect
   retries it once, it fails again, and the failure hook mails an alert to the SMTP sink;
3. `report-daily` for a given date, run through the API by a `--run-once` worker: Completed,
   and the report e-mail arrives at the sink.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from deployments.smtp_sink import SmtpSink
from tests.e2e.conftest import PrefectServer
from tests.e2e.prefect_api import create_run, deployment_id, wait_final

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]


def test_setup_is_idempotent_and_declares_the_schedules(deployed: PrefectServer) -> None:
    deployed.run("deployments.setup", "--no-deploy")  # a second run replaces, never duplicates
    api = deployed.api_url
    r = httpx.post(f"{api}/automations/filter", json={}, timeout=10)
    names = sorted(a["name"] for a in r.json())
    assert names == sorted(
        ["autotrader: mark zombie flow runs crashed", "autotrader: mail an alert when a run crashes"]
    )
    daily = httpx.get(f"{api}/deployments/name/report/report-daily", timeout=10).json()
    schedule = daily["schedules"][0]["schedule"]
    assert (schedule["cron"], schedule["timezone"]) == ("5 9 * * *", "Asia/Seoul")
    assert daily["work_pool_name"] == "autotrader-local"
    trading = httpx.get(f"{api}/deployments/name/trading/trading", timeout=10).json()
    assert trading["schedules"] == []


def test_failing_trading_run_is_retried_then_mails_an_alert(
    deployed: PrefectServer, smtp_sink: SmtpSink, worker_factory: Any
) -> None:
    from trader.sim.server import SimulatorThread

    before = len(smtp_sink.messages)
    with SimulatorThread(speed=3000.0) as sim:
        run_id = create_run(
            deployed.api_url,
            "trading/trading",
            {"sim_url": sim.base_url, "fail_after_ticks": 20, "status_every_s": 2.0},
            # one quick retry instead of the production back-off (10 s, 60 s, 300 s)
            {"env": {"TRADER_TRADING_RETRIES": "1", "TRADER_TRADING_RETRY_DELAYS_S": "1"}},
        )
        worker = worker_factory(run_once=True, log_name="worker-trading.log")
        run = wait_final(deployed.api_url, run_id, 240)
        worker.wait(timeout=60)
    assert run["state"]["type"] == "FAILED", run["state"]
    assert run["run_count"] == 2  # the first attempt failed and was retried once
    assert {"KRW-ETH", "paper"} <= set(run["tags"])
    mails = smtp_sink.wait_for(before + 1, timeout_s=30)[before:]
    assert any("trading" in m["Subject"] and "InjectedFault" in m["Subject"] for m in mails), [
        m["Subject"] for m in mails
    ]


def test_report_daily_for_a_date_runs_on_a_worker_and_mails(
    deployed: PrefectServer, smtp_sink: SmtpSink, worker_factory: Any
) -> None:
    before = len(smtp_sink.messages)
    run_id = create_run(deployed.api_url, "report/report-daily", {"date": "2024-01-15"})
    worker = worker_factory(run_once=True, log_name="worker-report.log")
    run = wait_final(deployed.api_url, run_id, 180)
    worker.wait(timeout=60)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert run["name"] == "report-day-2024-01-15"
    mails = smtp_sink.wait_for(before + 1, timeout_s=30)[before:]
    assert len(mails) == 1
    assert "2024-01-15" in mails[0]["Subject"]
    assert mails[0]["To"] == "ops@example.test"


def test_a_crash_no_hook_saw_starts_notify_failure_which_mails(
    deployed: PrefectServer, smtp_sink: SmtpSink, worker_factory: Any
) -> None:
    """A run marked Crashed by the server (as the zombie automation does for a killed worker)
    triggers the crash automation, which starts `notify-failure`; a worker runs it: mail."""
    api = deployed.api_url
    before = len(smtp_sink.messages)
    crashed = create_run(api, "trading/trading", {"sim_url": "http://127.0.0.1:9"})
    r = httpx.post(
        f"{api}/flow_runs/{crashed}/set_state",
        json={"state": {"type": "CRASHED", "message": "worker killed (test)"}, "force": True},
        timeout=10,
    )
    r.raise_for_status()
    notify_id = deployment_id(api, "notify-failure/notify-failure")
    deadline = time.monotonic() + 90
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not runs:
        runs = [  # only the run for this crash (other tests' crashes start notify-failure too)
            r
            for r in httpx.post(
                f"{api}/flow_runs/filter",
                json={"deployments": {"id": {"any_": [notify_id]}}},
                timeout=10,
            ).json()
            if r["parameters"].get("flow_run_id") == crashed
        ]
        time.sleep(1.0)
    assert runs, "the crash automation did not start notify-failure"
    assert runs[0]["parameters"]["flow_run_id"] == crashed
    worker = worker_factory(run_once=True, log_name="worker-notify.log")
    run = wait_final(api, str(runs[0]["id"]), 180)
    worker.wait(timeout=60)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    mails = smtp_sink.wait_for(before + 1, timeout_s=30)[before:]
    assert any("trading" in m["Subject"] and "RunCrashed" in m["Subject"] for m in mails), [
        m["Subject"] for m in mails
    ]
