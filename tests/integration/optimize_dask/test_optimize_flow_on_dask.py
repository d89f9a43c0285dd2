"""The optimize flow on a real Dask cluster (scheduler + two worker processes) and a real study.

`python -m flows.optimize --dask-address ...` runs as a child process against the session's
Prefect server; batches land on both workers; the PostgreSQL study ends with exactly N trials,
numbered 0..N-1 once each; the leaderboard artifact got several versions while it ran; a
walk-forward run shows each window and each batch as a task run.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest

from tests.integration.optimize_dask.conftest import ROOT, DaskCluster

STRATEGY = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
SPACE = ROOT / "trader" / "strategy" / "examples" / "demo.space.yaml"
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"

pytestmark = pytest.mark.timeout(300)


def _run_cli(cluster: DaskCluster, api: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**cluster.env, "PREFECT_API_URL": api}
    cmd = [sys.executable, "-m", "flows.optimize", "--strategy", str(STRATEGY), "--space", str(SPACE),
           "--data", str(DATA), "--dask-address", cluster.address, *args]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out


def _flow_run(api: str, study: str):
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if (r.parameters or {}).get("study") == study]
        assert len(runs) == 1, [r.name for r in runs]
        run = runs[0]
        tasks = client.read_task_runs()
        names = sorted(t.name for t in tasks if t.flow_run_id == run.id)
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
            any_=[run.id])))
        return run, names, arts


def test_cli_on_two_dask_workers_fills_a_postgresql_study_with_exactly_n_trials(
    prefect_api: str, dask_cluster: DaskCluster, optuna_pg: str, tmp_path: Path
) -> None:
    study = f"o2-dask-{uuid.uuid4().hex[:12]}"  # the database outlives the test: a name of its own
    n = 16
    try:
        out = _run_cli(dask_cluster, prefect_api, tmp_path, "--from", "2024-01-01", "--to", "2024-01-15",
                       "--trials", str(n), "--seed", "3", "--min-trades", "0", "--storage", optuna_pg,
                       "--study", study, "--json", str(tmp_path / "out.json"))
        loaded = optuna.load_study(study_name=study, storage=optuna_pg)
        numbers = [t.number for t in loaded.get_trials(deepcopy=False)]
        assert sorted(numbers) == list(range(n))  # exactly N trials, each number once
        assert all(t.state.is_finished() for t in loaded.get_trials(deepcopy=False))
        doc = json.loads((tmp_path / "out.json").read_text())
        assert len(doc["trials"]) == n and doc["trials"][0]["as_given"]
        cluster = doc["cluster"]
        assert cluster["slots"] == 2 and cluster["trials"] == n
        pids = {int(w.rsplit(":", 1)[1]) for w in cluster["workers"]}
        assert pids == dask_cluster.worker_pids()  # both separately started workers ran batches
        assert f"{n} trials in {cluster['batches']} batches on 2 Dask slots" in out.stdout
        assert doc["best"]["value"] == max(t["value"] for t in doc["trials"] if t["value"] is not None)

        run, names, arts = _flow_run(prefect_api, study)
        assert run.state.name == "Completed"
        assert names.count("walk-forward-window") == 0
        assert len([x for x in names if x.startswith("batch-")]) == cluster["batches"] >= 2
        board = [a for a in arts if a.key and a.key.endswith("-leaderboard")]
        assert len({a.key for a in board}) == 1 and len(board) >= 2  # updated while it ran
        final = max(board, key=lambda a: a.created)
        assert f"{n}/{n} trials" in final.data and study in final.data
    finally:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=study, storage=optuna_pg)


def test_walk_forward_on_the_cluster_shows_windows_and_batches_as_task_runs(
    prefect_api: str, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    study = f"o2-wf-{uuid.uuid4().hex[:8]}"
    _run_cli(dask_cluster, prefect_api, tmp_path, "--from", "2024-01-01", "--to", "2024-01-22",
             "--walk-forward", "7d:7d", "--trials", "6", "--seed", "1", "--min-trades", "0",
             "--storage", f"sqlite:///{tmp_path}/wf.db", "--study", study,
             "--json", str(tmp_path / "wf.json"), "--html", str(tmp_path / "wf.html"))
    doc = json.loads((tmp_path / "wf.json").read_text())
    assert [w["index"] for w in doc["windows"]] == [0, 1]
    assert all(len(w["trials"]) == 6 for w in doc["windows"])
    run, names, arts = _flow_run(prefect_api, study)
    assert run.state.name == "Completed"
    assert names.count("window-1") == 1 and names.count("window-2") == 1
    assert any(x.startswith("batch-w1-") for x in names) and any(x.startswith("batch-w2-") for x in names)
    table = max((a for a in arts if a.key and a.key.endswith("-windows")), key=lambda a: a.created)
    for w in doc["windows"]:
        assert w["test"]["start"] in table.data
        oos = w["out_of_sample"]["return_pct"]
        assert f"{oos:.4g}" in table.data
    html = (tmp_path / "wf.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3  # OOS equity vs hold, IS/OOS bars, importance
    for w in doc["windows"]:
        assert w["test"]["start"][:16] in html
