"""`python -m deployments.setup`: prepare a Prefect server for the autotrader (idempotent).

Creates or refreshes, in order:
1. the process work pool (`autotrader-local`) the worker polls;
2. the Prefect Variable `autotrader_dir` = this checkout's absolute path, which `prefect.yaml`'s
   pull step reads (`set_working_directory`), so the flows run from the checkout wherever the
   worker was started;
3. the `autotrader-smtp` EmailServerCredentials block, from the TRADER_SMTP_* settings;
4. the `upbit-access-key` / `upbit-secret-key` Secret blocks, from UPBIT_ACCESS_KEY /
   UPBIT_SECRET_KEY when set (never printed);
5. `prefect deploy --all` from `prefect.yaml` (skip with --no-deploy);
6. two automations: *zombie flow runs* (a run whose heartbeats stop for `--zombie-after-s`,
   default 90 s, is marked Crashed, as when its worker is killed) and *crash alert* (any
   Crashed run of trading/report/snapshot starts the `notify-failure` deployment, which mails
   the alert). Hooks cover failures the process sees; the automations cover
   the ones nobody in the process lives to see.

Running it again replaces everything with the same names; nothing accumulates.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from deployments.env import PROJECT_DIR

WORK_POOL = "autotrader-local"
DIR_VARIABLE = "autotrader_dir"
SMTP_BLOCK = "autotrader-smtp"
ACCESS_KEY_BLOCK = "upbit-access-key"
SECRET_KEY_BLOCK = "upbit-secret-key"
NOTIFY_DEPLOYMENT = "notify-failure/notify-failure"
WATCHED_FLOWS = ("trading", "report", "snapshot")
ZOMBIE_AUTOMATION = "autotrader: mark zombie flow runs crashed"
CRASH_AUTOMATION = "autotrader: mail an alert when a run crashes"
# Flows send a heartbeat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY s (prefect.yaml sets 30, the
# least Prefect accepts); three missed beats mean the process is gone. TRADER_PREFECT_ZOMBIE_AFTER_S
# or --zombie-after-s shortens it (the e2e test kills a run and waits for the automation).
ZOMBIE_AFTER_S = 90.0
ZOMBIE_AFTER_ENV = "TRADER_PREFECT_ZOMBIE_AFTER_S"
HEARTBEAT_SETTING = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
# a heartbeat is an event sent by a thread, then queued and evaluated by the server's trigger
# service every 5 s: a zombie threshold closer than this to the heartbeat marks live runs Crashed
HEARTBEAT_MARGIN_S = 10.0
PREFECT_DEFAULT_HEARTBEAT_S = 180.0


def ensure_work_pool(name: str = WORK_POOL) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
                description="Runs the autotrader flows from the local checkout",
            ),
            overwrite=True,
        )
    print(f"work pool      {name} (process)")


def ensure_dir_variable() -> None:
    from prefect.variables import Variable

    Variable.set(DIR_VARIABLE, str(PROJECT_DIR), overwrite=True)
    print(f"variable       {DIR_VARIABLE} = {PROJECT_DIR}")


def ensure_blocks() -> None:
    from prefect.blocks.system import Secret

    from tasks.email import make_email_credentials
    from trader.config import load_settings

    settings = load_settings()
    make_email_credentials(settings).save(SMTP_BLOCK, overwrite=True)
    print(f"block          email-server-credentials/{SMTP_BLOCK} ({settings.describe()['smtp']})")
    for env_name, block in (("UPBIT_ACCESS_KEY", ACCESS_KEY_BLOCK), ("UPBIT_SECRET_KEY", SECRET_KEY_BLOCK)):
        value = os.environ.get(env_name)
        if value:
            Secret(value=value).save(block, overwrite=True)
            print(f"block          secret/{block} (set from {env_name})")
        else:
            print(f"block          secret/{block} skipped ({env_name} not set; paper trading only)")


def deploy_all() -> None:
    """`prefect deploy --all` from the checkout (prefect.yaml lives at its root)."""
    cmd = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
    subprocess.run(cmd, cwd=PROJECT_DIR, check=True)


def _replace_automation(client, automation) -> None:
    for old in client.read_automations_by_name(automation.name):
        client.delete_automation(old.id)
    client.create_automation(automation)
    print(f"automation     {automation.name}")


def _jinja(template: str) -> dict[str, str]:
    """An explicit Jinja parameter rendering to a string.

    A bare "{{ flow_run.id }}" is upgraded by prefect 3.9.1 to `{{ flow_run.id | tojson }}`,
    which fails on the UUID (InvalidJinja) and the action never runs; the explicit kind renders
    the plain string.
    """
    return {"__prefect_kind": "jinja", "template": template}


def deployed_heartbeat_s(prefect_yaml: Path | None = None) -> float:
    """The slowest heartbeat prefect.yaml gives a deployment (Prefect's default is 180 s)."""
    import yaml

    path = prefect_yaml or PROJECT_DIR / "prefect.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    periods = []
    for deployment in config.get("deployments") or []:
        env = ((deployment.get("work_pool") or {}).get("job_variables") or {}).get("env") or {}
        periods.append(float(env.get(HEARTBEAT_SETTING, PREFECT_DEFAULT_HEARTBEAT_S)))
    # the slowest decides: a threshold below it would mark that deployment's live runs Crashed
    return max(periods, default=PREFECT_DEFAULT_HEARTBEAT_S)


def check_zombie_after(zombie_after_s: float, heartbeat_s: float) -> timedelta:
    """The zombie threshold as a timedelta, refused when live runs could look dead."""
    if zombie_after_s < heartbeat_s + HEARTBEAT_MARGIN_S:
        raise SystemExit(
            f"--zombie-after-s {zombie_after_s:g} is too short: flows send a heartbeat every "
            f"{heartbeat_s:g} s ({HEARTBEAT_SETTING} in prefect.yaml; Prefect's minimum is 30), so "
            f"live runs would be marked Crashed; use at least {heartbeat_s + HEARTBEAT_MARGIN_S:g}"
        )
    return timedelta(seconds=zombie_after_s)


def ensure_automations(zombie_after: timedelta = timedelta(seconds=ZOMBIE_AFTER_S)) -> bool:
    """Create both automations; False when `notify-failure` is not deployed yet."""
    from prefect import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState, RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.exceptions import ObjectNotFound

    seconds = zombie_after.total_seconds()
    with get_client(sync_client=True) as client:
        try:
            notify = client.read_deployment_by_name(NOTIFY_DEPLOYMENT)
        except ObjectNotFound:
            print(
                f"automation     skipped: {NOTIFY_DEPLOYMENT} is not deployed (run `prefect deploy --all`)"
            )
            return False
        _replace_automation(
            client,
            AutomationCore(
                name=ZOMBIE_AUTOMATION,
                description=f"No heartbeat for {seconds:g} s and no final state: the process died.",
                trigger=EventTrigger(
                    after={"prefect.flow-run.heartbeat"},
                    expect={
                        "prefect.flow-run.heartbeat",
                        "prefect.flow-run.Completed",
                        "prefect.flow-run.Failed",
                        "prefect.flow-run.Cancelled",
                        "prefect.flow-run.Crashed",
                    },
                    match={"prefect.resource.id": ["prefect.flow-run.*"]},
                    for_each={"prefect.resource.id"},
                    posture=Posture.Proactive,
                    threshold=1,
                    within=zombie_after,
                ),
                actions=[
                    ChangeFlowRunState(
                        state=StateType.CRASHED,
                        message=f"No heartbeat for {seconds:g} s: the flow run's process is gone.",
                    )
                ],
            ),
        )
        _replace_automation(
            client,
            AutomationCore(
                name=CRASH_AUTOMATION,
                description="A Crashed run (killed worker, OOM, lost machine) mails an alert.",
                trigger=EventTrigger(
                    expect={"prefect.flow-run.Crashed"},
                    match={"prefect.resource.id": ["prefect.flow-run.*"]},
                    match_related={
                        "prefect.resource.role": "flow",
                        "prefect.resource.name": list(WATCHED_FLOWS),
                    },
                    posture=Posture.Reactive,
                    threshold=1,
                    within=timedelta(0),
                ),
                actions=[
                    RunDeployment(
                        source="selected",
                        deployment_id=notify.id,
                        parameters={
                            "flow_run_id": _jinja("{{ flow_run.id }}"),
                            "flow_name": _jinja("{{ flow.name }}"),
                            "state": _jinja("{{ flow_run.state.name }}"),
                            "message": _jinja("{{ flow_run.state.message }}"),
                        },
                    )
                ],
            ),
        )
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.setup", description=__doc__.split("\n")[0])
    parser.add_argument("--no-deploy", action="store_true", help="do not run `prefect deploy --all`")
    parser.add_argument(
        "--zombie-after-s",
        type=float,
        default=float(os.environ.get(ZOMBIE_AFTER_ENV, ZOMBIE_AFTER_S)),
        help=f"mark a run Crashed after this many seconds without a heartbeat (default "
        f"${ZOMBIE_AFTER_ENV} or {ZOMBIE_AFTER_S:g}; at least the heartbeat + {HEARTBEAT_MARGIN_S:g})",
    )
    args = parser.parse_args(argv)
    zombie_after = check_zombie_after(args.zombie_after_s, deployed_heartbeat_s())
    from prefect.settings import PREFECT_API_URL

    print(f"Prefect API    {PREFECT_API_URL.value() or '(ephemeral)'}")
    ensure_work_pool()
    ensure_dir_variable()
    ensure_blocks()
    if not args.no_deploy:
        deploy_all()
    ensure_automations(zombie_after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
