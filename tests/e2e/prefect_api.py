"""Small helpers over the Prefect server's REST API for the e2e tests (create, wait, cancel, find)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def deployment_id(api: str, name: str) -> str:
    r = httpx.get(f"{api}/deployments/name/{name}", timeout=10)
    r.raise_for_status()
    return str(r.json()["id"])


def create_run(
    api: str, deployment: str, parameters: dict[str, Any], job_variables: dict | None = None
) -> str:
    body: dict[str, Any] = {"parameters": parameters}
    if job_variables:
        body["job_variables"] = job_variables
    r = httpx.post(
        f"{api}/deployments/{deployment_id(api, deployment)}/create_flow_run", json=body, timeout=10
    )
    r.raise_for_status()
    return str(r.json()["id"])


def read_run(api: str, run_id: str) -> dict[str, Any]:
    r = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10)
    r.raise_for_status()
    return dict(r.json())


def state_type(run: dict[str, Any]) -> str | None:
    return (run.get("state") or {}).get("type")


def wait_state(api: str, run_id: str, types: set[str], timeout_s: float) -> dict[str, Any]:
    """Poll the run until its state type is one of `types` (AssertionError after the timeout)."""
    deadline = time.monotonic() + timeout_s
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = read_run(api, run_id)
        if state_type(run) in types:
            return run
        time.sleep(0.5)
    raise AssertionError(
        f"flow run {run_id} not in {sorted(types)} after {timeout_s:.0f} s: {run.get('state')}"
    )


def wait_final(api: str, run_id: str, timeout_s: float) -> dict[str, Any]:
    return wait_state(api, run_id, FINAL, timeout_s)


def wait_until(cond: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def cancel_as_the_ui_does(api: str, run_id: str) -> dict[str, Any]:
    """The UI's Cancel button (prefect 3.9.1's FlowRunCancelModal → `setFlowRunState`):
    POST /flow_runs/{id}/set_state {"state": {"type": "CANCELLING", "name": "Cancelling"},
    "force": true} — the UI client's `setFlowRunState` forces unless told otherwise."""
    r = httpx.post(
        f"{api}/flow_runs/{run_id}/set_state",
        json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True},
        timeout=10,
    )
    r.raise_for_status()
    return dict(r.json())


def runs_of_deployment(api: str, deployment: str) -> list[dict[str, Any]]:
    r = httpx.post(
        f"{api}/flow_runs/filter",
        json={"deployments": {"id": {"any_": [deployment_id(api, deployment)]}}},
        timeout=10,
    )
    r.raise_for_status()
    return list(r.json())


def wait_for_notify_run(api: str, run_id: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    """The `notify-failure` runs the crash automation started for `run_id` (waits for one)."""
    return wait_until(
        lambda: [
            r
            for r in runs_of_deployment(api, "notify-failure/notify-failure")
            if r["parameters"].get("flow_run_id") == run_id
        ],
        timeout_s,
        "the crash automation to start notify-failure",
    )


def heartbeats(api: str, run_id: str) -> list[dict[str, Any]]:
    """The `prefect.flow-run.heartbeat` events the server holds for this run."""
    r = httpx.post(
        f"{api}/events/filter",
        json={
            "filter": {
                "event": {"name": ["prefect.flow-run.heartbeat"]},
                "resource": {"id": [f"prefect.flow-run.{run_id}"]},
                "occurred": {"since": "2000-01-01T00:00:00Z"},
            },
            "limit": 50,
        },
        timeout=10,
    )
    r.raise_for_status()
    return list(r.json().get("events") or [])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (psutil is not installed: /proc's children lists)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def flow_run_pids(worker_pid: int, run_id: str) -> list[int]:
    """The worker's descendant processes that run flow run `run_id` (PREFECT__FLOW_RUN_ID in their env)."""
    needle = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    pids = []
    for pid in descendants(worker_pid):
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                pids.append(pid)
        except OSError:
            continue
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False
