"""Parquet snapshots of fills, orders and equity, partitioned by KST date (hive layout).

    <out_dir>/fills/date=2024-01-05/part-0.parquet
    <out_dir>/orders/date=2024-01-05/part-0.parquet     (by created_ts_ms)
    <out_dir>/equity/date=2024-01-05/part-0.parquet

`pandas.read_parquet(out_dir / "fills")` reads a whole table (adding a `date` column).
Each money column appears twice: `price` (float64, for charts) and `price_exact` (the exact
decimal as a string). A file is written to a dot-prefixed temp file and moved into place with
`os.replace`, so readers see the old file or the new one, never half of one; a temp file left by
a crash starts with "." and is ignored by pyarrow/pandas dataset readers. Writing a period again
rewrites the same files with the database's current content (idempotent).
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from trader.storage.repository import (
    EQUITY_COLUMNS,
    EQUITY_MONEY,
    FILL_COLUMNS,
    FILL_MONEY,
    ORDER_COLUMNS,
    ORDER_MONEY,
    Repository,
)

KST = timezone(timedelta(hours=9), "KST")
PART_NAME = "part-0.parquet"
_INT_COLUMNS = {"ts_ms", "id", "created_ts_ms", "updated_ts_ms"}


def kst_date(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms // 1000, tz=KST).date()  # floor: no float rounding at midnight


def kst_day_bounds(day: date) -> tuple[int, int]:
    """[start, end) of a KST calendar day in UTC epoch ms."""
    start = datetime(day.year, day.month, day.day, tzinfo=KST)
    ms = int(start.astimezone(UTC).timestamp()) * 1000
    return ms, ms + 86_400_000


@dataclass(frozen=True)
class _Table:
    name: str
    columns: Sequence[str]
    money: Sequence[str]
    ts_column: str
    fetch: Callable[[Repository, int | None, int | None], list[dict[str, Any]]]

    def schema(self) -> pa.Schema:
        cols = []
        for c in self.columns:
            if c in self.money:
                cols += [pa.field(c, pa.float64()), pa.field(f"{c}_exact", pa.string())]
            elif c in _INT_COLUMNS:
                cols.append(pa.field(c, pa.int64()))
            else:
                cols.append(pa.field(c, pa.string()))
        return pa.schema(cols)

    def to_arrow(self, records: list[dict[str, Any]]) -> pa.Table:
        data: dict[str, list[Any]] = {}
        for c in self.columns:
            values = [r[c] for r in records]
            if c in self.money:
                data[c] = [None if v is None else float(v) for v in values]
                data[f"{c}_exact"] = [None if v is None else format(Decimal(v), "f") for v in values]
            elif c in _INT_COLUMNS:
                data[c] = [int(v) for v in values]
            else:
                data[c] = [None if v is None else str(v) for v in values]
        return pa.Table.from_pydict(data, schema=self.schema())


def _fills(repo: Repository, since: int | None, until: int | None) -> list[dict[str, Any]]:
    return repo.fill_records(since, until)


def _orders(repo: Repository, since: int | None, until: int | None) -> list[dict[str, Any]]:
    return [{c: getattr(o, c) for c in ORDER_COLUMNS} for o in repo.orders(since, until)]


def _equity(repo: Repository, since: int | None, until: int | None) -> list[dict[str, Any]]:
    return [{c: getattr(e, c) for c in EQUITY_COLUMNS} for e in repo.equity_points(since, until)]


TABLES = (
    _Table("fills", FILL_COLUMNS, FILL_MONEY, "ts_ms", _fills),
    _Table("orders", ORDER_COLUMNS, ORDER_MONEY, "created_ts_ms", _orders),
    _Table("equity", EQUITY_COLUMNS, EQUITY_MONEY, "ts_ms", _equity),
)


def partition_path(out_dir: Path, table: str, day: date) -> Path:
    return Path(out_dir) / table / f"date={day.isoformat()}" / PART_NAME


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def write_snapshot(repo: Repository, out_dir: Path, *, day: date | None = None) -> list[Path]:
    """Write fills, orders and equity as parquet partitions; the paths written, sorted.

    `day` (a KST date) limits the snapshot to that day — its partitions are rewritten from the
    database, and removed if the database has no rows for it; None writes every day present.
    """
    out_dir = Path(out_dir)
    since, until = kst_day_bounds(day) if day is not None else (None, None)
    written: list[Path] = []
    for t in TABLES:
        groups: dict[date, list[dict[str, Any]]] = defaultdict(list)
        for r in t.fetch(repo, since, until):
            groups[kst_date(r[t.ts_column])].append(r)
        if day is not None and day not in groups:
            partition_path(out_dir, t.name, day).unlink(missing_ok=True)
        for d, records in sorted(groups.items()):
            path = partition_path(out_dir, t.name, d)
            _write_atomic(t.to_arrow(records), path)
            written.append(path)
    return sorted(written)
