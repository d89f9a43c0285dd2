"""prefect.yaml, the demo's helpers, the snapshot days and the offline environment."""

from __future__ import annotations

import importlib
from datetime import date
from pathlib import Path

import yaml

from deployments.env import PROJECT_DIR, prefect_env
from flows import demo, snapshot


def _prefect_yaml() -> dict:
    return yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text(encoding="utf-8"))


def test_every_deployment_points_at_a_flow_of_that_name_on_the_local_pool() -> None:
    doc = _prefect_yaml()
    names = {d["name"]: d for d in doc["deployments"]}
    assert set(names) == {"trading", "report-daily", "report-weekly", "snapshot-hourly", "notify-failure",
                          "optimize"}
    flow_names = {"trading": "trading", "report-daily": "report", "report-weekly": "report"}
    flow_names |= {"snapshot-hourly": "snapshot", "notify-failure": "notify-failure", "optimize": "optimize"}
    for name, dep in names.items():
        path, attr = dep["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert getattr(module, attr).name == flow_names[name]
        assert dep["work_pool"]["name"] == "autotrader-local"
    assert names["trading"].get("schedules") is None
    assert names["optimize"].get("schedules") is None  # ad hoc, from the UI with parameters
    assert names["report-daily"]["schedules"] == [{"cron": "5 9 * * *", "timezone": "Asia/Seoul"}]
    assert doc["pull"] == [
        {
            "prefect.deployments.steps.set_working_directory": {
                "directory": "{{ prefect.variables.autotrader_dir }}"
            }
        }
    ]


def test_offline_env(tmp_path: Path) -> None:
    env = prefect_env(tmp_path / "home", "http://127.0.0.1:4321/api", base={"PATH": "/bin"})
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
    assert env["PREFECT_SERVER_UI_API_URL"] == env["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"
    assert env["PREFECT_HOME"] == str((tmp_path / "home").resolve())
    assert str(PROJECT_DIR) in env["PYTHONPATH"]
    ephemeral = prefect_env(tmp_path, None, base={"PREFECT_API_URL": "http://elsewhere"})
    assert "PREFECT_API_URL" not in ephemeral and ephemeral["PREFECT_SERVER_EPHEMERAL_ENABLED"] == "true"


def test_demo_window_ends_days_after_its_start_in_the_backtests_notation() -> None:
    # the window is [start, end) in KST, printed as `backtest --to` takes it
    assert demo.window_end("2024-01-01T09:00", 21) == "2024-01-22T09:00"
    assert demo.window_end("2024-01-01T09:00", 0.5) == "2024-01-01T21:00"
    assert demo.window_end("2024-01-01T09:00:00+09:00", 1) == "2024-01-02T09:00+09:00"
    assert demo.window_end("2024-01-01T09:00", 1.5 / 86400) == "2024-01-01T09:00:01.500000"


def test_snapshot_days() -> None:
    assert snapshot.resolve_days("2024-03-05") == [date(2024, 3, 5)]
    yesterday, today = snapshot.resolve_days(None)
    assert (today - yesterday).days == 1


def test_zombie_threshold_reads_the_heartbeat_of_prefect_yaml_and_refuses_a_shorter_one(
    tmp_path: Path,
) -> None:
    """A threshold at or under the heartbeat would mark live runs Crashed: refused at set-up."""
    import pytest

    from deployments.setup import check_zombie_after, deployed_heartbeat_s

    assert deployed_heartbeat_s() == 30.0  # the checkout's prefect.yaml
    yaml_path = tmp_path / "prefect.yaml"
    yaml_path.write_text(
        "deployments:\n"
        "  - {name: a, work_pool: {job_variables: {env: {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: '30'}}}}\n"
        "  - {name: b, work_pool: {name: p}}\n"  # no setting: Prefect's default, 180 s
    )
    assert deployed_heartbeat_s(yaml_path) == 180.0
    assert check_zombie_after(40, 30.0).total_seconds() == 40
    with pytest.raises(SystemExit, match="at least 40"):
        check_zombie_after(35, 30.0)
