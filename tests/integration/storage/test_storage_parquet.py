"""Parquet snapshots: KST-date partitions, exact round trip with the DB, idempotent rewrites,
crash-safety (a leftover temp file is ignored, a failed write leaves the old file intact)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from trader.domain import Fill, Side
from trader.storage import parquet
from trader.storage.parquet import kst_date, kst_day_bounds, partition_path, write_snapshot
from trader.storage.repository import Repository

# 2024-01-04 23:59:59.999 KST and 2024-01-05 00:00 KST (= 2024-01-04 15:00 UTC)
T_JAN4_LAST = 1704380399999
T_JAN5 = 1704380400000
LATE = Fill("t9", "o9", "KRW-BTC", Side.BID, D("1000"), D("5"), D("5000"), D("2.5"), T_JAN5 + 5)


def _seed(repo: Repository) -> None:
    rows = [
        ("t1", Side.BID, "160594000", "0.00003736", T_JAN4_LAST),
        ("t2", Side.BID, "3000.5", "2.99989592", T_JAN5),
        ("t3", Side.ASK, "161000000", "0.00001", T_JAN5 + 3_600_000),
    ]
    for uuid, side, price, vol, ts in rows:
        p, v = D(price), D(vol)
        fill = Fill(uuid, "o-" + uuid, "KRW-BTC", side, p, v, p * v, p * v * D("0.0005"), ts, "r", "id")
        repo.record_fill(fill, realized_pnl=D("1.000015384615384615384615385") if side is Side.ASK else None)
    repo.record_order("at-1", "i1", "KRW-BTC", "bid", "price", None, None, D("6000"), "entry", T_JAN4_LAST)
    repo.record_order("at-2", "i2", "KRW-BTC", "ask", "limit", D("161000000"), D("0.00001"), None, "tp",
                      T_JAN5)
    repo.mark_order("at-2", state="done", uuid="u2", executed_volume=D("0.00001"), paid_fee=D("0.805"),
                    ts_ms=T_JAN5 + 1)
    repo.add_equity_point(T_JAN5, "KRW-BTC", D("160594000"), D("994000.2"), D("0.00003736"), D("1000000.1"))


def test_kst_dates() -> None:
    assert kst_date(T_JAN4_LAST) == date(2024, 1, 4) and kst_date(T_JAN5) == date(2024, 1, 5)
    assert kst_day_bounds(date(2024, 1, 5)) == (T_JAN5, T_JAN5 + 86_400_000)


def test_layout_and_round_trip(repo: Repository, tmp_path: Path) -> None:
    _seed(repo)
    paths = write_snapshot(repo, tmp_path)
    rel = sorted(str(p.relative_to(tmp_path)) for p in paths)
    assert rel == [
        "equity/date=2024-01-05/part-0.parquet",
        "fills/date=2024-01-04/part-0.parquet",
        "fills/date=2024-01-05/part-0.parquet",
        "orders/date=2024-01-04/part-0.parquet",
        "orders/date=2024-01-05/part-0.parquet",
    ]
    fills = pd.read_parquet(tmp_path / "fills").sort_values("ts_ms").reset_index(drop=True)
    db = repo.fills_with_pnl()
    assert fills["trade_uuid"].tolist() == [f.trade_uuid for f, _ in db]
    assert fills["ts_ms"].dtype == "int64" and fills["price"].dtype == "float64"
    assert [str(d) for d in fills["date"]] == ["2024-01-04", "2024-01-05", "2024-01-05"]
    for (f, pnl), row in zip(db, fills.itertuples(), strict=True):
        assert (D(row.price_exact), D(row.volume_exact), D(row.funds_exact), D(row.fee_exact)) == (
            f.price, f.volume, f.funds, f.fee)
        assert (None if pd.isna(row.realized_pnl_exact) else D(row.realized_pnl_exact)) == pnl
        assert row.price == pytest.approx(float(f.price)) and row.side == str(f.side)
    orders = pd.read_parquet(tmp_path / "orders").sort_values("id")
    assert orders["state"].tolist() == ["recorded", "done"] and orders["krw_amount_exact"].iloc[0] == "6000"
    assert orders["paid_fee_exact"].tolist() == ["0", "0.805"] and pd.isna(orders["price_exact"].iloc[0])
    eq = pd.read_parquet(tmp_path / "equity")
    assert D(eq["coin_volume_exact"].iloc[0]) == D("0.00003736") and eq["equity"].iloc[0] == 1000000.1


def test_idempotent_rewrite_and_single_day(repo: Repository, tmp_path: Path) -> None:
    _seed(repo)
    first = write_snapshot(repo, tmp_path)
    blobs = {p: p.read_bytes() for p in first}
    assert write_snapshot(repo, tmp_path) == first
    assert {p: p.read_bytes() for p in first} == blobs  # byte-identical rewrite

    # a new fill on Jan 5; rewriting only that day leaves Jan 4 untouched
    repo.record_fill(LATE)
    day = write_snapshot(repo, tmp_path, day=date(2024, 1, 5))
    assert all("date=2024-01-05" in str(p) for p in day) and len(day) == 3
    jan4 = partition_path(tmp_path, "fills", date(2024, 1, 4))
    assert jan4.read_bytes() == blobs[jan4]
    assert len(pd.read_parquet(tmp_path / "fills")) == 4
    # a day without rows in the DB has no partition (and a stale one would be removed)
    assert write_snapshot(repo, tmp_path, day=date(2024, 1, 6)) == []
    assert not partition_path(tmp_path, "fills", date(2024, 1, 6)).exists()


def test_leftover_temp_file_is_ignored(repo: Repository, tmp_path: Path) -> None:
    _seed(repo)
    write_snapshot(repo, tmp_path)
    part = partition_path(tmp_path, "fills", date(2024, 1, 5))
    # what a crash mid-write leaves behind: a truncated dot-prefixed temp file
    (part.parent / ".part-0.parquet.123.deadbeef.tmp").write_bytes(part.read_bytes()[:40])
    assert len(pd.read_parquet(tmp_path / "fills")) == 3
    write_snapshot(repo, tmp_path)  # and a later snapshot still succeeds
    assert len(pd.read_parquet(tmp_path / "fills")) == 3


def test_failed_write_keeps_the_old_file(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(repo)
    write_snapshot(repo, tmp_path)
    part = partition_path(tmp_path, "fills", date(2024, 1, 5))
    before = part.read_bytes()
    repo.record_fill(LATE)

    def crash(table, where, **kw):  # type: ignore[no-untyped-def]
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(parquet.pq, "write_table", crash)
    with pytest.raises(OSError):
        write_snapshot(repo, tmp_path, day=date(2024, 1, 5))
    assert part.read_bytes() == before  # readers still see the complete old file
    assert [p.name for p in part.parent.iterdir()] == ["part-0.parquet"]  # temp file cleaned up
    assert pq.read_table(part).num_rows == 2
