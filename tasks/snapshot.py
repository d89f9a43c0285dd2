"""Snapshot task: write one trading day of the database as parquet files (idempotent per day)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE


@task(
    name="write-snapshot",
    retries=2,
    retry_delay_seconds=[5.0, 30.0],
    cache_policy=NO_CACHE,
    persist_result=False,
)
def write_snapshot(db_url: str, out_dir: str, day: date) -> dict[str, Any]:
    """Write `day`'s parquet snapshot under `out_dir` (re-running replaces the same files)."""
    from trader.storage import parquet
    from trader.storage.db import Database
    from trader.storage.repository import Repository

    with Database.open(db_url) as db:
        result = parquet.write_snapshot(Repository(db), Path(out_dir), day=day)
    return _jsonable(result)


def _jsonable(result: Any) -> dict[str, Any]:
    """The snapshot writer's result as JSON-able data for the flow's return value."""
    if isinstance(result, dict):
        return {str(k): str(v) if isinstance(v, Path) else v for k, v in result.items()}
    if isinstance(result, list | tuple):
        return {"files": [str(p) for p in result]}
    return {"result": str(result)}
