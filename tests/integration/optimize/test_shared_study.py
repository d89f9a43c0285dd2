"""One study shared by two worker processes: PostgreSQL (a database of its own) and SQLite."""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path

import optuna
import yaml

from trader.optimize.study import OptimizeSpec, create_study, finished, leaderboard, run_worker, trials

ROOT = Path(__file__).resolve().parents[3]
STRATEGY = ROOT / "trader" / "strategy" / "examples" / "demo.yaml"
SPACE = ROOT / "trader" / "strategy" / "examples" / "demo.space.yaml"
DATA = ROOT / "data" / "KRW-ETH_15m_2024.parquet"


def _spec(storage: str, name: str) -> OptimizeSpec:
    return OptimizeSpec(yaml.safe_load(STRATEGY.read_text(encoding="utf-8")),
                        yaml.safe_load(SPACE.read_text(encoding="utf-8")), str(DATA),
                        "2024-01-01", "2024-01-08", seed=2, min_trades=0, trials=12,
                        storage=storage, study_name=name)


def _work(spec: OptimizeSpec, worker: int, var_dir: str) -> int:
    import os

    os.environ["TRADER_VAR_DIR"] = var_dir
    return run_worker(spec, 10, worker=worker)


def _two_processes(spec: OptimizeSpec, var_dir: Path) -> list[int]:
    create_study(spec)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        return pool.starmap(_work, [(spec, 1, str(var_dir)), (spec, 2, str(var_dir))])


def _check(spec: OptimizeSpec, ran: list[int]) -> None:
    study = create_study(spec)
    done = finished(study)
    # each process stops once the study has spec.trials finished; both may be mid-trial then
    assert spec.trials <= done <= spec.trials + 1
    assert sum(ran) == done and all(n > 0 for n in ran), ran
    rows = trials(study)
    assert rows[0]["as_given"]
    points = [tuple(sorted(r["params"].items())) for r in rows]
    assert len(set(points)) == len(points)  # the two workers did not propose the same points
    board = leaderboard(study, 1)
    assert board[0]["value"] == max(r["value"] for r in rows if r["value"] is not None)


def test_postgresql_study_shared_by_two_processes(optuna_pg, tmp_path, monkeypatch):
    monkeypatch.setenv("TRADER_VAR_DIR", str(tmp_path / "var"))
    spec = _spec(optuna_pg, f"shared-{uuid.uuid4().hex}")  # the database outlives the test
    try:
        _check(spec, _two_processes(spec, tmp_path / "var"))
    finally:
        optuna.delete_study(study_name=spec.study_name, storage=optuna_pg)


def test_sqlite_study_shared_by_two_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADER_VAR_DIR", str(tmp_path / "var"))
    spec = _spec(f"sqlite:///{tmp_path}/shared.db", "shared")
    _check(spec, _two_processes(spec, tmp_path / "var"))
